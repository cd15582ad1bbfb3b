"""The officer's actions. Each is a POST that calls exactly one service and redirects back to the case with what
happened as a message; a refusal by the service (wrong state, maker-checker, stale terms) is the message instead.
The terms form is a page of its own: a refusal that names a field is shown there, at the field."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods, require_POST

from core.access import staff_view
from core.errors import ValidationError, WorkoutError
from core.web import refusal_show, service_run
from restructuring.forms import ApproveForm, OfferForm, ReasonForm, RepaymentForm, SeenVersionForm, TermsForm
from restructuring.models import Case, Proposal
from restructuring.selectors.case_page import ValuationReading
from restructuring.selectors.lookups import (
    account_open_positions,
    case_exists,
    case_get,
    installment_get,
    proposal_case_id,
    proposal_get,
)
from restructuring.selectors.schedules import ScheduleRow
from restructuring.services.feasibility import terms_preview
from restructuring.services.negotiation.execution import proposal_execute, proposal_liquidate
from restructuring.services.negotiation.offers import offer_send
from restructuring.services.negotiation.proposals import (
    proposal_approve,
    proposal_draft,
    proposal_edit,
    proposal_liquidation_draft,
    proposal_reject,
    proposal_submit,
)
from restructuring.services.negotiation.repayments import repayment_record, repayment_summary


def _actor(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]  # staff_view let only a signed-in user through


def _back(case_id: int, anchor: str = "") -> HttpResponseRedirect:
    return redirect(reverse("case", args=[case_id]) + (f"#{anchor}" if anchor else ""))


def _seen_version(request: HttpRequest, form: SeenVersionForm) -> int | None:
    """The version of the proposal the form was loaded with; None (and the message) when the form carries none."""
    if form.is_valid():
        return int(form.cleaned_data["version"])
    if "version" in form.errors:
        messages.error(
            request, gettext("The form did not say which version of the terms you saw: reload the case and decide.")
        )
        return None
    messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    return None


def _decide(
    request: HttpRequest,
    case_id: int,
    proposal_id: int,
    form: SeenVersionForm,
    act: Callable[[int], str],
    *,
    back_to_proposal: bool = True,
) -> HttpResponseRedirect:
    """A decision on the terms the officer saw: the version the form carries, then the service called with it (its
    outcome or refusal the message), then back to the proposal, or to the case when the decision moved it on."""
    version = _seen_version(request, form)
    if version is None:
        return _back(case_id, f"proposal-{proposal_id}")
    service_run(request, lambda: act(version))
    return _back(case_id, f"proposal-{proposal_id}" if back_to_proposal else "")


# ---------------------------------------------------------------------------------------------- proposals


@staff_view("restructuring.draft_proposal")
@require_POST
def proposal_submit_view(request: HttpRequest, proposal_id: int) -> HttpResponse:
    case_id = proposal_case_id(proposal_id)

    def act() -> str:
        proposal_submit(proposal_id=proposal_id, actor=_actor(request))
        return gettext("Proposal %(id)s submitted for approval.") % {"id": proposal_id}

    service_run(request, act)
    return _back(case_id, f"proposal-{proposal_id}")


@staff_view("restructuring.approve_proposal")
@require_POST
def proposal_approve_view(request: HttpRequest, proposal_id: int) -> HttpResponse:
    case_id = proposal_case_id(proposal_id)
    form = ApproveForm(request.POST)

    def act(version: int) -> str:
        override_reason = form.cleaned_data["override_reason"]
        outcome = proposal_approve(
            proposal_id=proposal_id, actor=_actor(request), version=version, override_reason=override_reason
        )
        if outcome.approved:
            return gettext("Proposal %(id)s approved: it can be offered to the client.") % {"id": proposal_id}
        return gettext("Your approval of proposal %(id)s is recorded; a second approval is needed: %(needs)s.") % {
            "id": proposal_id,
            "needs": outcome.needs_read,
        }

    return _decide(request, case_id, proposal_id, form, act)


@staff_view("restructuring.approve_proposal")
@require_POST
def proposal_reject_view(request: HttpRequest, proposal_id: int) -> HttpResponse:
    case_id = proposal_case_id(proposal_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, gettext("A rejection needs a reason."))
        return _back(case_id, f"proposal-{proposal_id}")

    def act() -> str:
        proposal_reject(proposal_id=proposal_id, actor=_actor(request), reason=form.cleaned_data["reason"])
        return gettext("Proposal %(id)s rejected.") % {"id": proposal_id}

    service_run(request, act)
    return _back(case_id, f"proposal-{proposal_id}")


@staff_view("restructuring.offer_proposal")
@require_POST
def proposal_offer_view(request: HttpRequest, proposal_id: int) -> HttpResponse:
    case_id = proposal_case_id(proposal_id)
    form = OfferForm(request.POST)

    def act(version: int) -> str:
        proposal = offer_send(
            proposal_id=proposal_id, actor=_actor(request), version=version, hours=form.cleaned_data["hours"]
        )
        return gettext("Proposal %(id)s offered to the client until %(until)s UTC.") % {
            "id": proposal_id,
            "until": f"{proposal.expires_at:%Y-%m-%d %H:%M}",
        }

    return _decide(request, case_id, proposal_id, form, act)


@staff_view("restructuring.execute_proposal")
@require_POST
def proposal_execute_view(request: HttpRequest, proposal_id: int) -> HttpResponse:
    case_id = proposal_case_id(proposal_id)

    def act(version: int) -> str:
        proposal_execute(proposal_id=proposal_id, actor=_actor(request), version=version)
        return gettext("Proposal %(id)s executed: the case is restructured.") % {"id": proposal_id}

    return _decide(request, case_id, proposal_id, SeenVersionForm(request.POST), act)


@staff_view("restructuring.liquidate_case")
@require_POST
def proposal_liquidate_view(request: HttpRequest, proposal_id: int) -> HttpResponse:
    case_id = proposal_case_id(proposal_id)

    def act(version: int) -> str:
        proposal_liquidate(proposal_id=proposal_id, actor=_actor(request), version=version)
        return gettext("Proposal %(id)s carried out: case %(case)s is in liquidation.") % {
            "id": proposal_id,
            "case": case_id,
        }

    return _decide(request, case_id, proposal_id, SeenVersionForm(request.POST), act, back_to_proposal=False)


@staff_view("restructuring.execute_proposal")
@require_POST
def repayment_record_view(request: HttpRequest, installment_id: int) -> HttpResponse:
    installment = installment_get(installment_id)
    case_id, proposal_id = installment.proposal.case_id, installment.proposal_id
    form = RepaymentForm(request.POST)
    if not form.is_valid():
        messages.error(request, gettext("The amount: ") + " ".join(str(e) for e in form.errors.get("amount", [])))
        return _back(case_id, f"proposal-{proposal_id}")
    amount: Decimal = form.cleaned_data["amount"]

    def act() -> str:
        return repayment_summary(repayment_record(installment_id=installment_id, amount=amount, actor=_actor(request)))

    service_run(request, act)
    return _back(case_id, f"proposal-{proposal_id}")


# ------------------------------------------------------------------------------------------------ the case


@staff_view("restructuring.liquidate_case")
@require_POST
def case_liquidate_view(request: HttpRequest, case_id: int) -> HttpResponse:
    """Propose the case's liquidation: another officer approves it before anyone carries it out."""
    case_exists(case_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, gettext("Sending a case to liquidation needs a reason."))
        return _back(case_id)

    def act() -> str:
        reason = form.cleaned_data["reason"]
        proposal = proposal_liquidation_draft(case_id=case_id, reason=reason, actor=_actor(request))
        return gettext(
            "Liquidation proposed (proposal %(id)s): another officer approves it before it is carried out."
        ) % {"id": proposal.pk}

    service_run(request, act)
    return _back(case_id)


