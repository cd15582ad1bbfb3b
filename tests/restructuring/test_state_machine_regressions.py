"""Defects found by the case state machine (tests/restructuring/test_case_state_machine.py), each as the
smallest test that shows it.

Defects 1 and 2 failed at 4850bc0 and are fixed at 5ede647 (these tests pass there; the selector and the
no-reopen fixes have no test of their own in the suite yet). Defect 3 is in the uncommitted permission checks
of restructuring/services/liquidation.py in the shared working tree: it passes at HEAD and fails with them.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Permission
from django.utils import timezone

from accounts.models import Client, Instrument, MarginAccount, MarginLoan, Position, Price
from accounts.selectors import latest_prices_load
from accounts.services.sweep import sweep_run
from core.models import AuditEvent
from restructuring.models import Case, CaseState, LiquidationPlan, LiquidationStatus
from restructuring.services.case_sweep import CaseMoves, cases_apply_risk
from restructuring.services.liquidation import CaseTransitionError, case_liquidate, deadlines_run, liquidation_book
from restructuring.services.negotiation.common import NegotiationError
from restructuring.services.negotiation.execution import proposal_liquidate
from restructuring.services.negotiation.proposals import proposal_approve, proposal_liquidation_draft

pytestmark = pytest.mark.django_db


def _spot(symbol: str, price: str, *, volume: str = "1000") -> Instrument:
    instrument = Instrument.objects.create(
        symbol=symbol,
        kind="spot",
        initial_rate=Decimal("0.5"),
        maintenance_rate=Decimal("0.3"),
        scenario_class="crypto",
        daily_volatility=Decimal("0.04"),
        average_daily_volume=Decimal(volume),
    )
    Price.objects.create(instrument=instrument, time=timezone.now() - timedelta(minutes=1), price=Decimal(price))
    return instrument


def _account(code: str, holdings: dict[Instrument, str], *, loan: str, cash: str = "0") -> MarginAccount:
    account = MarginAccount.objects.create(
        code=code, client=Client.objects.create(code=f"C{code}", name=code), cash=Decimal(cash)
    )
    for instrument, quantity in holdings.items():
        Position.objects.create(account=account, instrument=instrument, quantity=Decimal(quantity), entry_price=90)
    MarginLoan.objects.create(account=account, principal=Decimal(loan), rate_annual=Decimal("0.1"))
    return account


# --------------------------------------------------------------------------------------------- defect 1
# latest_prices_load(instrument_ids=...) reads the latest price of *every* instrument and places them with
# np.searchsorted into the ids it was given. case_liquidate (restructuring/services/liquidation.py, _holdings)
# gives it only the instruments the account holds: as soon as an instrument with a higher id exists, the
# index runs past the array and case_liquidate raises IndexError (otherwise it is right only because NumPy
# happens to keep the last of repeated assignments). An account holding nothing fails the same way (size 0).
#
# Shortest example from the machine (every account holds BTC only; ALT is listed, after BTC):
#     state.book(book=[{'btc': 5, 'alt': 0, 'cash': 0, 'loan_to_value': 0.40, 'accrued': 0},
#                      {'btc': 5, 'alt': 0, 'cash': 0, 'loan_to_value': 0.40, 'accrued': 0},
#                      {'btc': 5, 'alt': 0, 'cash': 0, 'loan_to_value': 0.71, 'accrued': 0}])
#     state.sweep()                                   # the third account gets a margin call
#     state.officer_liquidates_a_margin_call(case=1)
#     -> IndexError: index 1 is out of bounds for axis 0 with size 1 (accounts/selectors.py, latest_prices_load)
# Expected: case 1 LIQUIDATING with a plan selling the 5 BTC. In production every deadline liquidation of an
# account that does not hold the newest instrument fails, and deadlines_run, which catches only
# CaseTransitionError, stops at the first one: the later due cases are not liquidated either.


def test_latest_prices_load_returns_the_prices_of_the_instruments_asked_for() -> None:
    btc = _spot("BTC", "100")
    _spot("ALT", "2")

    prices, _implied = latest_prices_load(instrument_ids=np.array([btc.pk]), as_of=timezone.now())

    assert prices.tolist() == [100.0]


def test_an_account_that_does_not_hold_the_newest_instrument_can_be_liquidated() -> None:
    # given 10 BTC at 100 against a 750 loan (a margin call), and ALT listed after BTC, held by no one
    btc = _spot("BTC", "100")
    _spot("ALT", "2")
    account = _account("CALL", {btc: "10"}, loan="750")
    cases_apply_risk(sweep_id=sweep_run().pk)
    case = Case.objects.get(account=account)
    assert case.state == CaseState.MARGIN_CALL

    # when an officer liquidates it
    plan = case_liquidate(case_id=case.pk, reason="officer")

    # then the plan is the one BTC alone gives (tests/restructuring/test_liquidation.py): 10 BTC at 99.72
    order = plan.orders.get()
    assert (order.quantity, order.expected_price) == (Decimal("10.00000000"), Decimal("99.72000000"))


def test_one_failing_deadline_liquidation_does_not_hold_up_the_others() -> None:
    # given two margin calls past their deadline; the first (earlier deadline) holds BTC only, ALT exists
    btc, alt = _spot("BTC", "100"), _spot("ALT", "100")
    first = _account("FIRST", {btc: "10"}, loan="750")
    second = _account("SECOND", {btc: "10", alt: "10"}, loan="1500")
    cases_apply_risk(sweep_id=sweep_run().pk)
    now = timezone.now()
    Case.objects.filter(account=first).update(deadline=now - timedelta(hours=3))
    Case.objects.filter(account=second).update(deadline=now - timedelta(hours=2))

    # when the deadlines run
    deadlines_run(now=now)

    # then the second case is liquidating whatever happened to the first
    assert Case.objects.get(account=second).state == CaseState.LIQUIDATING


def test_an_account_with_nothing_to_sell_can_be_liquidated_and_its_debt_written_off() -> None:
    # given a loan of 100 with no position and no cash (critical: a margin call)
    _spot("BTC", "100")
    account = _account("EMPTY", {}, loan="100")
    cases_apply_risk(sweep_id=sweep_run().pk)
    case = Case.objects.get(account=account)
    assert case.state == CaseState.MARGIN_CALL

    # when it is liquidated and the (empty) plan booked
    plan = case_liquidate(case_id=case.pk, reason="officer")
    liquidation_book(plan_id=plan.pk)

    # then there was nothing to sell and the 100 is written off
    plan.refresh_from_db()
    assert (plan.orders.count(), plan.status, plan.shortfall) == (0, LiquidationStatus.BOOKED, Decimal("100.00"))
    assert Case.objects.get(pk=case.pk).state == CaseState.WRITTEN_OFF


# --------------------------------------------------------------------------------------------- defect 2
# cases_apply_risk acts on each account's latest RiskState however old it is. Run after a liquidation has
# settled and before the next sweep (the after-sweep task of a sweep that finished before the fills were
# booked, a retried task, two case runs on one sweep), it opens a new case, with a margin call and a 24-hour
# deadline, on the account just liquidated: no positions, no loan, cash left over. The next sweep cures it;
# if the deadline passes first, liquidating it hits defect 1 (nothing to sell).
#
# Shortest example from the machine (defect 1 stepped around: every account holds BTC and ALT):
#     state.book(book=[{'btc': 5, 'alt': 100, 'cash': 0, 'loan_to_value': 0.40, 'accrued': 0},
#                      {'btc': 5, 'alt': 100, 'cash': 0, 'loan_to_value': 0.40, 'accrued': 0},
#                      {'btc': 5, 'alt': 100, 'cash': 0, 'loan_to_value': 0.68, 'accrued': 0}])
#     state.sweep()
#     state.time_passes_and_deadlines_run(hours=25)   # case 1 LIQUIDATING
#     state.book_all_fills(plan=1)                    # case 1 LIQUIDATED, loan repaid, cash left
#     state.apply_risk_twice()                        # case 2 opened on the same account: MARGIN_CALL
#     state.officer_liquidates_a_margin_call(case=2)
#     -> IndexError: index 0 is out of bounds for axis 0 with size 0
# Expected: no case opened by the case run after the liquidation (the risk state predates the closing).


def test_the_case_run_does_not_reopen_an_account_from_a_risk_state_older_than_its_liquidation() -> None:
    # given a margin call liquidated and settled: 997.20 in, the 750 loan repaid, 247.20 left, no position
    btc = _spot("BTC", "100")
    account = _account("DONE", {btc: "10"}, loan="750")
    sweep = sweep_run()
    cases_apply_risk(sweep_id=sweep.pk)
    case = Case.objects.get(account=account)
    liquidation_book(plan_id=case_liquidate(case_id=case.pk, reason="officer").pk)
    assert Case.objects.get(pk=case.pk).state == CaseState.LIQUIDATED

    # when the case run goes again before the next sweep (the risk state is the one from before the sale)
    moves = cases_apply_risk(sweep_id=sweep.pk)

    # then no case is opened on the liquidated account
    assert moves == CaseMoves(opened=0, margin_calls=0, cured=0)
    assert list(Case.objects.filter(account=account).values_list("state", flat=True)) == [CaseState.LIQUIDATED]


# --------------------------------------------------------------------------------------------- defect 3
# (uncommitted working tree) case_liquidate checks `has_transition_perm(case.liquidate, actor)` before it looks
# at the state. django-fsm's has_transition_perm is False whenever the transition is not available from the
# current state, whatever the user's permissions, so an officer who holds restructuring.liquidate_case gets
# PermissionDeniedError (a) instead of the plan when the case is already LIQUIDATING (the documented
# idempotence: a double submit) and (b) instead of CaseTransitionError (409) when the state has no such edge.
#
# Shortest example from the machine, run on the working tree:
#     state.book(book=[{'btc': 5, ...'loan_to_value': 0.40}, {... 0.40}, {'btc': 5, ... 'loan_to_value': 0.71}])
#     state.officer_liquidates_a_margin_call(case=1)  # allowed: LIQUIDATING
#     state.officer_liquidates_any_case(case=1)       # again, by the same officer
#     -> PermissionDeniedError: officer may not send case 1 to liquidation
# Expected: the same plan, no new audit event.
#
# Since issue 13 an officer never calls case_liquidate alone: one proposes the liquidation, another approves it,
# then it is carried out (negotiation.proposal_liquidate). The two regressions keep their meaning on that path: a
# double submit gets a conflict and leaves one plan and no new event; a state without the edge is a conflict.


def _officer(username: str = "officer") -> AbstractUser:
    officer = get_user_model().objects.create_user(username=username)
    officer.user_permissions.set(Permission.objects.filter(content_type__app_label="restructuring"))
    return get_user_model().objects.get(pk=officer.pk)


def test_an_officer_liquidating_a_case_already_liquidating_gets_a_conflict_and_the_plan_stays_one() -> None:
    btc = _spot("BTC", "100")
    account = _account("TWICE", {btc: "10"}, loan="750")
    cases_apply_risk(sweep_id=sweep_run().pk)
    case = Case.objects.get(account=account)
    officer = _officer()
    proposal = proposal_liquidation_draft(case_id=case.pk, reason="officer", actor=officer)  # type: ignore[arg-type]
    proposal_approve(proposal_id=proposal.pk, actor=_officer("checker"), version=1)  # type: ignore[arg-type]
    proposal_liquidate(proposal_id=proposal.pk, actor=officer, version=1)  # type: ignore[arg-type]
    events = AuditEvent.objects.count()

    with pytest.raises(NegotiationError, match="only an approved liquidation is sent"):
        proposal_liquidate(proposal_id=proposal.pk, actor=officer, version=1)  # type: ignore[arg-type]

    assert LiquidationPlan.objects.filter(case=case).count() == 1
    assert AuditEvent.objects.count() == events
    assert case_liquidate(case_id=case.pk, reason="deadline").case_id == case.pk  # the system's call: its plan


def test_an_officer_liquidating_a_case_without_that_edge_gets_a_transition_conflict() -> None:
    btc = _spot("BTC", "100")
    account = _account("WARN", {btc: "10"}, loan="660")  # equity 340: a warning, no margin call
    cases_apply_risk(sweep_id=sweep_run().pk)
    case = Case.objects.get(account=account)
    assert case.state == CaseState.WARNING

    with pytest.raises(NegotiationError, match="cannot go to liquidation"):
        proposal_liquidation_draft(case_id=case.pk, reason="officer", actor=_officer())  # type: ignore[arg-type]
    with pytest.raises(CaseTransitionError):
        case_liquidate(case_id=case.pk, reason="deadline")
    assert Case.objects.get(pk=case.pk).state == CaseState.WARNING
