"""The officer's forms. They parse what was typed into the shapes the services take; the services validate the
terms themselves (restructuring.terms), and a refusal that names a field is shown at that field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator
from django.utils.translation import gettext_lazy as _

from accounts.models import Position
from core.forms import DecimalTextField
from restructuring.models import ContactChannel, ContactDirection, ContactOutcome, DocumentKind, PromiseMethod
from restructuring.schedules import ArrearsTreatment, ScheduleKind

_FIELD_OF_TERM = {
    "term_months": "term_months",
    "rate_annual": "rate_annual",
    "kind": "kind",
    "moratorium_months": "moratorium_months",
    "grace_interest_months": "grace_interest_months",
    "grace_principal_months": "grace_principal_months",
    "arrears_treatment": "arrears_treatment",
    "collateral_to_add": "collateral_to_add",
    "principal_haircut": "principal_haircut",
}


def _reduce_field(position_id: int) -> str:
    return f"reduce_{position_id}"


# The pure schedule module's enumerations, in the reader's words.
SCHEDULE_KIND_LABELS = {ScheduleKind.LEVEL: _("level"), ScheduleKind.INTEREST_ONLY: _("interest only")}
ARREARS_LABELS = {
    ArrearsTreatment.CAPITALISE: _("capitalise"),
    ArrearsTreatment.CARRY_FORWARD: _("carry forward"),
    ArrearsTreatment.FIRST_INSTALLMENT: _("with the first installment"),
}


class TermsForm(forms.Form):
    """Restructuring terms (restructuring.terms.Terms), with one reduction fraction per open position."""

    name = forms.CharField(label=_("Label"), max_length=100, initial="officer")
    term_months = forms.IntegerField(label=_("Term (months)"), initial=12)
    rate_annual = DecimalTextField(
        label=_("Rate (annual, a fraction: 0.08 is 8%)"),
        required=False,
        help_text=_("Empty: the loan keeps its rate."),
    )
    kind = forms.ChoiceField(
        label=_("Schedule"), choices=[(k.value, SCHEDULE_KIND_LABELS[k]) for k in ScheduleKind], initial="level"
    )
    moratorium_months = forms.IntegerField(label=_("Moratorium (months)"), initial=0)
    grace_interest_months = forms.IntegerField(label=_("Interest grace (months)"), initial=0)
    grace_principal_months = forms.IntegerField(label=_("Principal grace (months)"), initial=0)
    arrears_treatment = forms.ChoiceField(
        label=_("Arrears"),
        choices=[(a.value, ARREARS_LABELS[a]) for a in ArrearsTreatment],
        initial=ArrearsTreatment.CAPITALISE.value,
    )
    collateral_to_add = DecimalTextField(label=_("Collateral to add"), initial=Decimal(0))
    principal_haircut = DecimalTextField(label=_("Principal haircut (forgiven)"), initial=Decimal(0))

    def __init__(self, *args: Any, positions: Sequence[Position] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.positions = list(positions)
        for position in self.positions:
            self.fields[_reduce_field(position.pk)] = DecimalTextField(
                label=_("Reduce %(symbol)s (%(quantity)s) by")
                % {"symbol": position.instrument.symbol, "quantity": f"{position.quantity.normalize():f}"},
                required=False,
                help_text=_("a fraction of the position, e.g. 0.5"),
            )

    @classmethod
    def initial_from(cls, terms: Mapping[str, Any], name: str) -> dict[str, Any]:
        """The form's initial values for stored terms."""
        initial: dict[str, Any] = {"name": name}
        for term, value in terms.items():
            if term == "reduce":
                initial.update({_reduce_field(int(p)): fraction for p, fraction in value})
            elif term in _FIELD_OF_TERM and value is not None:
                initial[_FIELD_OF_TERM[term]] = value
        return initial

    @property
    def reduce_fields(self) -> list[forms.BoundField]:
        return [self[_reduce_field(p.pk)] for p in self.positions]

    @property
    def term_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in _FIELD_OF_TERM.values()]

    def terms(self) -> dict[str, Any]:
        """The cleaned data as terms JSON (amounts as strings, as Terms.from_json wants them)."""
        data = self.cleaned_data
        terms: dict[str, Any] = {
            "term_months": data["term_months"],
            "kind": data["kind"],
            "moratorium_months": data["moratorium_months"],
            "grace_interest_months": data["grace_interest_months"],
            "grace_principal_months": data["grace_principal_months"],
            "arrears_treatment": data["arrears_treatment"],
            "collateral_to_add": str(data["collateral_to_add"]),
            "principal_haircut": str(data["principal_haircut"]),
        }
        if data.get("rate_annual") is not None:
            terms["rate_annual"] = str(data["rate_annual"])
        reduce = [
            [p.pk, str(data[_reduce_field(p.pk)])] for p in self.positions if data.get(_reduce_field(p.pk)) is not None
        ]
        if reduce:
            terms["reduce"] = reduce
        return terms

    def add_service_error(self, field: str | None, message: str) -> None:
        """Show a refusal of the terms at the field it names ("reduce[1]" is the second reduction given)."""
        target: str | None = None
        if field in _FIELD_OF_TERM:
            target = _FIELD_OF_TERM[field]
        elif field and field.startswith("reduce"):
            given = [p for p in self.positions if self.cleaned_data.get(_reduce_field(p.pk)) is not None]
            index = field.removeprefix("reduce").strip("[]")
            if index.isdigit() and int(index) < len(given):
                target = _reduce_field(given[int(index)].pk)
        if target is not None and target in self.fields:
            self.add_error(target, message)
        else:
            self.add_error(None, message)


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=2000, widget=forms.TextInput(attrs={"size": 40}))


