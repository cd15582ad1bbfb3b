"""An offer as its client reads it: the schedule it gives (the stored one once executed, else a preview as the
execution would build it today) and what it changes for the client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.utils import timezone

from accounts.models import LoanStatus, MarginLoan
from core.money import currency_quantum
from restructuring.models import Installment, Proposal, ProposalState
from restructuring.schedules import Schedule, ScheduleError
from restructuring.selectors.schedules import ScheduleRow, installment_rows, preview_rows
from restructuring.services.negotiation.execution import execution_schedule
from restructuring.terms import Terms, TermsError


@dataclass(frozen=True)
class Outlook:
    basis: str  # executed | preview | none
    installments: list[ScheduleRow]
    changes: dict[str, Any] | None  # what accepting changes for the client (a preview only)


def offer_terms(proposal: Proposal) -> Terms | None:
    """The offer's terms, None if they do not parse (never for a stored proposal: its terms were validated)."""
    try:
        return Terms.from_json(proposal.terms)
    except TermsError:
        return None


def offer_outlook(proposal: Proposal) -> Outlook:
    """The schedule of an offer: the stored one once executed, else a preview as the execution would build it
    today (restructuring.services.negotiation.proposal_execute: the haircut off the principal, the accrued
    interest as arrears, the offer's rate or the loan's), with what changes for the client."""
    currency = proposal.case.account.base_currency
    if proposal.state == ProposalState.EXECUTED:
        stored = Installment.objects.filter(proposal=proposal).order_by("number")
        return Outlook("executed", installment_rows(stored, currency), None)
    terms = offer_terms(proposal)
    loan = MarginLoan.objects.filter(account_id=proposal.case.account_id, status=LoanStatus.ACTIVE).first()
    if terms is None or loan is None:
        return Outlook("none", [], None)
    try:
        schedule = execution_schedule(loan, terms, currency_quantum(currency), timezone.now().date())
    except ScheduleError:
        return Outlook("none", [], None)
    return Outlook("preview", preview_rows(schedule.installments, currency), _changes(loan, terms, schedule, currency))


def _changes(loan: MarginLoan, terms: Terms, schedule: Schedule, currency: str) -> dict[str, Any]:
    last_due: date = schedule.installments[-1].due
    return {
        "currency": currency,
        "loan_before": {
            "currency": currency,
            "principal": loan.principal,
            "rate_annual": loan.rate_annual,
            "accrued_interest": loan.accrued_interest,
            "maturity_date": loan.maturity_date,
        },
        "loan_after": {
            "currency": currency,
            "principal": schedule.terms.principal + schedule.capitalised,
            "rate_annual": schedule.terms.rate_annual,
            "maturity_date": last_due,
            "installments": len(schedule.installments),
            "level_payment": schedule.level_payment,
            "total_interest": schedule.total_interest,
            "total_paid": schedule.total_paid,
        },
        "collateral_to_add": terms.collateral_to_add,
        "principal_haircut": terms.principal_haircut,
        "reductions": [{"position": p, "fraction": f} for p, f in terms.reduce],
    }
