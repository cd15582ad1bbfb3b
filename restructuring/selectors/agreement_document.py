"""What the restructuring agreement of an offer sets out, for its template (restructuring/agreement.html): read when
the offer is sent, the proposal locked (restructuring/services/agreements.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from babel.numbers import format_decimal
from django.conf import settings

from accounts.models import Position
from restructuring.models import Proposal
from restructuring.terms import terms_hash

AGREEMENT_TEMPLATE = "restructuring/agreement.html"


@dataclass(frozen=True)
class ReductionLine:
    position_id: int
    symbol: str
    quantity: str  # held now, in the language's digits ("" when the position is gone)
    fraction_pct: str
    to_sell: str


def agreement_context(proposal: Proposal, *, language: str, now: datetime) -> dict[str, Any]:
    """What the agreement of `proposal` (an offer being sent: offered_at and expires_at set) says, for its template.
    The schedule is the one executing the offer would build on `now`'s date on the loan as it stands (the API's
    preview of the offer: restructuring.selectors.offers)."""
    # Imported here: selectors.offers imports the negotiation services (execution_schedule), whose offers import
    # this module to draw the agreement.
    from restructuring.selectors.offers import offer_outlook, offer_terms

    case = proposal.case
    account = case.account
    terms = offer_terms(proposal)
    outlook = offer_outlook(proposal)
    changes = outlook.changes or {}
    return {
        "lender_name": settings.WORKOUT_LENDER_NAME,
        "proposal": proposal,
        "terms_hash": proposal.terms_hash or terms_hash(proposal.terms),
        "case": case,
        "account": account,
        "client": account.client,
        "currency": account.base_currency,
        "terms": terms,
        "schedule": outlook.installments,
        "schedule_basis": outlook.basis,
        "schedule_total": sum((row.total for row in outlook.installments), Decimal(0)),
        "loan_before": changes.get("loan_before"),
        "loan_after": changes.get("loan_after"),
        "rate_before_pct": _percent(changes.get("loan_before", {}).get("rate_annual"), language),
        "rate_after_pct": _percent(changes.get("loan_after", {}).get("rate_annual"), language),
        "reductions": _reductions(proposal, terms.reduce if terms else (), language),
        "collateral_due_days": settings.WORKOUT_COLLATERAL_DUE_DAYS,
        "payment_grace_days": settings.WORKOUT_PAYMENT_GRACE_DAYS,
        "as_of": now.date(),
    }


def _percent(rate: Decimal | str | None, language: str) -> str:
    if rate is None or rate == "":
        return ""
    return f"{format_decimal(Decimal(str(rate)) * 100, format='#,##0.00##', locale=language)}\u00a0%"


def _units(quantity: Decimal, language: str) -> str:
    """A quantity of an instrument, its trailing zeros dropped (10, 2.5; 2,5 in German)."""
    return str(format_decimal(quantity, format="#,##0.########", locale=language))


def _reductions(proposal: Proposal, reduce: tuple[tuple[int, Decimal], ...], language: str) -> list[ReductionLine]:
    positions = {
        p.pk: p
        for p in Position.objects.filter(pk__in=[pid for pid, _ in reduce], account_id=proposal.case.account_id)
        .select_related("instrument")
        .only("pk", "quantity", "instrument__symbol")
    }
    lines = []
    for position_id, fraction in reduce:
        position = positions.get(position_id)
        lines.append(
            ReductionLine(
                position_id=position_id,
                symbol=position.instrument.symbol if position else f"#{position_id}",
                quantity=_units(position.quantity, language) if position else "",
                fraction_pct=_percent(fraction, language),
                to_sell=_units((position.quantity * fraction).quantize(Decimal("1E-8")), language) if position else "",
            )
        )
    return lines
