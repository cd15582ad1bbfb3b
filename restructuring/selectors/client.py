"""What a client reads through the API: its cases, the offers made to it, its loans and their schedules, its
top-ups, its webhook endpoints and their delivery logs. Every read starts from the client, so another client's
object is simply not found (404)."""

from __future__ import annotations

from django.db.models import F, Q, QuerySet

from accounts.models import LoanStatus, MarginAccount, MarginLoan, WebhookEndpoint
from restructuring.models import (
    Case,
    CollateralTopUp,
    Installment,
    PromiseToPay,
    Proposal,
    ProposalSource,
    ProposalState,
    WebhookDelivery,
)
from restructuring.selectors.schedules import ScheduleRow, installment_rows

# The proposals a client may see: those offered to it and its own counter-offers, never the officers' drafts nor
# proposals that were never offered.
CLIENT_VISIBLE_PROPOSALS = Q(offered_at__isnull=False) | Q(source=ProposalSource.CLIENT)


def client_proposals(client_id: int) -> QuerySet[Proposal]:
    """The proposals a client may see (CLIENT_VISIBLE_PROPOSALS). Any other proposal, its own case's or another
    client's, does not exist for the client (404 on every route, never a conflict naming its state)."""
    return Proposal.objects.filter(case__account__client_id=client_id).filter(CLIENT_VISIBLE_PROPOSALS)


def client_offers(client_id: int) -> QuerySet[Proposal]:
    return client_proposals(client_id).select_related("case__account", "agreement")


def client_offer(client_id: int, proposal_id: int) -> Proposal | None:
    return client_offers(client_id).filter(pk=proposal_id).first()


def client_cases(client_id: int) -> QuerySet[Case]:
    return Case.objects.filter(account__client_id=client_id).select_related("account")


def client_promises(client_id: int) -> QuerySet[PromiseToPay]:
    return PromiseToPay.objects.filter(case__account__client_id=client_id).select_related("case__account")


def client_top_ups(client_id: int) -> QuerySet[CollateralTopUp]:
    return CollateralTopUp.objects.filter(account__client_id=client_id).select_related("account")


def client_webhook_endpoints(client_id: int) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(client_id=client_id)


def client_webhook_deliveries(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """The delivery log of one endpoint (already found among the client's), each attempt with its event's type
    (`event_type`)."""
    return WebhookDelivery.objects.filter(endpoint=endpoint).annotate(event_type=F("notification__kind"))


def account_loan(account: MarginAccount) -> MarginLoan | None:
    """The account's active loan, else its latest, with the account."""
    loans = MarginLoan.objects.filter(account=account).select_related("account")
    return loans.filter(status=LoanStatus.ACTIVE).first() or loans.order_by("-opened_at", "-pk").first()


def loan_schedule(loan: MarginLoan) -> list[ScheduleRow]:
    """The installments of the restructuring in force on the loan's account (its latest executed proposal's)."""
    executed = (
        Proposal.objects.filter(case__account_id=loan.account_id, state=ProposalState.EXECUTED)
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )
    rows = Installment.objects.filter(proposal_id=executed).order_by("number") if executed else []
    return installment_rows(rows, loan.account.base_currency)
