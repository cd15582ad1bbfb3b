"""The case state graph under random sequences of actions (hypothesis RuleBasedStateMachine, RELIABILITY.md
row "state graph").

A small book (3 to 6 accounts holding BTC and an altcoin against a margin loan) is driven by random price
moves, sweeps with the case run after them, the case run repeated, time passing with the deadline run,
officers liquidating cases (one proposes, another approves, the first carries it out; alone, or from a state
without that edge, refused) and booking fills (all, partial, refused), and client top-ups.
The machine keeps its own model of what each action must do: which cases open, escalate, cure and go to
liquidation (from the risk state the sweep wrote and the deadlines), and every account's cash, debt and
positions (from the fills it books). After every step it checks:

- at most one open case per account; a closed case never moves again;
- every case's audit events are exactly the transitions the model expects (one per state change, actor
  and action included) and, read alone, form a path of allowed edges from "" to the case's state;
- the audit chain verifies;
- money neither appears nor disappears, to the cent: per account, cash = cash at start + top-ups + cash
  realised by fills - loan repaid; debt = debt at start - repaid - written off; per settled plan, the
  debt when the plan was issued = repaid + shortfall; and all of it equals the model's figures.

Each example runs inside a savepoint that its teardown rolls back, so every example starts from an empty
book and an empty audit chain, on SQLite and on PostgreSQL alike (a rollback is not a DELETE: the audit
table's append-only trigger is not involved). Time is the machine's clock: `timezone.now()` reads it (each
read a microsecond later than the last) and the services get it as `now`, so the timestamps the services
compare (a risk state's computed_at against a case's updated_at and closed_at) and the deadlines all run
on one clock that the machine moves forward by hours.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from itertools import pairwise
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AbstractUser, Permission
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from accounts.models import Client, Instrument, LoanStatus, MarginAccount, MarginLoan, Position, Price, RiskState
from accounts.services.prices import prices_shock
from accounts.services.sweep import sweep_run
from core.audit import audit_verify
from core.errors import ValidationError
from core.models import AuditEvent
from restructuring.models import (
    CLOSED_STATES,
    CURABLE_STATES,
    OPEN_STATES,
    Case,
    CaseState,
    LiquidationOrder,
    LiquidationPlan,
    LiquidationStatus,
)
from restructuring.services.case_sweep import CaseMoves, cases_apply_risk
from restructuring.services.liquidation import (
    PermissionDeniedError,
    case_liquidate,
    deadlines_run,
    liquidation_book,
)
from restructuring.services.negotiation.common import NegotiationError
from restructuring.services.negotiation.execution import proposal_liquidate
from restructuring.services.negotiation.proposals import proposal_approve, proposal_liquidation_draft

CENT = Decimal("0.01")
UNIT = Decimal("1E-8")  # quantities and prices: 8 places
PRICES = {"BTC": Decimal(100), "ALT": Decimal(2)}
BELOW_MAINTENANCE = ("margin_call", "critical")

# The edges the actions of today can take, with the audit action each writes. Proposals and offers come later.
EDGES: dict[tuple[str, str], str] = {
    ("", CaseState.WARNING): "case.open",
    (CaseState.WARNING, CaseState.MARGIN_CALL): "case.margin_call",
    **{(state, CaseState.CURED): "case.cure" for state in CURABLE_STATES},
    (CaseState.MARGIN_CALL, CaseState.LIQUIDATING): "case.liquidate",
    # an officer's liquidation: proposed (the case among its proposals), approved by another, carried out
    (CaseState.MARGIN_CALL, CaseState.PROPOSED): "case.propose",
    (CaseState.PROPOSED, CaseState.LIQUIDATING): "case.liquidate",
    (CaseState.LIQUIDATING, CaseState.LIQUIDATED): "case.liquidated",
    (CaseState.LIQUIDATED, CaseState.WRITTEN_OFF): "case.write_off",
}

# An expected audit event of a case: (from_state, to_state, action, actor) with actor "user:<pk>" or the
# system actor's name.
Event = tuple[str, str, str, str]


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


@dataclass
class _AccountModel:
    cash_start: Decimal
    debt_start: Decimal
    cash: Decimal
    debt: Decimal  # loan principal + accrued interest
    topups: Decimal = Decimal(0)
    positions: dict[int, Decimal] = field(default_factory=dict)  # position id -> quantity


@dataclass
class _PlanModel:
    case_id: int
    account_id: int
    debt_before: Decimal
    remaining: dict[int, Decimal]  # order id -> quantity left to fill
    realised: Decimal = Decimal(0)
    debt_repaid: Decimal | None = None
    shortfall: Decimal | None = None


_ACCOUNT = st.fixed_dictionaries(
    {
        "btc": st.decimals(min_value=Decimal(5), max_value=Decimal(300), places=3),
        # some accounts hold no ALT: a liquidation prices only what the account holds
        "alt": st.one_of(st.just(Decimal(0)), st.decimals(min_value=Decimal(100), max_value=Decimal(20000), places=2)),
        "cash": st.one_of(st.just(Decimal(0)), st.decimals(min_value=Decimal(0), max_value=Decimal(2000), places=2)),
        # loan principal as a fraction of the positions' value: 0.6 is healthy, 0.65 warning, 0.75 a margin
        # call, above 1 critical (BTC maintenance 30%, ALT 40%)
        "loan_to_value": st.decimals(min_value=Decimal("0.40"), max_value=Decimal("1.20"), places=2),
        "accrued": st.one_of(st.just(Decimal(0)), st.decimals(min_value=CENT, max_value=Decimal(50), places=2)),
    }
)


class CaseStateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Each example is undone by its teardown: the next one starts from an empty book.
        self._savepoint = transaction.savepoint()
        self.clock: datetime = timezone.now().replace(microsecond=0)
        self._clock_patch = mock.patch("django.utils.timezone.now", new=self._now)
        self._clock_patch.start()
        self.accounts: dict[int, _AccountModel] = {}
        self.plans: dict[int, _PlanModel] = {}
        self.expected_events: dict[int, list[Event]] = {}  # case id -> its events, in order
        self.case_account: dict[int, int] = {}
        self.closed: dict[int, str] = {}  # case id -> the closed state it reached
        self.officer: AbstractUser | None = None
        self.checker: AbstractUser | None = None  # the second officer, who approves the first one's liquidations
        # What the risk state has seen: when the book was last swept (every account at once), when each case
        # last moved and when each account's latest case closed, by the machine's clock right after the action.
        self.swept_at: datetime | None = None
        self.changed_at: dict[int, datetime] = {}
        self.closed_at: dict[int, datetime] = {}  # account id -> when its latest case closed
        self.audit_start = 0  # the audit sequence before the example (the chain is empty: it is rolled back)
        self.ready = False

    def teardown(self) -> None:
        self._clock_patch.stop()
        transaction.savepoint_rollback(self._savepoint)

    # ------------------------------------------------------------------------------------------ the book

    @initialize(book=st.lists(_ACCOUNT, min_size=3, max_size=6))
    def book(self, book: list[dict[str, Decimal]]) -> None:
        start = self.clock - timedelta(minutes=5)
        btc = Instrument.objects.create(
            symbol="BTC",
            kind="spot",
            initial_rate=Decimal("0.5"),
            maintenance_rate=Decimal("0.3"),
            haircut=Decimal("0.1"),
            scenario_class="crypto",
            daily_volatility=Decimal("0.04"),
            average_daily_volume=Decimal(1000),  # 10% participation: 100 BTC a day, so 1 to 3 days
        )
        alt = Instrument.objects.create(
            symbol="ALT",
            kind="spot",
            initial_rate=Decimal("0.6"),
            maintenance_rate=Decimal("0.4"),
            haircut=Decimal("0.2"),
            scenario_class="crypto",
            daily_volatility=Decimal("0.08"),
            average_daily_volume=Decimal(100000),
        )
        for instrument in (btc, alt):
            Price.objects.create(instrument=instrument, time=start, price=PRICES[instrument.symbol])
        for k, spec in enumerate(book):
            account = MarginAccount.objects.create(
                code=f"SM{k}", client=Client.objects.create(code=f"C-SM{k}", name=f"SM{k}"), cash=spec["cash"]
            )
            value = spec["btc"] * PRICES["BTC"] + spec["alt"] * PRICES["ALT"]
            principal = _cents(value * spec["loan_to_value"])
            MarginLoan.objects.create(
                account=account, principal=principal, accrued_interest=spec["accrued"], rate_annual=Decimal("0.08")
            )
            debt = principal + spec["accrued"]
            model = _AccountModel(cash_start=spec["cash"], debt_start=debt, cash=spec["cash"], debt=debt)
            for instrument, quantity in ((btc, spec["btc"]), (alt, spec["alt"])):
                if quantity:
                    position = Position.objects.create(
                        account=account, instrument=instrument, quantity=quantity, entry_price=PRICES[instrument.symbol]
                    )
                    model.positions[position.pk] = quantity
            self.accounts[account.pk] = model
        officer = get_user_model().objects.create_user(username="officer")
        # an officer holds the permissions the liquidation transitions require
        officer.user_permissions.set(Permission.objects.filter(codename__in=["liquidate_case", "book_liquidation"]))
        self.officer = get_user_model().objects.get(pk=officer.pk)
        # an officer holds the workflow's permissions (what the officer may do is another test's subject)
        self.officer.user_permissions.set(Permission.objects.filter(content_type__app_label="restructuring"))
        checker = get_user_model().objects.create_user(username="checker")
        checker.user_permissions.set(Permission.objects.filter(content_type__app_label="restructuring"))
        self.checker = get_user_model().objects.get(pk=checker.pk)
        self.audit_start = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
        self.ready = True
        self.sweep()  # the book as the beat leaves it: swept, its cases opened

    def _now(self) -> datetime:
        self.clock += timedelta(microseconds=1)
        return self.clock

    def _tick(self, by: timedelta = timedelta(seconds=1)) -> datetime:
        self.clock += by
        return self.clock

    def _moved(self, case_id: int, *events: Event) -> None:
        """Record the transitions a step made on a case, as the model expects them."""
        self.expected_events.setdefault(case_id, []).extend(events)
        self.changed_at[case_id] = self.clock
        if events[-1][1] in CLOSED_STATES:
            self.closed_at[self.case_account[case_id]] = self.clock

    def _actor_label(self, actor: AbstractBaseUser | None, system_actor: str) -> str:
        return f"user:{actor.pk}" if actor is not None else system_actor

    # ------------------------------------------------------------------------------------------ the rules

    @precondition(lambda self: self.ready)
    @rule(
        symbol=st.sampled_from(sorted(PRICES)),
        fraction=st.decimals(min_value=Decimal("-0.25"), max_value=Decimal("0.25"), places=2),
    )
    def move_price(self, symbol: str, fraction: Decimal) -> None:
        prices_shock(moves={symbol: fraction}, at=self._tick())

    @precondition(lambda self: self.ready)
    @rule()
    def sweep(self) -> None:
        sweep = sweep_run(as_of=self._tick())
        self.swept_at = self.clock
        self._apply_risk(sweep_id=sweep.pk)

    @precondition(lambda self: self.ready)
    @rule()
    def apply_risk_twice(self) -> None:
        """The case run again on the risk state of the latest sweep (a redelivered task, two beats): after cases
        moved since that sweep (liquidated, cured), it must not act on them, and a second run does nothing."""
        self._apply_risk(sweep_id=None)
        events_before = AuditEvent.objects.count()
        again = cases_apply_risk(now=self._tick())
        assert again == CaseMoves(opened=0, margin_calls=0, cured=0)
        assert AuditEvent.objects.count() == events_before

    def _apply_risk(self, *, sweep_id: int | None) -> None:
        """cases_apply_risk, checked against what the latest risk state of each account calls for. A risk state
        acts only on what it has seen: not on a case that moved after the sweep, nor on an account whose case
        closed after it (a liquidation settled since: no new case on an account sold out)."""
        now = self._tick()
        risks = {r.account_id: r for r in RiskState.objects.filter(account_id__in=self.accounts)}
        open_cases = {c.account_id: c for c in Case.objects.filter(account_id__in=self.accounts, state__in=OPEN_STATES)}
        to_open: dict[int, list[str]] = {}
        moves: dict[int, str] = {}
        swept_at = self.swept_at
        for account_id in self.accounts:
            risk = risks.get(account_id)
            if risk is None or swept_at is None:
                continue
            case = open_cases.get(account_id)
            if case is not None and self.changed_at[case.pk] > swept_at:
                continue
            if case is None:
                closed_at = self.closed_at.get(account_id)
                if closed_at is not None and closed_at > swept_at:
                    continue
                if risk.band == "warning":
                    to_open[account_id] = [CaseState.WARNING]
                elif risk.band in BELOW_MAINTENANCE:
                    to_open[account_id] = [CaseState.WARNING, CaseState.MARGIN_CALL]
            elif case.state == CaseState.WARNING and risk.band in BELOW_MAINTENANCE:
                moves[case.pk] = CaseState.MARGIN_CALL
            elif case.state in CURABLE_STATES and risk.band == "healthy":
                moves[case.pk] = CaseState.CURED
        known = set(self.expected_events)

        result = cases_apply_risk(sweep_id=sweep_id, now=now)

        new_cases = list(Case.objects.filter(account_id__in=self.accounts).exclude(pk__in=known))
        assert sorted(c.account_id for c in new_cases) == sorted(to_open)
        called = [c for c in new_cases if to_open[c.account_id][-1] == CaseState.MARGIN_CALL]
        for case in new_cases:
            self.case_account[case.pk] = case.account_id
            path = ["", *to_open[case.account_id]]
            self._moved(case.pk, *[(a, b, EDGES[(a, b)], "sweep") for a, b in pairwise(path)])
        for case_id, target in moves.items():
            before = self.expected_events[case_id][-1][1]
            self._moved(case_id, (before, target, EDGES[(before, target)], "sweep"))
        called_ids = [c.pk for c in called] + [pk for pk, t in moves.items() if t == CaseState.MARGIN_CALL]
        assert result == CaseMoves(
            opened=len(new_cases),
            margin_calls=len(called_ids),
            cured=sum(1 for t in moves.values() if t == CaseState.CURED),
        )
        deadline = now + timedelta(hours=django_settings.WORKOUT_MARGIN_CALL_DEADLINE_HOURS)
        for case in Case.objects.filter(pk__in=called_ids):
            risk = risks[case.account_id]
            assert (case.call_amount, case.call_basis, case.called_at, case.deadline) == (
                _cents(risk.shortfall_initial),
                "initial",
                now,
                deadline,
            )

    @precondition(lambda self: self.ready)
    @rule(hours=st.sampled_from([1, 6, 23, 24, 25, 26, 48]))
    def time_passes_and_deadlines_run(self, hours: int) -> None:
        now = self._tick(timedelta(hours=hours))
        cutoff = now - timedelta(hours=django_settings.WORKOUT_LIQUIDATION_GRACE_HOURS)
        due = set(
            Case.objects.filter(
                account_id__in=self.accounts, state=CaseState.MARGIN_CALL, deadline__lte=cutoff
            ).values_list("pk", flat=True)
        )

        moved = deadlines_run(now=now)

        assert set(moved) == due
        assert len(moved) == len(due)
        for case_id in moved:
            self._liquidation_started(case_id, actor_label="deadlines")

    def _in_state(self, state: str) -> list[int]:
        """The cases in `state` by the model (the invariants hold the model to the database)."""
        return sorted(pk for pk, events in self.expected_events.items() if events[-1][1] == state)

    @precondition(lambda self: bool(self._in_state(CaseState.MARGIN_CALL)))
    @rule(data=st.data())
    def officer_liquidates_a_margin_call(self, data: st.DataObject) -> None:
        case_id = data.draw(st.sampled_from(self._in_state(CaseState.MARGIN_CALL)), label="case")
        self._officers_liquidate(case_id)

    def _officers_liquidate(self, case_id: int) -> None:
        """The officer proposes the liquidation, the checker approves it, the officer carries it out."""
        self._tick()
        proposal = proposal_liquidation_draft(case_id=case_id, reason="officer", actor=self.officer)  # type: ignore[arg-type]
        proposal_approve(proposal_id=proposal.pk, actor=self.checker, version=proposal.version)  # type: ignore[arg-type]
        proposal_liquidate(proposal_id=proposal.pk, actor=self.officer, version=proposal.version)  # type: ignore[arg-type]
        label = self._actor_label(self.officer, "")
        self._moved(case_id, (CaseState.MARGIN_CALL, CaseState.PROPOSED, "case.propose", label))
        self._liquidation_started(case_id, actor_label=label, from_state=CaseState.PROPOSED)

    @precondition(lambda self: self.ready and bool(self.expected_events))
    @rule(data=st.data())
    def officer_liquidates_any_case(self, data: st.DataObject) -> None:
        """Nobody sends a case to liquidation alone; a margin call goes through a liquidation proposal; from any
        other state (a liquidating one included) the proposal is refused and nothing changes."""
        case_id = data.draw(st.sampled_from(sorted(self.expected_events)), label="case")
        state = Case.objects.get(pk=case_id).state
        events_before = AuditEvent.objects.count()
        plans_before = LiquidationPlan.objects.count()
        with pytest.raises(PermissionDeniedError):
            case_liquidate(case_id=case_id, reason="officer", actor=self.officer, now=self._tick())
        assert AuditEvent.objects.count() == events_before
        if state == CaseState.MARGIN_CALL:
            self._officers_liquidate(case_id)
        else:
            with pytest.raises(NegotiationError):
                proposal_liquidation_draft(case_id=case_id, reason="officer", actor=self.officer)  # type: ignore[arg-type]
            assert Case.objects.get(pk=case_id).state == state
            assert AuditEvent.objects.count() == events_before
            assert LiquidationPlan.objects.count() == plans_before

    def _liquidation_started(self, case_id: int, *, actor_label: str, from_state: str = CaseState.MARGIN_CALL) -> None:
        account_id = self.case_account[case_id]
        self._moved(case_id, (from_state, CaseState.LIQUIDATING, "case.liquidate", actor_label))
        plan = LiquidationPlan.objects.get(case_id=case_id)
        orders = list(plan.orders.all())
        # the orders close every open position of the account, exactly
        per_position: dict[int, Decimal] = defaultdict(Decimal)
        for order in orders:
            per_position[order.position_id] += order.quantity
            assert order.filled_quantity is None
            assert 0 <= order.day < plan.days
        model = self.accounts[account_id]
        assert per_position == {pk: q for pk, q in model.positions.items() if q}
        assert plan.days <= 3
        assert (plan.days == 0) == (not per_position)  # nothing to sell: no day, no order
        self.plans[plan.pk] = _PlanModel(
            case_id=case_id,
            account_id=account_id,
            debt_before=model.debt,
            remaining={order.pk: order.quantity for order in orders},
        )

    def _planned(self, *, with_open_orders: bool = False) -> list[int]:
        """The plans not settled yet (with an order still open)."""
        return sorted(
            pk
            for pk, plan in self.plans.items()
            if plan.debt_repaid is None and (any(plan.remaining.values()) or not with_open_orders)
        )

    @precondition(lambda self: bool(self._planned()))
    @rule(data=st.data(), by_officer=st.booleans())
    def book_all_fills(self, data: st.DataObject, by_officer: bool) -> None:
        plan_id = data.draw(st.sampled_from(self._planned()), label="plan")
        orders = LiquidationOrder.objects.filter(pk__in=[k for k, q in self.plans[plan_id].remaining.items() if q])
        fills = {o.pk: (self.plans[plan_id].remaining[o.pk], o.expected_price) for o in orders}
        actor = self.officer if by_officer else None

        liquidation_book(plan_id=plan_id, actor=actor, now=self._tick())

        self._booked(plan_id, fills, self._actor_label(actor, "liquidation"))

    @precondition(lambda self: bool(self._planned(with_open_orders=True)))
    @rule(data=st.data(), by_officer=st.booleans())
    def book_partial_fills(self, data: st.DataObject, by_officer: bool) -> None:
        plan_id = data.draw(st.sampled_from(self._planned(with_open_orders=True)), label="plan")
        model = self.plans[plan_id]
        open_orders = sorted(k for k, q in model.remaining.items() if q)
        chosen = data.draw(st.lists(st.sampled_from(open_orders), min_size=1, unique=True), label="orders")
        expected_price = dict(LiquidationOrder.objects.filter(pk__in=chosen).values_list("pk", "expected_price"))
        fills = {}
        for order_id in chosen:
            percent = data.draw(st.integers(min_value=1, max_value=100), label="percent filled")
            factor = data.draw(st.decimals(min_value=Decimal("0.5"), max_value=Decimal("1.2"), places=3), label="px")
            left = model.remaining[order_id]
            part = max((left * percent / 100).quantize(UNIT, ROUND_DOWN), UNIT)  # at least one unit
            quantity = left if percent == 100 else min(part, left)
            fills[order_id] = (quantity, (expected_price[order_id] * factor).quantize(UNIT))
        actor = self.officer if by_officer else None

        liquidation_book(plan_id=plan_id, fills=fills, actor=actor, now=self._tick())

        self._booked(plan_id, fills, self._actor_label(actor, "liquidation"))

    def _booked(self, plan_id: int, fills: dict[int, tuple[Decimal, Decimal]], actor_label: str) -> None:
        """The model of a booking: cash in, positions down; once every order is filled, the debt is repaid from
        cash as far as it goes and the rest written off."""
        plan = self.plans[plan_id]
        account = self.accounts[plan.account_id]
        orders = dict(LiquidationOrder.objects.filter(pk__in=fills).values_list("pk", "position_id"))
        realised = Decimal(0)
        for order_id, (quantity, price) in fills.items():
            realised += quantity * price
            plan.remaining[order_id] -= quantity
            account.positions[orders[order_id]] -= quantity
        realised = _cents(realised)
        plan.realised += realised
        account.cash += realised
        if any(plan.remaining.values()):
            return
        repaid = min(account.cash, account.debt)
        plan.debt_repaid, plan.shortfall = repaid, account.debt - repaid
        account.cash -= repaid
        account.debt = Decimal(0)
        events = [(CaseState.LIQUIDATING, CaseState.LIQUIDATED, "case.liquidated", actor_label)]
        if plan.shortfall > 0:
            events.append((CaseState.LIQUIDATED, CaseState.WRITTEN_OFF, "case.write_off", actor_label))
        self._moved(plan.case_id, *events)

    @precondition(lambda self: bool(self._planned(with_open_orders=True)))
    @rule(data=st.data())
    def a_fill_beyond_its_order_is_refused(self, data: st.DataObject) -> None:
        plan_id = data.draw(st.sampled_from(self._planned(with_open_orders=True)), label="plan")
        model = self.plans[plan_id]
        order_id = data.draw(st.sampled_from(sorted(k for k, q in model.remaining.items() if q)), label="order")
        events_before = AuditEvent.objects.count()

        with pytest.raises(ValidationError, match=f"order {order_id}: fill"):
            liquidation_book(
                plan_id=plan_id, fills={order_id: (model.remaining[order_id] + UNIT, Decimal(1))}, now=self._tick()
            )

        assert AuditEvent.objects.count() == events_before  # and the money invariants show nothing moved

    @precondition(lambda self: any(plan.debt_repaid is not None for plan in self.plans.values()))
    @rule(data=st.data())
    def booking_a_settled_plan_again_changes_nothing(self, data: st.DataObject) -> None:
        plan_id = data.draw(
            st.sampled_from(sorted(pk for pk, p in self.plans.items() if p.debt_repaid is not None)), label="plan"
        )
        events_before = AuditEvent.objects.count()

        liquidation_book(plan_id=plan_id, now=self._tick())

        assert AuditEvent.objects.count() == events_before

    @precondition(lambda self: self.ready)
    @rule(data=st.data(), amount=st.decimals(min_value=CENT, max_value=Decimal(20000), places=2))
    def client_tops_up(self, data: st.DataObject, amount: Decimal) -> None:
        account_id = data.draw(st.sampled_from(sorted(self.accounts)), label="account")
        MarginAccount.objects.filter(pk=account_id).update(cash=F("cash") + amount)
        self.accounts[account_id].topups += amount
        self.accounts[account_id].cash += amount

    # ------------------------------------------------------------------------------------------ invariants

    @invariant()
    def one_open_case_per_account(self) -> None:
        open_cases = Counter(
            Case.objects.filter(account_id__in=self.accounts, state__in=OPEN_STATES).values_list(
                "account_id", flat=True
            )
        )
        assert all(n == 1 for n in open_cases.values()), open_cases

    @invariant()
    def closed_cases_stay_closed(self) -> None:
        states = dict(Case.objects.filter(account_id__in=self.accounts).values_list("pk", "state"))
        for case_id, state in self.closed.items():
            assert states[case_id] == state, (case_id, state, states[case_id])
        self.closed.update({pk: state for pk, state in states.items() if state in CLOSED_STATES})

    @invariant()
    def every_state_change_has_one_audit_event(self) -> None:
        cases = {c.pk: c for c in Case.objects.filter(account_id__in=self.accounts)}
        assert set(cases) == set(self.expected_events)
        events: dict[int, list[AuditEvent]] = defaultdict(list)
        for event in AuditEvent.objects.filter(
            sequence__gt=self.audit_start, object_type="restructuring.case"
        ).order_by("sequence"):
            events[event.object_id].append(event)
        assert set(events) == set(cases)
        for case_id, case in cases.items():
            found = events[case_id]
            # read alone: a path of allowed edges from "" to the case's state, each event naming its account
            state = ""
            for event in found:
                assert event.from_state == state, (case_id, [(e.from_state, e.to_state) for e in found])
                assert EDGES.get((event.from_state, event.to_state)) == event.action, event
                assert event.account_id == case.account_id
                state = event.to_state
            assert state == case.state
            # and exactly the transitions the model expects: one event per state change
            assert [
                (e.from_state, e.to_state, e.action, f"user:{e.actor_id}" if e.actor_id else e.system_actor)
                for e in found
            ] == self.expected_events[case_id]
            assert (case.closed_at is not None) == (case.state in CLOSED_STATES)

    @invariant()
    def the_audit_chain_verifies(self) -> None:
        verification = audit_verify()
        assert verification.ok, verification

    @invariant()
    def money_balances_to_the_cent(self) -> None:
        rows = list(LiquidationPlan.objects.select_related("case").filter(case__account_id__in=self.accounts))
        plans_of: dict[int, list[LiquidationPlan]] = defaultdict(list)
        for row in rows:
            plans_of[row.case.account_id].append(row)
        accounts = MarginAccount.objects.in_bulk(list(self.accounts))
        debts: dict[int, Decimal] = defaultdict(Decimal)
        for loan in MarginLoan.objects.filter(account_id__in=self.accounts, status=LoanStatus.ACTIVE):
            debts[loan.account_id] += loan.principal + loan.accrued_interest
        positions = dict(Position.objects.filter(account_id__in=self.accounts).values_list("pk", "quantity"))
        for account_id, model in self.accounts.items():
            plans = plans_of[account_id]
            realised = sum((p.cash_realised or Decimal(0) for p in plans), Decimal(0))
            repaid = sum((p.debt_repaid or Decimal(0) for p in plans), Decimal(0))
            written_off = sum((p.shortfall or Decimal(0) for p in plans), Decimal(0))
            cash = accounts[account_id].cash
            assert _cents(cash) == _cents(model.cash_start + model.topups + realised - repaid), account_id
            assert _cents(debts[account_id]) == _cents(model.debt_start - repaid - written_off), account_id
            # and the model's own figures, which do not read the plans
            assert _cents(cash) == _cents(model.cash), (account_id, cash, model.cash)
            assert _cents(debts[account_id]) == _cents(model.debt), (account_id, debts[account_id], model.debt)
            assert {pk: positions[pk] for pk in model.positions} == model.positions
        assert {row.pk for row in rows} == set(self.plans)
        for row in rows:
            plan = self.plans[row.pk]
            assert _cents(row.cash_realised or Decimal(0)) == _cents(plan.realised), row.pk
            if plan.debt_repaid is None or plan.shortfall is None:
                assert row.status == LiquidationStatus.PLANNED
                assert (row.debt_repaid, row.shortfall) == (None, None)
                continue
            assert row.status == LiquidationStatus.BOOKED
            assert row.debt_repaid is not None
            assert row.shortfall is not None
            # the debt when the plan was issued is repaid or written off, nothing more, nothing less
            assert _cents(plan.debt_before) == _cents(row.debt_repaid + row.shortfall)
            assert (_cents(row.debt_repaid), _cents(row.shortfall)) == (
                _cents(plan.debt_repaid),
                _cents(plan.shortfall),
            )
            if plan.shortfall:
                assert row.case.state == CaseState.WRITTEN_OFF
                assert row.case.written_off_amount is not None
                assert _cents(row.case.written_off_amount) == _cents(plan.shortfall)
            else:
                assert row.case.state == CaseState.LIQUIDATED


@pytest.mark.django_db
def test_the_case_state_machine_holds_its_invariants_under_random_actions() -> None:
    run_state_machine_as_test(
        CaseStateMachine,
        settings=settings(
            max_examples=50,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
