"""The API of the workout, for clients: their cases (with the timeline of what concerns them, and the messages sent
about them), the offers made to them (accept, decline, counter-propose) with their restructuring agreements (PDF),
their loan and its repayment schedule, collateral top-ups, promises to pay, and their documents (upload, list,
download).

Every query starts from the caller's client, so another client's id is simply not found (404). The state changes
are the negotiation services' (restructuring/services/negotiation/), called once per Idempotency-Key.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api import client_accounts
from accounts.models import MarginLoan
from accounts.tokens.views import ClientView
from core.api.fields import DecimalString, FastRepresentation, MoneyString, StrictSerializer, WholeNumber
from core.api.idempotency import idempotent
from core.api.views import DownloadView
from core.audit_catalogue import Audience
from core.downloads import file_response
from core.models import AuditEvent
from core.uploads import ACCEPTED, FileTooLargeError
from restructuring.audit_events import (
    CASE_OBJECT,
    CONTACT_OBJECT,
    DOCUMENT_OBJECT,
    INSTALLMENT_OBJECT,
    PROMISE_OBJECT,
    PROPOSAL_OBJECT,
    REPAYMENT_OBJECT,
    TOP_UP_OBJECT,
)
from restructuring.models import (
    CallBasis,
    Case,
    CaseState,
    CollateralTopUp,
    Document,
    DocumentKind,
    DocumentSource,
    Notification,
    NotificationChannel,
    NotificationKind,
    NotificationStatus,
    PromiseMethod,
    PromiseToPay,
    Proposal,
    ProposalSource,
    ProposalState,
)
from restructuring.selectors.agreements import agreement_content, client_offer_agreement
from restructuring.selectors.client import (
    account_loan,
    client_cases,
    client_offer,
    client_offers,
    client_promises,
    client_top_ups,
    loan_schedule,
)
from restructuring.selectors.documents import client_documents, document_open
from restructuring.selectors.events import case_events
from restructuring.selectors.messages import client_case_messages
from restructuring.selectors.offers import Outlook, offer_outlook, offer_terms
from restructuring.services.conversation import promise_make
from restructuring.services.documents import document_upload_by_client
from restructuring.services.negotiation.offers import offer_accept, offer_counter, offer_decline
from restructuring.services.negotiation.topups import topup_declare
from restructuring.terms import Terms, terms_hash

# ------------------------------------------------------------------------------------------------ cases

# What a client sees of the audit trail of its case (restructuring.selectors.events, the actions declared visible to
# clients): the transitions, never the officers' notes, payloads or names. `reason` is shown only when the client
# gave it (a decline). The objects by the names the client knows them by.
_OBJECT_NAMES = {
    CASE_OBJECT: "case",
    PROPOSAL_OBJECT: "offer",
    INSTALLMENT_OBJECT: "installment",
    TOP_UP_OBJECT: "top_up",
    REPAYMENT_OBJECT: "payment",
    CONTACT_OBJECT: "contact",  # a call, email, meeting or letter with you (never the officers' notes)
    PROMISE_OBJECT: "promise",
    DOCUMENT_OBJECT: "document",  # a document you uploaded, or the lender added to your case
}


class TimelineEventSerializer(FastRepresentation, serializers.Serializer):
    """One event of a case's timeline: a change of state of the case, of an offer, an installment paid, a payment
    recorded, a top-up, a contact the lender had with you, a promise to pay made, kept or broken."""

    at = serializers.DateTimeField(source="created_at")
    action = serializers.CharField(help_text="What happened, e.g. case.margin_call, proposal.offer.")
    by = serializers.ChoiceField(choices=["you", "lender"], help_text="you: your own action.")
    object = serializers.ChoiceField(choices=sorted(_OBJECT_NAMES.values()))
    object_id = serializers.IntegerField()
    from_state = serializers.CharField()
    to_state = serializers.CharField()
    reason = serializers.CharField(help_text="The reason you gave (a decline); empty otherwise.")


class CaseSerializer(FastRepresentation, serializers.ModelSerializer[Case]):
    """A case: a distress episode of one of your accounts, from its opening until it is closed."""

    call_amount = MoneyString(
        currency="account.base_currency",
        read_only=True,
        allow_null=True,
        help_text="The margin call: what to add to restore the margin; null before a call.",
    )
    state = serializers.ChoiceField(choices=CaseState.choices, read_only=True)
    call_basis = serializers.ChoiceField(
        choices=CallBasis.choices, allow_blank=True, read_only=True, help_text="Empty before a margin call."
    )

    class Meta:
        model = Case
        fields = [
            "id",
            "account",
            "state",
            "opened_at",
            "closed_at",
            "call_amount",
            "call_basis",
            "called_at",
            "deadline",
            "band",
            "margin_ratio",
            "updated_at",
        ]
        read_only_fields = fields


class CaseDetailSerializer(CaseSerializer):
    """A case with the timeline of what concerns you."""

    timeline = serializers.SerializerMethodField()

    class Meta(CaseSerializer.Meta):
        fields = [*CaseSerializer.Meta.fields, "timeline"]
        read_only_fields = fields

    @extend_schema_field(TimelineEventSerializer(many=True))
    def get_timeline(self, case: Case) -> list[dict[str, Any]]:
        return [TimelineEventSerializer().to_representation(event) for event in case_timeline(case)]


def case_timeline(case: Case) -> list[dict[str, Any]]:
    """The events of the case the client reads (restructuring.selectors.events), oldest first."""
    events = case_events(case, Audience.CLIENT).select_related(None)
    return [
        {
            "created_at": event.created_at,
            "action": event.action,
            "by": "you" if _by_client(event) else "lender",
            "object": _OBJECT_NAMES[event.object_type],
            "object_id": event.object_id,
            "from_state": event.from_state,
            "to_state": event.to_state,
            "reason": event.reason if _by_client(event) else "",
        }
        for event in events.only(
            "created_at", "action", "system_actor", "object_type", "object_id", "from_state", "to_state", "reason"
        )
    ]


def _by_client(event: AuditEvent) -> bool:
    return event.system_actor.startswith("client:")


@extend_schema(tags=["cases"])
class CaseListView(ClientView, generics.ListAPIView[Case]):
    """Your cases (distress episodes of your accounts), newest first."""

    serializer_class = CaseSerializer

    def get_queryset(self) -> QuerySet[Case]:
        return client_cases(self.client_id).order_by("-opened_at", "-pk")


@extend_schema(tags=["cases"])
class CaseDetailView(ClientView, generics.RetrieveAPIView[Case]):
    """One of your cases: its state, the margin call (amount, deadline) and the timeline of what concerns you."""

    serializer_class = CaseDetailSerializer

    def get_queryset(self) -> QuerySet[Case]:
        return client_cases(self.client_id)


# ----------------------------------------------------------------------------------------------- offers


class ReductionSerializer(FastRepresentation, serializers.Serializer):
    """A position reduced: a share of it sold, the proceeds paying the loan down."""

    position = serializers.IntegerField(help_text="The position's id.")
    fraction = DecimalString(help_text="The share of the position sold, in (0, 1].")


class TermsSerializer(FastRepresentation, serializers.Serializer):
    """The terms of an offer. Amounts are in the account's currency."""

    term_months = serializers.IntegerField()
    rate_annual = DecimalString(allow_null=True, help_text="The new annual rate (0.08 is 8%); null: unchanged.")
    kind = serializers.ChoiceField(choices=["level", "interest_only"])
    moratorium_months = serializers.IntegerField()
    grace_interest_months = serializers.IntegerField()
    grace_principal_months = serializers.IntegerField()
    arrears_treatment = serializers.ChoiceField(choices=["capitalise", "carry_forward", "first_installment"])
    collateral_to_add = MoneyString(help_text="Collateral you add when the offer is executed.")
    reduce = ReductionSerializer(many=True)
    principal_haircut = MoneyString(help_text="Principal forgiven.")


