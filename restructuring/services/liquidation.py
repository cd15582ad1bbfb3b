"""The liquidation path: a margin call that runs out goes to LIQUIDATING with a plan; booked fills close the
positions, repay the loan, and leave either a LIQUIDATED case or, when the proceeds fall short of the debt,
a WRITTEN_OFF one that records the bad debt.

This system does not trade. `case_liquidate` issues the orders (restructuring.liquidation plans them under a
participation cap with square-root impact); `liquidation_book` books the fills it is given (the demo fills
every order at its expected price). The book's side, how fills move positions, cash and the loan, is the
ledger's (accounts/services/ledger.py), in Decimal rounded to the account currency's quantum: a sale brings its
proceeds into cash, a derivative closed realises its PnL, an isolated position returns its margin plus PnL (never
below 0), a debit cash balance becomes loan principal; once every order is filled, cash repays accrued interest,
then principal, and debt left with nothing to sell is written off.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext
from django_fsm import TransitionNotAllowed

from accounts import risk
from accounts.models import InstrumentKind, MarginAccount, Position, ScenarioClass
from accounts.selectors import SECONDS_PER_YEAR, latest_prices_load
from accounts.services import ledger
from core.audit import audit_record
from core.audit_catalogue import AuditAction
from core.errors import Conflict, PermissionDenied, ValidationError
from core.money import currency_quantum
from restructuring import liquidation
from restructuring.audit_events import (
    CASE_LIQUIDATE,
    CASE_LIQUIDATED,
    CASE_WRITE_OFF,
    LIQUIDATION_FILL,
    transition_event,
)
from restructuring.models import (
    Case,
    CaseState,
    LiquidationOrder,
    LiquidationPlan,
    LiquidationStatus,
    NotificationKind,
    Proposal,
    ProposalKind,
    ProposalState,
)
from restructuring.services.case_end import proposals_withdraw_for_cases
from restructuring.services.notifications import notification_enqueue

logger = logging.getLogger(__name__)

DEADLINES_ACTOR = "deadlines"


class CaseTransitionError(Conflict):
    """The case's state machine has no edge to liquidation from where the case is (it moved on meanwhile)."""

    code = "case_transition_not_allowed"


class PermissionDeniedError(PermissionDenied):
    """The officer may not send the case to liquidation (alone, or without the permission) or book its fills."""


class LiquidationPlanError(ValidationError):
    """The account cannot be liquidated as the parameters allow (too illiquid for the allowed days, no price):
    the case stays where it was and needs an officer."""

    code = "liquidation_not_plannable"


def _quantum(account: MarginAccount) -> Decimal:
    return currency_quantum(account.base_currency)


def _decimal(value: float, places: str = "1E-8") -> Decimal:
    return Decimal(repr(float(value))).quantize(Decimal(places), rounding=ROUND_HALF_EVEN)


def _audit(
    case: Case,
    action: AuditAction[Case],
    before: str,
    *,
    actor: AbstractUser | None,
    system_actor: str,
    reason: str,
    **payload: Any,
) -> None:
    audit_record(
        transition_event(action, case, before, actor=actor, system_actor=system_actor, reason=reason, **payload)
    )


# ----------------------------------------------------------------------------------------- planning


def _holdings(account: MarginAccount, now: datetime) -> tuple[list[liquidation.Holding], list[Position]]:
    """The account's open positions as the planner's holdings (units = quantity x contract size), at the
    latest prices: options at their Black-Scholes value from their underlying."""
    positions = list(
        account.positions.exclude(quantity=0).select_related("instrument", "instrument__underlying").order_by("pk")
    )
    instrument_ids = np.array(
        sorted({i for p in positions for i in (p.instrument_id, p.instrument.underlying_id) if i})
    )
    prices, implied = latest_prices_load(instrument_ids=instrument_ids, as_of=now)
    price_of = {int(i): (float(prices[k]), float(implied[k])) for k, i in enumerate(instrument_ids)}
    holdings = []
    for position in positions:
        instrument = position.instrument
        size = float(instrument.contract_size)
        if instrument.kind == InstrumentKind.OPTION:
            unit_price = _option_price(instrument, price_of, now)
        else:
            unit_price = price_of[instrument.pk][0]
        if not (unit_price >= 0 and math.isfinite(unit_price)):
            raise ValidationError(
                gettext("no price for %(symbol)s: it cannot be liquidated") % {"symbol": instrument.symbol},
                symbol=instrument.symbol,
            )
        holdings.append(
            liquidation.Holding(
                position_id=position.pk,
                symbol=instrument.symbol,
                quantity=float(position.quantity) * size,
                price=max(unit_price, 1e-12),
                daily_volume=float(instrument.average_daily_volume) * size,
                daily_volatility=float(instrument.daily_volatility),
                haircut=float(instrument.haircut),
            )
        )
    return holdings, positions