# ------------------------------------------------------------------------------------- the terms form page


@staff_view("restructuring.draft_proposal")
@require_http_methods(["GET", "POST"])
def proposal_new(request: HttpRequest, case_id: int) -> HttpResponse:
    """Draft a proposal for a case (or preview terms without storing anything)."""
    case = case_get(case_id)
    prefix = "new"
    form = TermsForm(request.POST or None, positions=account_open_positions(case.account_id), prefix=prefix)
    if request.method == "POST" and form.is_valid():
        if "preview" in request.POST:
            return _terms_page(request, case, form, None, preview=_preview(case, form))
        try:
            proposal = proposal_draft(
                case_id=case.pk, terms=form.terms(), actor=_actor(request), name=form.cleaned_data["name"]
            )
        except ValidationError as exc:
            form.add_service_error(exc.context.get("field"), str(exc))
        except WorkoutError as exc:
            refusal_show(request, exc)
            return _back(case.pk)
        else:
            messages.success(
                request, gettext("Proposal %(id)s drafted: submit it for approval when ready.") % {"id": proposal.pk}
            )
            return _back(case.pk, f"proposal-{proposal.pk}")
    return _terms_page(request, case, form, None)


@staff_view("restructuring.draft_proposal")
@require_http_methods(["GET", "POST"])
def proposal_edit_view(request: HttpRequest, proposal_id: int) -> HttpResponse:
    """New terms for a proposal: revalued, back to draft, its approvals void."""
    proposal = proposal_get(proposal_id)
    case = proposal.case
    initial = TermsForm.initial_from(proposal.terms, proposal.name)
    form = TermsForm(
        request.POST or None, initial=initial, positions=account_open_positions(case.account_id), prefix="edit"
    )
    if request.method == "POST" and form.is_valid():
        if "preview" in request.POST:
            return _terms_page(request, case, form, proposal, preview=_preview(case, form))
        try:
            proposal_edit(proposal_id=proposal.pk, terms=form.terms(), actor=_actor(request))
        except ValidationError as exc:
            form.add_service_error(exc.context.get("field"), str(exc))
        except WorkoutError as exc:
            refusal_show(request, exc)
            return _back(case.pk, f"proposal-{proposal.pk}")
        else:
            messages.success(
                request,
                gettext("Proposal %(id)s edited: it is a draft again; approvals given are void.") % {"id": proposal.pk},
            )
            return _back(case.pk, f"proposal-{proposal.pk}")
    return _terms_page(request, case, form, proposal)


def _preview(case: Case, form: TermsForm) -> dict[str, Any] | None:
    """The schedule and value of the typed terms on the current market (terms_preview stores nothing)."""
    try:
        preview = terms_preview(case_id=case.pk, terms=form.terms())
    except ValidationError as exc:
        form.add_service_error(exc.context.get("field"), str(exc))
        return None
    except WorkoutError as exc:
        form.add_error(None, str(exc))
        return None
    rows = [ScheduleRow.of(i) for i in preview.schedule.installments]
    return {
        "schedule": rows,
        "total": preview.schedule.total_paid,
        "valuation": ValuationReading.of(preview.valuation),
        "liquidation_value": preview.liquidation_value,
    }


def _terms_page(
    request: HttpRequest,
    case: Case,
    form: TermsForm,
    proposal: Proposal | None,
    preview: dict[str, Any] | None = None,
) -> HttpResponse:
    context = {"case": case, "form": form, "proposal": proposal, "preview": preview}
    if getattr(request, "htmx", None) and request.htmx.target == "terms-preview":  # type: ignore[attr-defined]
        return render(request, "restructuring/_terms_preview.html", context)
    return render(request, "restructuring/proposal_form.html", context)