class CounterBoundsSerializer(FastRepresentation, serializers.Serializer):
    """How far a counter-offer may move the offered terms."""

    max_term_months = serializers.IntegerField(required=False, help_text="The longest term you may ask for.")
    min_rate = DecimalString(required=False, help_text="The lowest annual rate you may ask for.")
    min_collateral = MoneyString(required=False, help_text="The least collateral you may offer to add.")


_BOUNDS = ("max_term_months", "min_rate", "min_collateral")


class InstallmentSerializer(FastRepresentation, serializers.Serializer):
    """One installment of a repayment schedule, in the account's currency."""

    number = serializers.IntegerField()
    due = serializers.DateField()
    principal = MoneyString()
    interest = MoneyString()
    arrears = MoneyString()
    total = MoneyString()
    balance = MoneyString(help_text="Principal outstanding after this installment.")
    status = serializers.ChoiceField(choices=["due", "paid", "missed"], help_text="due in a preview.")
    paid_amount = MoneyString()
    paid_at = serializers.DateTimeField(allow_null=True)


class LoanFiguresSerializer(FastRepresentation, serializers.Serializer):
    """Your loan as it is now."""

    principal = MoneyString()
    rate_annual = DecimalString()
    accrued_interest = MoneyString()
    maturity_date = serializers.DateField(allow_null=True)