def _option_price(instrument: object, price_of: Mapping[int, tuple[float, float]], now: datetime) -> float:
    underlying = instrument.underlying  # type: ignore[attr-defined]
    spot, implied = price_of[underlying.pk]
    if not math.isfinite(implied):
        days = 365.0 if underlying.scenario_class == ScenarioClass.CRYPTO else 252.0
        implied = float(underlying.daily_volatility) * math.sqrt(days)
    years = (instrument.expiry - now).total_seconds() / SECONDS_PER_YEAR  # type: ignore[attr-defined]
    return float(
        risk.black_scholes(
            spot,
            float(instrument.strike),  # type: ignore[attr-defined]
            years,
            settings.WORKOUT_RISK_FREE_RATE,
            float(underlying.carry_yield),
            implied,
            instrument.option_type == "call",  # type: ignore[attr-defined]
        )
    )


def case_liquidate(
    *,
    case_id: int,
    reason: str,
    actor: AbstractUser | None = None,
    system_actor: str = DEADLINES_ACTOR,
    now: datetime | None = None,
    proposal_id: int | None = None,
) -> LiquidationPlan:
    """Move the case to LIQUIDATING, issue its liquidation plan and withdraw the case's live proposals. Idempotent:
    a case already liquidating returns its plan.

    The system (the margin call's deadline) calls it alone; a person only by carrying out an approved liquidation
    proposal (negotiation.proposal_liquidate, which passes its id): nobody sends a case to liquidation alone."""
    now = now or timezone.now()
    if actor is not None and proposal_id is None:
        raise PermissionDeniedError(
            gettext(
                "%(actor)s may not send case %(case_id)s to liquidation alone: propose it, and another officer approves"
            )
            % {"actor": actor, "case_id": case_id},
            case_id=case_id,
        )
    with transaction.atomic():
        case = Case.objects.select_for_update(of=("self",)).select_related("account").get(pk=case_id)
        # The permission itself, not has_transition_perm: that also answers no when the state has no such edge,
        # which is a conflict (or, when already liquidating, the plan back), not a refusal of the officer.
        if actor is not None and not actor.has_perm("restructuring.liquidate_case"):
            raise PermissionDeniedError(
                gettext("%(actor)s may not send case %(case_id)s to liquidation")
                % {"actor": actor, "case_id": case_id},
                case_id=case_id,
            )
        if actor is not None and not _carried_out(proposal_id, case_id):
            raise PermissionDeniedError(
                gettext("proposal %(proposal_id)s is no approved liquidation of case %(case_id)s being carried out")
                % {"proposal_id": proposal_id, "case_id": case_id},
                case_id=case_id,
            )
        if case.state == CaseState.LIQUIDATING:
            return case.liquidation_plan
        before = case.state
        try:
            case.liquidate()
        except TransitionNotAllowed:
            raise CaseTransitionError(
                gettext("case %(case_id)s is %(before)s: it cannot go to liquidation")
                % {"case_id": case_id, "before": before},
                case_id=case_id,
            ) from None
        holdings, positions = _holdings(case.account, now)
        position_of = {p.pk: p for p in positions}
        params = liquidation.PlanParams(
            participation=settings.WORKOUT_LIQUIDATION_PARTICIPATION,
            impact_coefficient=settings.WORKOUT_IMPACT_COEFFICIENT,
            max_days=settings.WORKOUT_LIQUIDATION_MAX_DAYS,
        )
        try:
            plan = liquidation.liquidation_plan(holdings, params)
        except ValueError as exc:  # e.g. a position too large to sell within the allowed days
            raise LiquidationPlanError(
                gettext("case %(case_id)s: no liquidation plan: %(exc)s") % {"case_id": case_id, "exc": exc},
                case_id=case_id,
            ) from None
        quantum = _quantum(case.account)
        plan_row = LiquidationPlan.objects.create(
            case=case,
            created_at=now,
            model_version=plan.model_version,
            parameters=asdict(params),
            inputs={"holdings": [asdict(h) for h in holdings], "as_of": now.isoformat()},
            days=plan.days,
            expected_proceeds=_decimal(plan.expected_proceeds).quantize(quantum),
            impact_cost=_decimal(plan.impact_cost).quantize(quantum),
        )
        LiquidationOrder.objects.bulk_create(
            LiquidationOrder(
                plan=plan_row,
                sequence=k,
                instrument_id=position_of[s.position_id].instrument_id,
                position_id=s.position_id,
                day=s.day,
                quantity=quantity,
                expected_price=_decimal(s.expected_price),
                expected_proceeds=_decimal(s.expected_proceeds).quantize(quantum),
            )
            for k, (s, quantity) in enumerate(zip(plan.slices, _slice_quantities(plan, positions), strict=True))
        )
        case.save(update_fields=["state", "updated_at"])
        _audit(
            case,
            CASE_LIQUIDATE,
            before,
            actor=actor,
            system_actor=system_actor,
            reason=reason,
            plan_id=plan_row.pk,
            orders=len(plan.slices),
            days=plan.days,
            expected_proceeds=plan_row.expected_proceeds,
            impact_cost=plan_row.impact_cost,
            model_version=plan.model_version,
            proposal_id=proposal_id,
        )
        proposals_withdraw_for_cases(
            case_ids=[case.pk],
            reason=f"case {case.pk} sent to liquidation: {reason}",
            now=now,
            actor=actor,
            system_actor=system_actor,
        )
        notification_enqueue(
            case=case, kind=NotificationKind.LIQUIDATION, payload={"reason": reason, "days": plan.days}
        )
    return plan_row


