"""Reliability of the case workflow under concurrency, on the real PostgreSQL (RELIABILITY.md: duplicate beat,
concurrent actions on one case, audit trail under concurrent writers). Threads start together at a barrier,
each on its own connection; every scenario ends with the shared invariant check."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import pytest
from django.db import OperationalError

from accounts.services.sweep import sweep_run
from core.audit import APPEND_LOCK_KEY
from core.models import AuditEvent
from restructuring.models import Case, CaseState, LiquidationOrder, LiquidationPlan
from restructuring.services.case_sweep import CaseMoves, cases_apply_risk
from restructuring.services.liquidation import (
    CaseTransitionError,
    case_liquidate,
    deadlines_run,
    liquidation_book,
)
from tests.restructuring.helpers import (
    LockHolder,
    Outcome,
    accounts,
    assert_invariants,
    btc,
    deadlines_pass,
    lock_waits,
    money_snapshot,
    price_set,
    run_together,
    start_in_thread,
    sweep_only,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

NO_MOVES = {"opened": 0, "margin_calls": 0, "cured": 0}


def _moves(outcomes: list[Outcome]) -> list[dict[str, int]]:
    assert [o.error for o in outcomes] == [None] * len(outcomes)
    values = [o.value for o in outcomes]
    assert all(isinstance(v, CaseMoves) for v in values)
    return sorted((v.as_dict() for v in values), key=lambda m: sum(m.values()))


def _apply_at_once(sweep_id: int, runs: int = 3) -> list[dict[str, int]]:
    return _moves(run_together(*[partial(cases_apply_risk, sweep_id=sweep_id)] * runs))


def _case_events() -> int:
    return AuditEvent.objects.filter(object_type="restructuring.case").count()


# ------------------------------------------------------------------------------------- duplicate beat


def test_case_runs_at_once_give_one_case_per_account_and_episode() -> None:
    # given 3 accounts in margin call, 1 critical, 2 in warning and 2 healthy, swept (no case moved yet)
    instrument = btc()
    called = accounts(instrument, "margin_call", 3)
    critical = accounts(instrument, "critical", 1)
    warned = accounts(instrument, "warning", 2)
    accounts(instrument, "healthy", 2)
    sweep = sweep_only()

    # when three beats apply the sweep to the cases at once
    moves = _apply_at_once(sweep.pk)

    # then one run did the work and the others found it done: one case per distressed account, 4 margin calls,
    # one event per step
    assert moves == [NO_MOVES, NO_MOVES, {"opened": 6, "margin_calls": 4, "cured": 0}]
    assert Case.objects.count() == 6
    assert {c.account_id for c in Case.objects.all()} == {a.pk for a in called + critical + warned}
    assert _case_events() == 6 + 4
    assert_invariants()

    # when BTC recovers to 130 (call: 1,300 - 750 = 550 >= 1.25 x 390; warning 640; critical 200 < 390) and
    # three beats run at once
    price_set("130")
    moves = _apply_at_once(sweep_only().pk)

    # then the 5 recovered cases are cured once; the critical one stays called
    assert moves == [NO_MOVES, NO_MOVES, {"opened": 0, "margin_calls": 0, "cured": 5}]
    assert Case.objects.filter(state=CaseState.CURED).count() == 5
    assert Case.objects.get(account=critical[0]).state == CaseState.MARGIN_CALL
    assert_invariants()

    # when BTC falls to 90 (call: 150 < 270, warning: 240 < 270): a new episode for those 5 accounts
    price_set("90")
    moves = _apply_at_once(sweep_only().pk)

    # then each gets exactly one new case, called at once; the critical account keeps its one open case
    assert moves == [NO_MOVES, NO_MOVES, {"opened": 5, "margin_calls": 5, "cured": 0}]
    for margin_account in called + warned:
        states = list(Case.objects.filter(account=margin_account).order_by("pk").values_list("state", flat=True))
        assert states == [CaseState.CURED, CaseState.MARGIN_CALL]
    assert Case.objects.filter(account=critical[0]).count() == 1
    assert _case_events() == 10 + 5 + 5 * 2
    assert_invariants()


def test_two_whole_beats_at_once_give_one_case_per_account_and_episode() -> None:
    # given 3 accounts in margin call, 2 in warning and 1 healthy; a beat is a sweep whose case task runs
    # when the sweep commits (in the sweeping thread here: tasks run in-process)
    instrument = btc()
    called = accounts(instrument, "margin_call", 3)
    warned = accounts(instrument, "warning", 2)
    accounts(instrument, "healthy", 1)

    # when two beats run at once after each move of BTC: 100, back to 130, down to 90
    for price, states in (
        (None, [CaseState.MARGIN_CALL] * 3 + [CaseState.WARNING] * 2),
        ("130", [CaseState.CURED] * 5),
        ("90", [CaseState.CURED, CaseState.MARGIN_CALL] * 5),
    ):
        if price:
            price_set(price)
        outcomes = run_together(sweep_run, sweep_run)

        # then at least one sweep is done and the other is done too or failed cleanly on the serialisation
        # conflict (its task retries it); either way one case per account and episode
        assert any(o.error is None for o in outcomes)
        for outcome in outcomes:
            if outcome.error is not None:
                assert isinstance(outcome.error, OperationalError)
                assert "could not serialize access" in str(outcome.error)
        by_account = [
            list(Case.objects.filter(account=a).order_by("pk").values_list("state", flat=True)) for a in called + warned
        ]
        assert [state for account_states in by_account for state in account_states] == states
        assert_invariants()


# ------------------------------------------------------------------------------ concurrent actions on a case


def test_racing_liquidations_of_one_case_issue_one_plan_and_racing_bookings_book_it_once() -> None:
    # given a margin call past its deadline: 10 BTC at 100 against a 750 loan
    instrument = btc()
    [margin_account] = accounts(instrument, "margin_call", 1)
    cases_apply_risk(sweep_id=sweep_only().pk)
    [case_id] = deadlines_pass()
    money_before = money_snapshot()

    # when four officers / tasks liquidate it at once
    outcomes = run_together(*[partial(case_liquidate, case_id=case_id, reason="race")] * 4)

    # then all four get the one plan: one moved the case, the others found the work done
    assert [o.error for o in outcomes] == [None] * 4
    plans = {o.value.pk for o in outcomes}
    assert plans == set(LiquidationPlan.objects.values_list("pk", flat=True))
    assert len(plans) == 1
    assert LiquidationOrder.objects.count() == 1
    assert AuditEvent.objects.filter(action="case.liquidate").count() == 1
    assert Case.objects.get(pk=case_id).state == CaseState.LIQUIDATING
    assert_invariants()

    # when the demo fills are booked three times at once
    [plan_id] = plans
    outcomes = run_together(*[partial(liquidation_book, plan_id=plan_id)] * 3)

    # then booked once: 997.20 came in, 750 repaid, 247.20 left in cash (not 3 x)
    assert [o.error for o in outcomes] == [None] * 3
    margin_account.refresh_from_db()
    assert margin_account.cash == Decimal("247.20")
    assert AuditEvent.objects.filter(action="case.liquidated").count() == 1
    assert Case.objects.get(pk=case_id).state == CaseState.LIQUIDATED
    assert_invariants(money_before=money_before)


def test_liquidation_racing_a_cure_has_exactly_one_outcome_per_case() -> None:
    # given 6 margin calls past their deadline, then BTC back at 130: the sweep would cure them all
    instrument = btc()
    accounts(instrument, "margin_call", 6)
    cases_apply_risk(sweep_id=sweep_only().pk)
    case_ids = deadlines_pass()
    price_set("130")
    sweep = sweep_only()

    # when an officer liquidates each case, the deadline beat runs and the sweep's cure runs, all at once
    works = [partial(case_liquidate, case_id=case_id, reason="officer") for case_id in case_ids]
    outcomes = run_together(*works, deadlines_run, partial(cases_apply_risk, sweep_id=sweep.pk))

    # then each case is either liquidating with its plan or cured without one, never both, never neither
    *officers, deadlines, cure = outcomes
    assert deadlines.error is None
    assert cure.error is None
    cases = {c.pk: c for c in Case.objects.filter(pk__in=case_ids)}
    cured = {pk for pk, c in cases.items() if c.state == CaseState.CURED}
    liquidating = {pk for pk, c in cases.items() if c.state == CaseState.LIQUIDATING}
    assert cured | liquidating == set(case_ids)
    assert set(LiquidationPlan.objects.values_list("case_id", flat=True)) == liquidating
    assert cure.value.cured == len(cured)
    # the loser got a clean conflict or found the work done
    for case_id, officer in zip(case_ids, officers, strict=True):
        if case_id in liquidating:
            assert officer.error is None
            assert officer.value.case_id == case_id
        else:
            assert isinstance(officer.error, CaseTransitionError), officer.error
            assert f"case {case_id} is cured" in str(officer.error)
    assert set(deadlines.value) <= liquidating
    assert AuditEvent.objects.filter(action="case.liquidate").count() == len(liquidating)
    assert AuditEvent.objects.filter(action="case.cure").count() == len(cured)
    assert_invariants()


def test_liquidations_and_a_cure_interleaved_both_ways_each_case_has_one_outcome() -> None:
    """The free race above is usually won by the liquidations; this one fixes the interleaving so that both
    orders happen: the cure locks the cases it reads in id order, so with the audit lock held elsewhere it can
    be stopped between cases that liquidations hold and cases that it holds itself."""
    # given 6 margin calls past their deadline, then BTC back at 130: the sweep would cure them all
    instrument = btc()
    accounts(instrument, "margin_call", 6)
    cases_apply_risk(sweep_id=sweep_only().pk)
    case_ids = deadlines_pass()
    price_set("130")
    sweep = sweep_only()
    audit_lock = LockHolder("SELECT pg_advisory_xact_lock(%s)", [APPEND_LOCK_KEY])

    # when the last 3 cases are liquidated first (each has written its plan and waits for the audit lock),
    late = [start_in_thread(partial(case_liquidate, case_id=pk, reason="officer")) for pk in case_ids[3:]]
    wait_until(lambda: lock_waits("advisory") == 3, "3 liquidations waiting for the audit lock")
    # the cure starts (it locks the first 3 cases and waits for the 4th),
    cure = start_in_thread(partial(cases_apply_risk, sweep_id=sweep.pk))
    wait_until(lambda: lock_waits("transactionid") == 1, "the cure waiting for a liquidating case")
    # and the first 3 cases are liquidated too (they wait for the cure's locks)
    early = [start_in_thread(partial(case_liquidate, case_id=pk, reason="officer")) for pk in case_ids[:3]]
    wait_until(lambda: lock_waits("transactionid") == 4, "3 more liquidations waiting for the cure")
    audit_lock.release()
    for thread, _ in [*late, cure, *early]:
        thread.join(timeout=30)

    # then the last 3 are liquidating (the cure skipped them), the first 3 cured (their liquidation got a
    # clean conflict), nothing half-done
    for pk, (_, [outcome]) in zip(case_ids[3:], late, strict=True):
        assert outcome.error is None
        assert outcome.value.case_id == pk
    for pk, (_, [outcome]) in zip(case_ids[:3], early, strict=True):
        assert isinstance(outcome.error, CaseTransitionError)
        assert f"case {pk} is cured" in str(outcome.error)
    [cured] = cure[1]
    assert cured.error is None
    assert cured.value.as_dict() == {"opened": 0, "margin_calls": 0, "cured": 3}
    states = dict(Case.objects.values_list("pk", "state"))
    assert [states[pk] for pk in case_ids] == [CaseState.CURED] * 3 + [CaseState.LIQUIDATING] * 3
    assert set(LiquidationPlan.objects.values_list("case_id", flat=True)) == set(case_ids[3:])
    assert_invariants()


# ------------------------------------------------------------------------------- audit trail, many writers


def test_real_services_moving_different_cases_at_once_keep_one_unbroken_chain() -> None:
    # given 4 margin calls and 2 critical accounts past their deadline, and then 3 new accounts below
    # maintenance and 2 in warning, swept but without cases yet
    instrument = btc()
    accounts(instrument, "margin_call", 4)
    accounts(instrument, "critical", 2)
    cases_apply_risk(sweep_id=sweep_only().pk)
    case_ids = deadlines_pass()
    accounts(instrument, "margin_call", 3, prefix="NEW")
    accounts(instrument, "warning", 2, prefix="NEW")
    sweep = sweep_only()
    events_before = _case_events()
    money_before = money_snapshot()

    # when six threads each liquidate one case and book its fills while the sweep opens the new cases
    def liquidate_and_book(case_id: int) -> None:
        plan = case_liquidate(case_id=case_id, reason="deadline")
        liquidation_book(plan_id=plan.pk)

    outcomes = run_together(
        *[partial(liquidate_and_book, case_id) for case_id in case_ids], partial(cases_apply_risk, sweep_id=sweep.pk)
    )

    # then every writer succeeded and the chain has every event once, without a gap or a fork:
    # 6 liquidations, 6 bookings, 2 write-offs (critical: 1,100 > 997.20), 5 opens and 3 margin calls
    assert [o.error for o in outcomes] == [None] * 7
    assert _case_events() == events_before + 6 + 6 + 2 + 5 + 3
    chain = list(AuditEvent.objects.order_by("sequence").values_list("sequence", "previous_hash"))
    assert [sequence for sequence, _ in chain] == list(range(1, len(chain) + 1))
    assert len({previous for _, previous in chain}) == len(chain)
    assert Case.objects.filter(state=CaseState.LIQUIDATED).count() == 4
    assert Case.objects.filter(state=CaseState.WRITTEN_OFF).count() == 2
    assert_invariants(money_before=money_before)

    # when BTC recovers to 130 and three beats cure the new cases at once
    price_set("130")
    moves = _apply_at_once(sweep_only().pk)

    # then cured once each
    assert moves == [NO_MOVES, NO_MOVES, {"opened": 0, "margin_calls": 0, "cured": 5}]
    assert_invariants(money_before=money_before)


def test_booking_one_account_while_another_commits_its_liquidation_does_not_deadlock() -> None:
    """Regression (fixed in 6550377): the booking locked its positions with a joined FOR UPDATE, so also the
    shared Instrument row, and held it while waiting for the audit lock; another account's liquidation, holding
    the audit lock at COMMIT, needed a KEY SHARE lock on that row for the deferred foreign-key check of its new
    orders. PostgreSQL broke the cycle by aborting one of them ("deadlock detected")."""
    # given two accounts holding BTC with margin calls past their deadline; A is liquidating with a plan
    instrument = btc()
    first, second = accounts(instrument, "margin_call", 2)
    cases_apply_risk(sweep_id=sweep_only().pk)
    deadlines_pass()
    case_a, case_b = Case.objects.get(account=first), Case.objects.get(account=second)
    plan_a = case_liquidate(case_id=case_a.pk, reason="deadline")
    money_before = money_snapshot()

    # when B's liquidation reaches its audit record first, then A's booking (the audit lock held meanwhile)
    audit_lock = LockHolder("SELECT pg_advisory_xact_lock(%s)", [APPEND_LOCK_KEY])
    liquidating, liquidated = start_in_thread(partial(case_liquidate, case_id=case_b.pk, reason="deadline"))
    wait_until(lambda: lock_waits("advisory") == 1, "B's liquidation waiting for the audit lock")
    booking, booked = start_in_thread(partial(liquidation_book, plan_id=plan_a.pk))
    wait_until(lambda: lock_waits("advisory") == 2, "A's booking waiting for the audit lock")
    audit_lock.release()
    liquidating.join(timeout=30)
    booking.join(timeout=30)

    # then both commit: they concern different accounts
    assert liquidated[0].error is None, liquidated[0].error
    assert booked[0].error is None, booked[0].error
    assert Case.objects.get(pk=case_a.pk).state == CaseState.LIQUIDATED
    assert Case.objects.get(pk=case_b.pk).state == CaseState.LIQUIDATING
    assert_invariants(money_before=money_before)