class LoanAfterSerializer(FastRepresentation, serializers.Serializer):
    """Your loan as the offer would make it, were it executed today."""

    principal = MoneyString(help_text="After the haircut, with the capitalised arrears and interest.")
    rate_annual = DecimalString()
    maturity_date = serializers.DateField()
    installments = serializers.IntegerField()
    level_payment = MoneyString(allow_null=True, help_text="The monthly payment of a level schedule.")
    total_interest = MoneyString()
    total_paid = MoneyString()


class ChangesSerializer(FastRepresentation, serializers.Serializer):
    """What accepting the offer changes for you, were it executed today."""

    loan_before = LoanFiguresSerializer()
    loan_after = LoanAfterSerializer()
    collateral_to_add = MoneyString()
    principal_haircut = MoneyString()
    reductions = ReductionSerializer(many=True)


class OfferSerializer(FastRepresentation, serializers.ModelSerializer[Proposal]):
    """An offer made to you (or your counter-offer): its terms and where it stands."""

    state = serializers.ChoiceField(choices=ProposalState.choices, read_only=True)
    source = serializers.ChoiceField(choices=ProposalSource.choices, read_only=True)  # type: ignore[assignment]
    terms = serializers.SerializerMethodField()
    terms_hash = serializers.SerializerMethodField(
        help_text="SHA-256 of these terms. Send it with accept to accept exactly what you read: if the terms are not "
        "these any more, the accept is refused (409 terms_changed)."
    )
    agreement_sha256 = serializers.SerializerMethodField(
        help_text="SHA-256 of the restructuring agreement the offer was sent with (its PDF: GET "
        "/api/v1/offers/{id}/agreement/). Send it with accept to accept exactly that document: another agreement's "
        "hash, such as an earlier offer's, is refused (409 agreement_mismatch). Null for your counter-offers (not "
        "offers yet) and for offers sent before agreements were drawn."
    )

    class Meta:
        model = Proposal
        fields = [
            "id",
            "case",
            "round",
            "source",
            "state",
            "terms",
            "terms_hash",
            "agreement_sha256",
            "offered_at",
            "expires_at",
            "decided_at",
            "countered_from",
        ]
        read_only_fields = fields

    @extend_schema_field(TermsSerializer)
    def get_terms(self, proposal: Proposal) -> dict[str, Any]:
        return TermsSerializer().to_representation(_terms_view(proposal))

    @extend_schema_field(serializers.RegexField(r"^[0-9a-f]{64}$"))
    def get_terms_hash(self, proposal: Proposal) -> str:
        return proposal.terms_hash or terms_hash(proposal.terms)

    @extend_schema_field(serializers.RegexField(r"^[0-9a-f]{64}$", allow_null=True))
    def get_agreement_sha256(self, proposal: Proposal) -> str | None:
        agreement = proposal.agreement  # loaded with the offer; None: no query
        return agreement.sha256 if agreement is not None else None


