"""Reliability of the case tasks with real Celery workers on Redis and the real PostgreSQL (RELIABILITY.md: a
task that runs twice, a task longer than the visibility timeout, a worker killed mid-task, enqueue before
commit). Every scenario ends with the shared invariant check.

The tasks are made to last by what would make them last in production: a lock held by another session (a long
sweep holding the case lock, a row an officer is editing). No production code is changed for the tests.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import suppress

import pytest
from django.db import transaction

from accounts.models import Sweep
from accounts.services.sweep import sweep_run, sweep_start
from core.audit import APPEND_LOCK_KEY
from core.models import AuditEvent
from restructuring.models import Case, CaseState, LiquidationPlan
from restructuring.services.case_sweep import _LOCK_KEY as CASES_LOCK_KEY
from restructuring.services.case_sweep import cases_apply_risk
from tests.restructuring.helpers import (
    LockHolder,
    Worker,
    accounts,
    another_worker,
    assert_invariants,
    btc,
    deadlines_pass,
    lock_waits,
    other_sessions,
    other_sessions_described,
    received_by,
    sweep_only,
    wait_for_results,
    wait_until,
    worker,
)

pytestmark = [pytest.mark.postgres, pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

CASES_TASK = "restructuring.tasks.cases_apply_risk_task"
DEADLINES_TASK = "restructuring.tasks.deadlines_run_task"
NO_MOVES = {"opened": 0, "margin_calls": 0, "cured": 0}
VISIBILITY_TIMEOUT_S = 2
CASE_ROW_LOCK = "SELECT id FROM restructuring_case WHERE id = %s FOR UPDATE"
ADVISORY_LOCK = "SELECT pg_advisory_xact_lock(%s)"


def _liquidating() -> set[int]:
    return set(Case.objects.filter(state=CaseState.LIQUIDATING).values_list("pk", flat=True))


def _liquidate_events() -> int:
    return AuditEvent.objects.filter(action="case.liquidate").count()


def _past_visibility_timeout(sent_at: float) -> None:
    time.sleep(max(0.0, sent_at + VISIBILITY_TIMEOUT_S + 0.5 - time.monotonic()))


# ---------------------------------------------------------------------------------------- run twice


def test_case_and_deadline_tasks_delivered_twice_have_their_effect_once() -> None:
    # given 3 accounts in margin call, 1 critical and 2 in warning, swept (no case moved yet)
    instrument = btc()
    accounts(instrument, "margin_call", 3)
    accounts(instrument, "critical", 1)
    accounts(instrument, "warning", 2)
    sweep = sweep_only()

    with worker(concurrency=2) as w:
        # when the case task for that sweep is sent twice (the two pool processes take them at once)
        first, second = w.send(CASES_TASK, sweep_id=sweep.pk), w.send(CASES_TASK, sweep_id=sweep.pk)
        results = [w.wait_for_results(1, task_id=task_id)[0] for task_id in (first, second)]

        # then one run opened the cases, the other found nothing to do
        assert sorted(results, key=lambda moves: sum(moves.values())) == [
            NO_MOVES,
            {"opened": 6, "margin_calls": 4, "cured": 0},
        ]
        assert Case.objects.count() == 6
        assert_invariants()

        # when the calls are past their deadline and the deadline task is sent twice
        due = set(deadlines_pass())
        first, second = w.send(DEADLINES_TASK), w.send(DEADLINES_TASK)
        results = [w.wait_for_results(1, task_id=task_id)[0] for task_id in (first, second)]

    # then every due call went to liquidation once: one plan, one audit event each
    assert set(results[0]) | set(results[1]) == due
    assert _liquidating() == due
    assert set(LiquidationPlan.objects.values_list("case_id", flat=True)) == due
    assert _liquidate_events() == len(due)
    assert_invariants()


# ------------------------------------------------------------------------------ visibility timeout


def test_tasks_outliving_the_visibility_timeout_are_delivered_again_with_their_effect_once() -> None:
    # given 3 margin calls past their deadline, then 2 new accounts below maintenance swept without cases
    instrument = btc()
    accounts(instrument, "margin_call", 3)
    cases_apply_risk(sweep_id=sweep_only().pk)
    due = deadlines_pass()
    accounts(instrument, "margin_call", 2, prefix="NEW")
    sweep = sweep_only()
    # and both tasks kept waiting: the case lock held as a long case run would, the first due case's row
    # locked as an officer's edit would
    cases_lock = LockHolder(ADVISORY_LOCK, [CASES_LOCK_KEY])
    row_lock = LockHolder(CASE_ROW_LOCK, [due[0]])

    with worker(concurrency=2, visibility_timeout_s=VISIBILITY_TIMEOUT_S) as first_worker:
        cases_task = first_worker.send(CASES_TASK, sweep_id=sweep.pk)
        deadlines_task = first_worker.send(DEADLINES_TASK)
        sent_at = time.monotonic()
        wait_until(lambda: lock_waits() == 2, "both tasks waiting for their lock")

        # when they outlive the visibility timeout: a worker starting then sweeps the unacknowledged
        # messages back onto the queue (kombu restores them at start-up, then only every ~100 s)
        _past_visibility_timeout(sent_at)
        with another_worker(first_worker) as second_worker:
            workers = [first_worker, second_worker]
            wait_until(
                lambda: (
                    received_by(workers, task_id=cases_task) == 2 and received_by(workers, task_id=deadlines_task) == 2
                ),
                "each task delivered a second time",
            )
            wait_until(lambda: lock_waits() == 4, "the second deliveries waiting too")
            cases_lock.release()
            row_lock.release()
            cases_results = wait_for_results(workers, 2, task_id=cases_task)
            deadlines_results = wait_for_results(workers, 2, task_id=deadlines_task)

    # then each ran twice and had its effect once: the new accounts have one case each, called once; each due
    # call has one plan and one liquidation event
    assert sorted(cases_results, key=lambda moves: sum(moves.values())) == [
        NO_MOVES,
        {"opened": 2, "margin_calls": 2, "cured": 0},
    ]
    assert Case.objects.filter(account__code__startswith="NEW").count() == 2
    # deadlines_run reports the cases it moved itself: whichever way the two deliveries interleaved, each due
    # case was moved by exactly one of them
    first, second = (set(result) for result in deadlines_results)
    assert not first & second
    assert first | second == set(due)
    assert _liquidating() == set(due)
    assert _liquidate_events() == len(due)
    assert_invariants()


# ------------------------------------------------------------------------------------ worker killed


def _killed_mid_liquidation(w: Worker, due: list[int]) -> tuple[str, LockHolder]:
    """Send the deadline task and stop it inside the liquidation of the third due case, after its first
    writes (plan, orders, state) and before its audit record: two cases moved and committed, the third's
    transaction open. Returns the task id and the audit lock it waits for, for the caller to release."""
    row_lock = LockHolder(CASE_ROW_LOCK, [due[2]])
    task_id = w.send(DEADLINES_TASK)
    wait_until(lambda: len(_liquidating()) == 2 and lock_waits() == 1, "two cases moved, the third waiting")
    audit_lock = LockHolder(ADVISORY_LOCK, [APPEND_LOCK_KEY])
    row_lock.release()
    wait_until(lambda: lock_waits("advisory") == 1, "the third case written and waiting for its audit record")
    return task_id, audit_lock


def _due_calls(count: int) -> list[int]:
    instrument = btc()
    accounts(instrument, "margin_call", count)
    cases_apply_risk(sweep_id=sweep_only().pk)
    return deadlines_pass()


def _assert_all_or_nothing(due: list[int], moved: int) -> None:
    assert _liquidating() == set(due[:moved])
    untouched = list(Case.objects.filter(pk__in=due[moved:]).values_list("state", flat=True))
    assert untouched == [CaseState.MARGIN_CALL] * (len(due) - moved)
    assert set(LiquidationPlan.objects.values_list("case_id", flat=True)) == set(due[:moved])
    assert_invariants()


def test_a_worker_killed_mid_task_leaves_all_or_nothing_and_the_redelivered_task_finishes_once() -> None:
    # given 5 margin calls past their deadline and a worker whose visibility timeout is short
    due = _due_calls(5)
    with worker(concurrency=1, visibility_timeout_s=VISIBILITY_TIMEOUT_S) as w:
        task_id, audit_lock = _killed_mid_liquidation(w, due)
        sent_at = time.monotonic()

        # when the whole worker is SIGKILLed (its pool process holding the third case's open transaction)
        w.kill()
        audit_lock.release()
        try:
            wait_until(lambda: other_sessions() == 0, "the killed worker's database session to end")
        except TimeoutError as timeout:  # seen once under heavy load: say which session stayed, and waiting on what
            raise TimeoutError(f"{timeout}; still there: {other_sessions_described()}") from None

        # then the first two cases are liquidating with plan and event, the others untouched: the third's
        # plan, orders and state were rolled back with the dead session
        _assert_all_or_nothing(due, moved=2)

        # when a worker starts again, past the visibility timeout
        _past_visibility_timeout(sent_at)
        w.start()
        [result] = w.wait_for_results(1, task_id=task_id)

        # then the unacknowledged task was delivered again (not sent again) and finished the work once
        assert w.received(task_id=task_id) == 2
    assert set(result) == set(due[2:])
    _assert_all_or_nothing(due, moved=5)
    assert _liquidate_events() == 5


def test_a_pool_process_killed_mid_task_is_requeued_and_finishes_once() -> None:
    # given 5 margin calls past their deadline and a worker with one pool process
    due = _due_calls(5)
    with worker(concurrency=1) as w:
        task_id, audit_lock = _killed_mid_liquidation(w, due)

        # when the pool process running the task is SIGKILLed (the OOM killer's way); the main process lives
        [child] = w.pool_children()
        with suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        wait_until(lambda: w.received(task_id=task_id) == 2, "the task requeued (acks_late, reject on worker lost)")
        # (the dead process's transaction is still open, waiting for the audit lock: only 2 cases committed)
        _assert_all_or_nothing(due, moved=2)
        audit_lock.release()
        [result] = w.wait_for_results(1, task_id=task_id)

    # then it ran again to the end, and every due case went to liquidation exactly once
    assert set(result) == set(due[2:])
    _assert_all_or_nothing(due, moved=5)
    assert _liquidate_events() == 5


# ------------------------------------------------------------------------------- enqueue before commit


@transaction.atomic
def _sweep_then_fail() -> None:
    """A request that runs a sweep (whose last shard schedules the case task on commit), then fails."""
    sweep_run()
    raise RuntimeError("the request failed after the sweep")


def test_tasks_scheduled_in_a_transaction_that_rolls_back_are_never_sent() -> None:
    # given 3 accounts below maintenance, swept and committed without cases: a case task would open 3
    instrument = btc()
    accounts(instrument, "margin_call", 3)
    sweep_only()

    with worker(concurrency=1, route_here=True) as w:
        # when a request runs a sweep (which schedules the case task on commit) and then fails
        with pytest.raises(RuntimeError, match="failed after the sweep"):
            _sweep_then_fail()
        # and a request starts a split sweep (2 shard tasks on commit) in a savepoint it rolls back, the rest
        # of it committing
        with transaction.atomic(), suppress(RuntimeError), transaction.atomic():
            sweep_start(shards=2)
            raise RuntimeError("this part failed")

        # then nothing was queued: a task sent after them is the first and only one the worker receives
        sentinel = w.send(DEADLINES_TASK)
        assert w.wait_for_results(1, task_id=sentinel) == [[]]
        assert [(name, task_id) for name, task_id, event in w.events() if event == "received"] == [
            (DEADLINES_TASK, sentinel)
        ]
        assert Case.objects.count() == 0
        assert Sweep.objects.count() == 1

        # and the same sweep committed does send its case task, which the worker runs (the check can see one)
        sweep_run()
        assert w.wait_for_results(1, name=CASES_TASK) == [{"opened": 3, "margin_calls": 3, "cured": 0}]
        assert w.queue_length() == 0
    assert Case.objects.count() == 3
    assert_invariants()