def _carried_out(proposal_id: int | None, case_id: int) -> bool:
    """The proposal is this case's liquidation, approved and being carried out in this transaction (the
    negotiation moved it to EXECUTED just before calling)."""
    return Proposal.objects.filter(
        pk=proposal_id, case_id=case_id, kind=ProposalKind.LIQUIDATE, state=ProposalState.EXECUTED
    ).exists()


def _slice_quantities(plan: liquidation.LiquidationPlan, positions: list[Position]) -> list[Decimal]:
    """Each slice in position units, to 8 places, the last slice of a position taking the rounding so that a
    position's orders add up to it exactly."""
    left = {p.pk: p.quantity for p in positions}
    size = {p.pk: p.instrument.contract_size for p in positions}
    remaining = {p.pk: sum(1 for s in plan.slices if s.position_id == p.pk) for p in positions}
    quantities = []
    for s in plan.slices:
        remaining[s.position_id] -= 1
        if remaining[s.position_id] == 0:
            quantity = left[s.position_id]
        else:
            quantity = (_decimal(s.quantity) / size[s.position_id]).quantize(Decimal("1E-8"))
        left[s.position_id] -= quantity
        quantities.append(quantity)
    return quantities


def deadlines_run(*, now: datetime | None = None) -> list[int]:
    """Margin calls past their deadline plus the grace period go to liquidation, each in its own transaction:
    a case that cannot be planned (too illiquid for the allowed days, no price) stays in margin call, is
    logged for an officer, and does not hold up the others. Returns the ids of the cases this run moved."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.WORKOUT_LIQUIDATION_GRACE_HOURS)
    due = list(
        Case.objects.filter(state=CaseState.MARGIN_CALL, deadline__lte=cutoff)
        .order_by("deadline")
        .values_list("pk", flat=True)
    )
    moved = []
    for case_id in due:
        try:
            plan = case_liquidate(case_id=case_id, reason="margin call deadline passed", now=now)
        except CaseTransitionError:  # moved on meanwhile (cured, proposed...): not due any more
            continue
        except ValidationError as exc:
            logger.error("deadline of case %s passed but it cannot be liquidated: %s", case_id, exc)
            continue
        if plan.created_at == now:  # not a plan another run made first
            moved.append(case_id)
    return moved


# ----------------------------------------------------------------------------------------- booking


_OPEN_ORDER = Q(filled_quantity__isnull=True) | ~Q(filled_quantity=F("quantity"))


def _remaining(order: LiquidationOrder) -> Decimal:
    return order.quantity - (order.filled_quantity or Decimal(0))


def _order_fill(order: LiquidationOrder, quantity: Decimal, price: Decimal) -> None:
    """Accumulate a fill: the filled quantity adds up, the fill price is the volume-weighted average."""
    before = order.filled_quantity or Decimal(0)
    filled = before + quantity
    order.fill_price = ((before * (order.fill_price or Decimal(0)) + quantity * price) / filled).quantize(
        Decimal("1E-8")
    )
    order.filled_quantity = filled


def liquidation_book(
    *,
    plan_id: int,
    fills: Mapping[int, tuple[Decimal, Decimal]] | None = None,
    actor: AbstractUser | None = None,
    system_actor: str = "liquidation",
    now: datetime | None = None,
) -> LiquidationPlan:
    """Book fills {order id: (filled quantity in position units, signed as the order; fill price)}; None
    fills every unfilled order at its expected price (the demo). When every order is filled, the loan is
    repaid from cash and the case ends LIQUIDATED, or WRITTEN_OFF with the shortfall."""
    now = now or timezone.now()
    if actor is not None and not actor.has_perm("restructuring.book_liquidation"):
        raise PermissionDeniedError(
            gettext("%(actor)s may not book liquidation fills") % {"actor": actor}, plan_id=plan_id
        )
    with transaction.atomic():
        plan = LiquidationPlan.objects.select_for_update().get(pk=plan_id)
        if plan.status == LiquidationStatus.BOOKED:
            return plan
        case = Case.objects.select_for_update(of=("self",)).get(pk=plan.case_id)
        book = ledger.account_book_lock(case.account_id)
        orders = list(plan.orders.select_for_update().filter(_OPEN_ORDER).order_by("sequence"))
        given = fills if fills is not None else {o.pk: (_remaining(o), o.expected_price) for o in orders}
        unknown = set(given) - {o.pk for o in orders}
        if unknown:
            raise ValidationError(
                gettext("plan %(plan_id)s: no open order %(orders)s") % {"plan_id": plan_id, "orders": sorted(unknown)},
                plan_id=plan_id,
            )
        booked = []
        for order in orders:
            if order.pk not in given:
                continue
            quantity, price = given[order.pk]
            if quantity * order.quantity <= 0 or abs(quantity) > abs(_remaining(order)) or price < 0:
                raise ValidationError(
                    gettext(
                        "order %(order_pk)s: fill %(quantity)s @ %(price)s does not fit the order (%(remaining)s "
                        "of %(order_quantity)s left)"
                    )
                    % {
                        "order_pk": order.pk,
                        "quantity": quantity,
                        "price": price,
                        "remaining": _remaining(order),
                        "order_quantity": order.quantity,
                    },
                    order_id=order.pk,
                )
            booked.append(ledger.Fill(position_id=order.position_id, quantity=quantity, price=price))
            _order_fill(order, quantity, price)
        realised = book.fills_book(booked)
        LiquidationOrder.objects.bulk_update([o for o in orders if o.pk in given], ["filled_quantity", "fill_price"])
        plan.cash_realised = (plan.cash_realised or Decimal(0)) + realised
        all_filled = (
            all(_remaining(o) == 0 for o in orders)
            and not plan.orders.filter(_OPEN_ORDER).exclude(pk__in=[o.pk for o in orders]).exists()
        )
        # Every booking moves the book (positions sold, cash in), so each leaves its event, settling or not.
        audit_record(
            LIQUIDATION_FILL.entry(
                plan,
                account_id=case.account_id,
                actor=actor,
                system_actor="" if actor is not None else system_actor,
                payload={
                    "case_id": case.pk,
                    "fills": [
                        {"order_id": order_id, "quantity": quantity, "price": price}
                        for order_id, (quantity, price) in sorted(given.items())
                    ],
                    "cash_realised": realised,
                    "settled": all_filled,
                },
            )
        )
        if all_filled:
            _settle(plan, case, book, actor=actor, system_actor=system_actor, now=now)
        book.save()
        plan.save()
    return plan


def _settle(
    plan: LiquidationPlan,
    case: Case,
    book: ledger.AccountBook,
    *,
    actor: AbstractUser | None,
    system_actor: str,
    now: datetime,
) -> None:
    repaid, shortfall = book.debt_settle()
    plan.status, plan.booked_at = LiquidationStatus.BOOKED, now
    plan.debt_repaid, plan.shortfall = repaid, shortfall
    before = case.state
    case.complete_liquidation(at=now)
    case.save(update_fields=["state", "closed_at", "updated_at"])
    amounts = {"cash_realised": plan.cash_realised, "debt_repaid": repaid, "shortfall": shortfall, "plan_id": plan.pk}
    _audit(case, CASE_LIQUIDATED, before, actor=actor, system_actor=system_actor, reason="", **amounts)
    if shortfall > 0:
        case.write_off(amount=shortfall, at=now)
        case.save(update_fields=["state", "written_off_amount", "closed_at", "updated_at"])
        reason = "liquidation proceeds below the debt"
        _audit(
            case,
            CASE_WRITE_OFF,
            CaseState.LIQUIDATED,
            actor=actor,
            system_actor=system_actor,
            reason=reason,
            **amounts,
        )
    notification_enqueue(case=case, kind=NotificationKind(case.state), payload=amounts)  # liquidated or written off