class OfferDetailSerializer(OfferSerializer):
    """An offer in full: its terms, the repayment schedule, what changes for you and the bounds of a
    counter-offer."""

    counter_bounds = serializers.SerializerMethodField()
    decision_reason = serializers.CharField(read_only=True)
    schedule_basis = serializers.SerializerMethodField(
        help_text="executed: the schedule in force; preview: as if executed today on your loan as it is now; "
        "none: no schedule can be drawn (no active loan)."
    )
    schedule = serializers.SerializerMethodField()
    changes = serializers.SerializerMethodField()

    class Meta(OfferSerializer.Meta):
        fields = [*OfferSerializer.Meta.fields, "counter_bounds", "decision_reason", "schedule_basis", "schedule"]
        fields += ["changes"]
        read_only_fields = fields

    @extend_schema_field(CounterBoundsSerializer)
    def get_counter_bounds(self, proposal: Proposal) -> dict[str, Any]:
        bounds = {k: v for k, v in (proposal.counter_bounds or {}).items() if k in _BOUNDS}
        bounds["currency"] = proposal.case.account.base_currency
        return CounterBoundsSerializer().to_representation(bounds)

    def _outlook(self, proposal: Proposal) -> Outlook:
        """Computed once per proposal for the three fields that show it."""
        cache: dict[int, Outlook] = self.__dict__.setdefault("_outlooks", {})
        if proposal.pk not in cache:
            cache[proposal.pk] = offer_outlook(proposal)
        return cache[proposal.pk]

    @extend_schema_field(serializers.ChoiceField(choices=["executed", "preview", "none"]))
    def get_schedule_basis(self, proposal: Proposal) -> str:
        return self._outlook(proposal).basis

    @extend_schema_field(InstallmentSerializer(many=True))
    def get_schedule(self, proposal: Proposal) -> list[dict[str, Any]]:
        row = InstallmentSerializer()
        return [row.to_representation(installment) for installment in self._outlook(proposal).installments]

    @extend_schema_field(ChangesSerializer(allow_null=True))
    def get_changes(self, proposal: Proposal) -> dict[str, Any] | None:
        changes = self._outlook(proposal).changes
        return None if changes is None else ChangesSerializer().to_representation(changes)


def _terms_view(proposal: Proposal) -> dict[str, Any]:
    """The terms as TermsSerializer reads them, with the currency their amounts are in."""
    currency = proposal.case.account.base_currency
    terms = offer_terms(proposal)
    if terms is None:  # never for a stored proposal (its terms were validated), but never a 500 either
        return {**Terms(term_months=0).to_json(), "reduce": [], "currency": currency}
    data = terms.to_json()
    data["reduce"] = [{"position": p, "fraction": f} for p, f in data["reduce"]]
    data["currency"] = currency
    return data


_STATE_FILTER = OpenApiParameter(
    "state", str, enum=ProposalState.values, required=False, description="Only the offers in this state."
)


@extend_schema(tags=["offers"], parameters=[_STATE_FILTER])
class OfferListView(ClientView, generics.ListAPIView[Proposal]):
    """The offers made to you and your counter-offers, newest first; `?state=offered` for the open ones."""

    serializer_class = OfferSerializer
    query_parameters = ("state",)

    def get_queryset(self) -> QuerySet[Proposal]:
        offers = client_offers(self.client_id).order_by("-pk")
        wanted = self.request.query_params.get("state")
        if wanted is not None:
            if wanted not in ProposalState.values:
                raise serializers.ValidationError(
                    {"state": [serializers.ErrorDetail(f"{wanted!r} is not a proposal state", code="invalid_choice")]}
                )
            offers = offers.filter(state=wanted)
        return offers


@extend_schema(tags=["offers"])
class OfferDetailView(ClientView, generics.RetrieveAPIView[Proposal]):
    """One offer: the terms, the repayment schedule and what changes for you; for an open offer, the bounds of a
    counter-offer."""

    serializer_class = OfferDetailSerializer

    def get_queryset(self) -> QuerySet[Proposal]:
        return client_offers(self.client_id).select_related("case__account")


def _offer_response(proposal: Proposal, code: int = status.HTTP_200_OK) -> Response:
    """The offer as the service left it (with its case and account loaded), in full."""
    return Response(OfferDetailSerializer().to_representation(proposal), status=code)


class AcceptSerializer(StrictSerializer):
    """The offer is accepted as it stands, with the restructuring agreement it was sent with. Give `terms_hash`
    (the offer's, as you read it) to accept only those terms, and `agreement_sha256` (its agreement's) to accept only
    that document: if either is not the offer's, 409 (`terms_changed`, `agreement_mismatch`) and nothing happens."""

    terms_hash = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        required=False,
        help_text="The offer's terms_hash as you read it (64 lowercase hex digits).",
    )
    agreement_sha256 = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        required=False,
        help_text="The SHA-256 of the agreement you read (the offer's agreement_sha256, the X-Agreement-SHA256 header "
        "of its download): 64 lowercase hex digits.",
    )