class SeenVersionForm(forms.Form):
    """The version of the proposal the officer was shown: the action applies to it or to nothing."""

    version = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class ApproveForm(SeenVersionForm):
    override_reason = forms.CharField(
        label=_("Why approve despite the model"),
        max_length=2000,
        required=False,
        widget=forms.TextInput(attrs={"size": 40}),
    )


class OfferForm(SeenVersionForm):
    hours = DecimalTextField(
        label=_("Offer stands (hours)"),
        required=False,
        decimal_places=2,
        min_value=Decimal("0.1"),
        help_text=_("Empty: the house default."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = Decimal(str(settings.WORKOUT_OFFER_MAX_HOURS))
        field = self.fields["hours"]
        field.validators.append(MaxValueValidator(limit))
        field.help_text = _("Empty: the house default. At most %(hours)s hours.") % {"hours": f"{limit:f}"}


class RepaymentForm(forms.Form):
    amount = DecimalTextField(label=_("Amount received"), min_value=Decimal("0.00000001"))


class QueueFilterForm(forms.Form):
    state = forms.ChoiceField(required=False)
    band = forms.ChoiceField(required=False)
    officer = forms.ChoiceField(required=False)
    asset = forms.CharField(required=False, max_length=64)
    group = forms.CharField(required=False, max_length=64)
    q = forms.CharField(required=False, max_length=100, label=_("Account or client"))

    def __init__(
        self,
        *args: Any,
        states: Sequence[tuple[str, str]],
        bands: Sequence[tuple[str, str]],
        officers: Sequence[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["state"].choices = [("", _("every open state")), *states]  # type: ignore[attr-defined]
        self.fields["band"].choices = [("", _("every band")), *bands]  # type: ignore[attr-defined]
        self.fields["officer"].choices = [("", _("every officer")), *((o, o) for o in officers)]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------- the conversation
# The services check the rest (dates not in the past, the currency's places, one open promise): the forms parse.


class NoteForm(forms.Form):
    text = forms.CharField(label=_("Note"), widget=forms.Textarea(attrs={"rows": 2}), max_length=10_000)
    remind_on = forms.DateField(label=_("Remind me on"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    corrects = forms.IntegerField(label=_("Corrects note"), required=False, min_value=1)


class PromiseForm(forms.Form):
    """A promise to pay; in the contact form, its fields are optional (left empty: no promise was made)."""

    promise_amount = DecimalTextField(label=_("Promised amount"), min_value=Decimal("0.00000001"))
    promise_due = forms.DateField(label=_("Promised by"), widget=forms.DateInput(attrs={"type": "date"}))
    promise_method = forms.ChoiceField(label=_("Paid by"), choices=PromiseMethod.choices)

    def __init__(self, *args: Any, optional: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if optional:
            for field in self.fields.values():
                field.required = False

    def promise(self) -> dict[str, Any] | None:
        """The promise's amount, date and method, or None when none was given (the contact form's empty fields)."""
        data = self.cleaned_data
        if data.get("promise_amount") is None and data.get("promise_due") is None:
            return None
        return {"amount": data.get("promise_amount"), "due": data.get("promise_due"), "method": data["promise_method"]}


class ContactForm(PromiseForm):
    channel = forms.ChoiceField(label=_("Channel"), choices=ContactChannel.choices)
    direction = forms.ChoiceField(label=_("Direction"), choices=ContactDirection.choices)
    outcome = forms.ChoiceField(label=_("Outcome"), choices=ContactOutcome.choices)
    person = forms.CharField(label=_("Person reached"), max_length=200, required=False)
    summary = forms.CharField(
        label=_("Summary"), widget=forms.Textarea(attrs={"rows": 2}), max_length=10_000, required=False
    )
    corrects = forms.IntegerField(label=_("Corrects contact"), required=False, min_value=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, optional=True, **kwargs)
        self.fields["promise_method"].initial = PromiseMethod.BANK_TRANSFER
        self.order_fields(["channel", "direction", "outcome", "person", "summary"])


class DocumentForm(forms.Form):
    """A document added to a case: the file (judged by its content by the service: PDF, PNG or JPEG) and what it is."""

    kind = forms.ChoiceField(label=_("Kind"), choices=DocumentKind.choices)
    # An empty file is the service's to refuse, with the documents' own message.
    file = forms.FileField(label=_("File (PDF, PNG or JPEG)"), allow_empty_file=True)