class DeclineSerializer(StrictSerializer):
    """Why you decline the offer."""

    reason = serializers.CharField(max_length=2000, help_text="Why you decline (the officers read it).")


class CounterSerializer(StrictSerializer):
    """The terms you ask for instead, within the offer's counter_bounds; what you leave out stays as offered."""

    term_months = WholeNumber(min_value=1, max_value=600, required=False)
    rate_annual = DecimalString(min_value=Decimal(0), max_value=Decimal(1), required=False)
    collateral_to_add = DecimalString(
        min_value=Decimal(0),
        required=False,
        help_text="In the account's currency, with at most its decimal places (2 for USD, 8 for BTC).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError(
                "ask for something: term_months, rate_annual or collateral_to_add", code="required"
            )
        return attrs


class _OfferActionView(ClientView):
    def _own_offer(self, pk: int) -> Proposal:
        offer = client_offer(self.client_id, pk)
        if offer is None:
            raise NotFound(f"offer {pk} does not exist")
        return offer


@extend_schema(tags=["offers"])
class OfferAcceptView(_OfferActionView):
    """Accept an open offer. Exactly one of accept, decline, counter or expiry happens to an offer: the others
    get 409 `negotiation_conflict`."""

    serializer_class = AcceptSerializer

    @extend_schema(request=AcceptSerializer, responses={200: OfferDetailSerializer})
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        serializer = AcceptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        seen = serializer.validated_data.get("terms_hash")
        signed = serializer.validated_data.get("agreement_sha256")
        accepted = offer_accept(proposal_id=pk, client_id=self.client_id, terms_hash=seen, agreement_sha256=signed)
        return _offer_response(accepted)


AGREEMENT_HEADER = "X-Agreement-SHA256"


@extend_schema(
    tags=["offers"],
    responses={
        (200, "application/pdf"): OpenApiResponse(
            OpenApiTypes.BINARY, description="The agreement's PDF, the very bytes whose SHA-256 the header gives."
        )
    },
    parameters=[
        OpenApiParameter(
            AGREEMENT_HEADER,
            str,
            OpenApiParameter.HEADER,
            response=[200],
            description="The SHA-256 of the PDF (64 lowercase hex digits): the offer's agreement_sha256.",
        )
    ],
)
class OfferAgreementView(ClientView, DownloadView):
    """The restructuring agreement of an offer made to you, as a PDF: the parties, your loan as it stands and the new
    terms, the full repayment schedule, collateral and reductions, the conditions of default and the offer's expiry.
    It is the document the offer was sent with, kept as it was drawn: accept the offer naming its SHA-256 (the
    X-Agreement-SHA256 header, the offer's agreement_sha256). An offer sent before agreements were drawn has none
    (404)."""

    def get(self, request: Request, pk: int) -> HttpResponseBase:
        agreement = client_offer_agreement(self.client_id, pk)
        return file_response(
            agreement_content(agreement),
            content_type="application/pdf",
            filename=f"agreement-offer-{pk}.pdf",
            headers={AGREEMENT_HEADER: agreement.sha256},
        )


@extend_schema(tags=["offers"])
class OfferDeclineView(_OfferActionView):
    """Decline an open offer, with a reason; the case goes back to the officers."""

    serializer_class = DeclineSerializer

    @extend_schema(request=DeclineSerializer, responses={200: OfferDetailSerializer})
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        serializer = DeclineSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = serializer.validated_data["reason"]
        return _offer_response(offer_decline(proposal_id=pk, client_id=self.client_id, reason=reason))


@extend_schema(tags=["offers"])
class OfferCounterView(_OfferActionView):
    """Counter-propose: the offer becomes `countered` and your terms a new proposal in the next round, valued and
    pending the officers' approval (201, the new proposal). Terms outside the offer's counter_bounds: 400 naming
    the field."""

    serializer_class = CounterSerializer

    @extend_schema(request=CounterSerializer, responses={201: OfferDetailSerializer})
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        serializer = CounterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        offer = self._own_offer(pk)
        asked = {k: v if isinstance(v, int) else str(v) for k, v in serializer.validated_data.items()}
        counter = offer_counter(proposal_id=offer.pk, client_id=self.client_id, terms={**offer.terms, **asked})
        return _offer_response(counter, status.HTTP_201_CREATED)


# --------------------------------------------------------------------------------------- loan, schedule


class LoanSerializer(FastRepresentation, serializers.ModelSerializer[MarginLoan]):
    """The loan of one of your accounts, in its currency, with the repayment schedule in force."""

    principal = MoneyString(currency="account.base_currency", read_only=True)
    accrued_interest = MoneyString(currency="account.base_currency", read_only=True)
    schedule = serializers.SerializerMethodField(help_text="The installments of the restructuring in force, if any.")

    class Meta:
        model = MarginLoan
        fields = ["id", "principal", "rate_annual", "accrued_interest", "status", "opened_at", "maturity_date"]
        fields += ["schedule"]
        read_only_fields = fields

    @extend_schema_field(InstallmentSerializer(many=True))
    def get_schedule(self, loan: MarginLoan) -> list[dict[str, Any]]:
        row = InstallmentSerializer()
        return [row.to_representation(installment) for installment in loan_schedule(loan)]


@extend_schema(tags=["accounts"])
class LoanView(ClientView, generics.RetrieveAPIView[MarginLoan]):
    """The loan of one of your accounts (the active one, else the latest) and its repayment schedule."""

    serializer_class = LoanSerializer

    def get_object(self) -> MarginLoan:
        account = generics.get_object_or_404(client_accounts(self.client_id), pk=self.kwargs["pk"])
        loan = account_loan(account)
        if loan is None:
            raise NotFound(f"account {account.pk} has no loan")
        return loan


# -------------------------------------------------------------------------------------------- top-ups


class TopUpSerializer(FastRepresentation, serializers.ModelSerializer[CollateralTopUp]):
    """Collateral you declared sent to one of your accounts: pending until operations confirm it arrived."""

    amount = MoneyString(currency="account.base_currency", read_only=True, help_text="In the account's currency.")

    class Meta:
        model = CollateralTopUp
        fields = ["id", "account", "amount", "reference", "status", "declared_at", "decided_at"]
        read_only_fields = fields


class TopUpDeclareSerializer(StrictSerializer):
    """A top-up to declare: collateral you sent to one of your accounts."""

    account = WholeNumber(help_text="The id of your account the collateral was sent to.")
    amount = DecimalString(
        min_value=Decimal("0.00000001"),
        help_text="In the account's base currency, with at most its decimal places (2 for USD, 8 for BTC).",
    )
    reference = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


@extend_schema(tags=["collateral"])
class TopUpListView(ClientView, generics.ListAPIView[CollateralTopUp]):
    """Your declared collateral top-ups, newest first. POST declares one: pending until operations confirm the
    funds arrived (a confirmed top-up that restores the margin cures the case at the next sweep)."""

    serializer_class = TopUpSerializer

    def get_queryset(self) -> QuerySet[CollateralTopUp]:
        return client_top_ups(self.client_id).order_by("-declared_at", "-pk")

    @extend_schema(request=TopUpDeclareSerializer, responses={201: TopUpSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        serializer = TopUpDeclareSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        top_up = topup_declare(
            account_id=data["account"], client_id=self.client_id, amount=data["amount"], reference=data["reference"]
        )
        return Response(TopUpSerializer(top_up).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["collateral"])
class TopUpDetailView(ClientView, generics.RetrieveAPIView[CollateralTopUp]):
    """One of your top-ups."""

    serializer_class = TopUpSerializer

    def get_queryset(self) -> QuerySet[CollateralTopUp]:
        return client_top_ups(self.client_id)


# ------------------------------------------------------------------------------------------- promises to pay


class PromiseSerializer(FastRepresentation, serializers.ModelSerializer[PromiseToPay]):
    """A promise to pay on one of your cases: kept when at least its amount less the tolerance arrives (a repayment
    or a confirmed top-up) by the end of its date plus the grace (WORKOUT_PROMISE_TOLERANCE and
    WORKOUT_PROMISE_GRACE_DAYS); broken otherwise."""

    amount = MoneyString(currency="case.account.base_currency", read_only=True, help_text="In the account's currency.")
    received = MoneyString(
        currency="case.account.base_currency",
        read_only=True,
        allow_null=True,
        help_text="What had arrived when it was kept or broken; null while open.",
    )

    class Meta:
        model = PromiseToPay
        fields = ["id", "case", "amount", "due", "method", "source", "status", "created_at", "resolved_at", "received"]
        read_only_fields = fields


class PromiseMakeSerializer(StrictSerializer):
    """A promise to pay: how much, by when, how."""

    amount = DecimalString(
        min_value=Decimal("0.00000001"),
        help_text="In the account's base currency, with at most its decimal places (2 for USD, 8 for BTC).",
    )
    due = serializers.DateField(input_formats=["iso-8601"], help_text="The date you will pay by (YYYY-MM-DD).")
    method = serializers.ChoiceField(choices=PromiseMethod.choices, help_text="How you will pay.")


@extend_schema(tags=["cases"])
class CasePromisesView(ClientView, generics.ListAPIView[PromiseToPay]):
    """The promises to pay on one of your cases, newest first. POST makes one (201): a case has at most one open
    promise (another: 409 `promise_conflict`), a closed case takes none; a date in the past or more than a year
    ahead, or an amount with more places than the currency's, is 400 naming the field."""

    serializer_class = PromiseSerializer

    def get_queryset(self) -> QuerySet[PromiseToPay]:
        case = generics.get_object_or_404(client_cases(self.client_id), pk=self.kwargs["pk"])
        return client_promises(self.client_id).filter(case=case).order_by("-created_at", "-pk")

    @extend_schema(request=PromiseMakeSerializer, responses={201: PromiseSerializer})
    @idempotent
    def post(self, request: Request, pk: int) -> Response:
        serializer = PromiseMakeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        promise = promise_make(
            case_id=pk, amount=data["amount"], due=data["due"], method=data["method"], client_id=self.client_id
        )
        promise = client_promises(self.client_id).get(pk=promise.pk)
        return Response(PromiseSerializer(promise).data, status=status.HTTP_201_CREATED)


# ---------------------------------------------------------------------------------------------- documents


class DocumentSerializer(FastRepresentation, serializers.ModelSerializer[Document]):
    """A document of yours: one you uploaded, or one the lender added to one of your cases."""

    kind = serializers.ChoiceField(choices=DocumentKind.choices, read_only=True)
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=DocumentSource.choices, read_only=True, help_text="client: you uploaded it; officer: the lender did."
    )
    name = serializers.CharField(read_only=True, help_text="The name it was uploaded with, made safe.")
    content_type = serializers.ChoiceField(
        choices=sorted(ACCEPTED), read_only=True, help_text="Told from the content, not the name."
    )
    size = serializers.IntegerField(read_only=True, help_text="In bytes.")
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$", read_only=True, help_text="SHA-256 of the content.")

    class Meta:
        model = Document
        fields = ["id", "kind", "case", "name", "content_type", "size", "sha256", "source", "created_at"]
        read_only_fields = fields


class DocumentUploadSerializer(StrictSerializer):
    """A document to upload, as multipart/form-data: the file (a PDF, a PNG or a JPEG), what it is, and optionally
    the case of yours it concerns."""

    file = serializers.FileField(
        allow_empty_file=True,  # an empty file gets the documents' own refusal (file_empty), with the others
        help_text="The document: PDF, PNG or JPEG, told by its content (not its name), at most "
        "WORKOUT_DOCUMENT_MAX_BYTES (10 MiB by default). Refused with 400: an empty file (file_empty), a larger one "
        "(file_too_large), an archive of any kind, a .docx included (file_is_archive), an executable "
        "(file_is_executable), any other type (file_type_refused).",
    )
    kind = serializers.ChoiceField(choices=DocumentKind.choices, help_text="What the document is.")
    case = serializers.IntegerField(min_value=1, required=False, help_text="The id of your case it concerns.")


@extend_schema(tags=["documents"])
class DocumentListView(ClientView, generics.ListAPIView[Document]):
    """Your documents, newest first: those you uploaded and those the lender added to your cases. POST uploads one
    (multipart/form-data, 201): it is kept only if it passes every check (its type by content, its size), with its
    SHA-256; a refused file is a 400 naming the problem (field `file`), and nothing of it is kept."""

    serializer_class = DocumentSerializer
    parser_classes = [MultiPartParser]
    max_body_setting = "WORKOUT_DOCUMENT_MAX_BYTES"
    max_body_allowance = 64 * 1024  # the form's boundaries, kind and case

    def get_queryset(self) -> QuerySet[Document]:
        return client_documents(self.client_id).order_by("-created_at", "-pk")

    def body_too_large(self, limit: int) -> Exception:
        return FileTooLargeError(
            f"the upload is larger than {limit} bytes: a document may be at most "
            f"{settings.WORKOUT_DOCUMENT_MAX_BYTES} bytes"
        )

    @extend_schema(request={"multipart/form-data": DocumentUploadSerializer}, responses={201: DocumentSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        serializer = DocumentUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["file"]
        document = document_upload_by_client(
            client_id=self.client_id, kind=data["kind"], file=upload, name=upload.name or "", case_id=data.get("case")
        )
        return Response(DocumentSerializer(document).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["documents"])
class DocumentDetailView(ClientView, generics.RetrieveAPIView[Document]):
    """One of your documents: what it is, its name, type, size and SHA-256 (its content: .../content/)."""

    serializer_class = DocumentSerializer

    def get_queryset(self) -> QuerySet[Document]:
        return client_documents(self.client_id)


@extend_schema(
    tags=["documents"],
    responses={
        (200, media): OpenApiResponse(OpenApiTypes.BINARY, description="The document's content, as uploaded.")
        for media in sorted(ACCEPTED)
    },
    parameters=[
        OpenApiParameter(
            "X-Document-SHA256",
            str,
            OpenApiParameter.HEADER,
            response=[200],
            description="The SHA-256 of the content (the document's sha256).",
        )
    ],
)
class DocumentContentView(ClientView, DownloadView):
    """The content of one of your documents, in its type (PDF, PNG or JPEG), to save under its name."""

    def get(self, request: Request, pk: int) -> HttpResponseBase:
        document = client_documents(self.client_id).filter(pk=pk).first()
        if document is None:
            raise NotFound(f"document {pk} does not exist")
        return file_response(
            document_open(document),
            content_type=document.content_type,
            filename=document.name,
            headers={"X-Document-SHA256": document.sha256},
        )


# ------------------------------------------------------------------------------------------------- messages


class MessageTemplateRefSerializer(FastRepresentation, serializers.Serializer):
    """The version of the template a message was written from."""

    id = serializers.IntegerField()
    version = serializers.IntegerField()
    locale = serializers.CharField()


class MessageSerializer(FastRepresentation, serializers.ModelSerializer[Notification]):
    """A message the lender sent you about one of your cases, as it was written: by email, SMS or letter (rendered
    from a template: `template` names its version) or to your webhook (`payload` is what it carried)."""

    kind = serializers.ChoiceField(choices=NotificationKind.choices, read_only=True)
    channel = serializers.ChoiceField(choices=NotificationChannel.choices, read_only=True)
    status = serializers.ChoiceField(
        choices=NotificationStatus.choices,
        read_only=True,
        help_text="pending: not sent yet (see deferred_until); sent; failed: given up on after its last attempt; "
        "bounced: sent, then reported undelivered.",
    )
    template = serializers.SerializerMethodField()
    payload = serializers.JSONField(read_only=True, help_text="The event the message tells of, as data.")
    deferred_until = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="Held for your quiet hours until then; null: not held."
    )
    letter_sha256 = serializers.CharField(
        read_only=True, help_text="A letter: the SHA-256 of the PDF sent; empty otherwise, or before it is produced."
    )

    class Meta:
        model = Notification
        fields = [
            "id",
            "case",
            "kind",
            "channel",
            "recipient",
            "locale",
            "template",
            "subject",
            "body",
            "payload",
            "status",
            "attempts",
            "created_at",
            "deferred_until",
            "sent_at",
            "bounced_at",
            "letter_sha256",
        ]
        read_only_fields = fields

    @extend_schema_field(MessageTemplateRefSerializer(allow_null=True))
    def get_template(self, message: Notification) -> dict[str, Any] | None:
        template = message.template
        if template is None:
            return None
        return {"id": template.pk, "version": template.version, "locale": template.locale}


@extend_schema(tags=["cases"])
class CaseMessagesView(ClientView, generics.ListAPIView[Notification]):
    """The messages sent to you about one of your cases, oldest first: every email, SMS, letter and webhook call,
    with what it said (as it was written when the event happened), the template version it came from, and whether it
    went. Another client's case: 404."""

    serializer_class = MessageSerializer

    def get_queryset(self) -> QuerySet[Notification]:
        case = generics.get_object_or_404(client_cases(self.client_id), pk=self.kwargs["pk"])
        return client_case_messages(self.client_id, case.pk)
