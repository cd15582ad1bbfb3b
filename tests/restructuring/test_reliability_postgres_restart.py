"""RELIABILITY.md, "Redis or PostgreSQL restart": PostgreSQL restarted under a running worker.

The suite's PostgreSQL is shared, so the test makes a cluster of its own (tests/restructuring/private_postgres.py),
points the worker and this process's Django at it, and kills it (`pg_ctl stop -m immediate`) while a task is in
the middle of its transaction, having written but not committed: once in a sweep shard, with the server back at
once; once in the case moves after a sweep, with the server down a while and more work queued meanwhile. It
checks that the worker (the same processes) carries on by itself, that the tasks retried with backoff and then
did their work exactly once, and that the killed transactions left nothing behind.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.db.models import Count
from django.db.utils import load_backend
from django.utils import timezone
from psycopg.rows import dict_row
from pytest_django import DjangoDbBlocker

from accounts.models import MarginAccount, RiskSnapshot, RiskState, Sweep, SweepShard, SweepStatus
from core.audit import APPEND_LOCK_KEY
from core.models import AuditEvent
from restructuring.models import Case, CaseState, FeasibilityReport
from tests.restructuring.helpers import (
    Worker,
    accounts,
    assert_invariants,
    btc,
    price_set,
    sweep_only,
    wait_until,
    worker,
)
from tests.restructuring.private_postgres import PrivatePostgres, initdb_missing, private_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.celery_worker]

SWEEP_TASK = "accounts.tasks.sweep_run_task"
SHARD_TASK = "accounts.tasks.sweep_shard_run_task"
CASES_TASK = "restructuring.tasks.cases_apply_risk_task"
PROPOSE_TASK = "restructuring.tasks.propose_from_rules"
_RETRY_LINE = re.compile(
    r"Task (?P<name>[\w.]+)\[(?P<id>[0-9a-f-]+)\] retry: Retry in (?P<seconds>[\d.]+)s: (?P<error>\w+)"
)


@pytest.fixture
def private_database(django_db_blocker: DjangoDbBlocker) -> Iterator[PrivatePostgres]:
    """A migrated database on a private cluster, and this process's Django pointed at it: the ORM, the helpers
    (`accounts`, `assert_invariants`...) and `worker()` (it hands the worker this process's database) all use it.
    It is not a pytest-django test database: nothing on the suite's server is touched."""
    missing = initdb_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run every test: {missing}")
        pytest.skip(missing)
    with private_postgres() as cluster, django_db_blocker.unblock(), _default_database(cluster):
        call_command("migrate", interactive=False, verbosity=0)
        yield cluster


@contextmanager
def _default_database(cluster: PrivatePostgres) -> Iterator[None]:
    original = connections["default"]
    settings_dict = {**original.settings_dict, **cluster.settings_dict()}
    private = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, "default")
    connections["default"] = private  # this thread's (the test's); the test uses no other for Django
    try:
        yield
    finally:
        private.close()
        connections["default"] = original


def test_a_worker_recovers_when_postgres_restarts_mid_transaction_and_each_effect_happens_once(
    private_database: PrivatePostgres,
) -> None:
    cluster = private_database
    # given a book swept once at 130 (all healthy, no case): at 100, three accounts fall below maintenance and
    # two into warning; at 90 the two in warning fall below maintenance too. Three stay healthy throughout.
    instrument = btc("130")
    for band in ("healthy", "warning", "margin_call"):
        accounts(instrument, band, 2 if band == "warning" else 3)
    assert sweep_only().band_counts["healthy"] == 8
    last_account = MarginAccount.objects.order_by("pk").last()
    assert last_account is not None
    called = set(MarginAccount.objects.filter(code__startswith="MARGIN_CALL").values_list("pk", flat=True))
    warned = set(MarginAccount.objects.filter(code__startswith="WARNING").values_list("pk", flat=True))
    price_set("100")

    env = {
        "WORKOUT_SWEEP_SHARDS": "2",  # the beat's sweep splits the book into two shard tasks
        "WORKOUT_FEASIBILITY_PATHS": "500",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }
    with worker(concurrency=2, env=env) as w:
        assert w.process is not None
        processes = (w.process.pid, sorted(w.pool_children()))

        # --- 1. a sweep shard killed with its writes uncommitted, the server back at once

        # when the beat's sweep runs and one shard, its history rows written, waits to write the risk state of
        # an account whose row this test holds, and PostgreSQL is killed then (the other shard has committed)
        held = "SELECT 1 FROM accounts_riskstate WHERE account_id = %s FOR UPDATE"
        with _holding(cluster, held, [last_account.pk]) as holder:
            sweep_id = w.wait_for_results(1, task_id=w.send(SWEEP_TASK))[0]
            blocked = _wait_for_blocked_writer(cluster, w, holder)
            assert "accounts_riskstate" in blocked["query"], blocked
            done = "SELECT count(*) FROM accounts_sweepshard WHERE sweep_id = %s AND status = 'done'"
            _wait_for_count(cluster, done, [sweep_id], 1)
            shard_killed_at = timezone.now()
            cluster.restart()
        connection.close()  # this process's connection died too (only requests and tasks check theirs)

        # then the shard retries, stores its accounts once, and the chain after a sweep follows: the case moves,
        # margin-call feasibility, the rules
        assert w.wait_for_results(1, name=CASES_TASK) == [{"opened": 5, "margin_calls": 3, "cured": 0}]
        w.wait_for_results(1, name=PROPOSE_TASK)
        assert len({task_id for task_id, *_ in _retries(w, SHARD_TASK)}) == 1, w.log()
        assert len(w.results(name=SHARD_TASK)) == 2
        _assert_sweep_stored_once(sweep_id, killed_at=shard_killed_at, changed=called | warned)
        cases_tasks_before = {task_id for _, task_id, _ in w.events(name=CASES_TASK)}

        # --- 2. the case moves killed with their writes uncommitted, the server down a while, work queued

        # when the case task after the next sweep (at 90) has moved the two cases in warning and waits for the
        # audit trail's append lock, which this test holds, and PostgreSQL is killed then and stays down while
        # another case task is queued (the beat sends one after every sweep)
        price_set("90")
        with _holding(cluster, "SELECT pg_advisory_xact_lock(%s)", [APPEND_LOCK_KEY]) as holder:
            sweep_id = w.wait_for_results(1, task_id=w.send(SWEEP_TASK))[0]
            blocked = _wait_for_blocked_writer(cluster, w, holder)
            assert "pg_advisory_xact_lock" in blocked["query"], blocked
            cases_killed_at = timezone.now()
            cluster.stop(mode="immediate")
        again = w.send(CASES_TASK, sweep_id=sweep_id)
        wait_until(lambda: bool(_retries(w, task_id=again)), "the task queued while down to retry", timeout_s=20)
        time.sleep(1.0)
        cluster.start()
        connection.close()

        # then both case tasks retry with backoff until the server is back, and between them move each case once
        moves = w.wait_for_results(3, name=CASES_TASK)[1:]
        assert len(moves) == 2, moves
        assert {key: sum(m[key] for m in moves) for key in moves[0]} == {"opened": 0, "margin_calls": 2, "cured": 0}
        w.wait_for_results(2, name=PROPOSE_TASK)
        cases_tasks = {task_id for _, task_id, _ in w.events(name=CASES_TASK)} - cases_tasks_before
        assert again in cases_tasks
        assert len(cases_tasks) == 2
        assert {task_id for task_id, *_ in _retries(w, CASES_TASK)} == cases_tasks, w.log()

        # and the worker is the one started: no process was restarted or replaced, no task failed for good, and
        # every retry was for a lost or refused connection
        assert w.process.poll() is None
        assert (w.process.pid, sorted(w.pool_children())) == processes
        assert "raised unexpected" not in w.log(), w.log()
        assert {error for *_, error in _retries(w)} == {"OperationalError"}, _retries(w)

    # then every account below maintenance has one case, in margin call, with one audit event per transition;
    # the escalations are those of the attempt after the kill (the killed one left nothing); one feasibility
    # report per margin call; every sweep and shard done; the audit chain verifies
    cases = list(Case.objects.order_by("account_id"))
    assert [c.account_id for c in cases] == sorted(called | warned)
    assert {c.state for c in cases} == {CaseState.MARGIN_CALL}
    escalations = list(
        AuditEvent.objects.filter(action="case.margin_call", account_id__in=warned).order_by("account_id")
    )
    assert [e.account_id for e in escalations] == sorted(warned)
    assert all(e.created_at > cases_killed_at for e in escalations)
    assert all(c.called_at is not None and c.called_at > cases_killed_at for c in cases if c.account_id in warned)
    reports = FeasibilityReport.objects.values("case_id", "key").annotate(n=Count("id"))
    assert sorted((r["case_id"], r["key"], r["n"]) for r in reports) == sorted(
        (c.pk, f"margin_call:{c.called_at.isoformat()}", 1) for c in cases if c.called_at is not None
    )
    assert AuditEvent.objects.filter(action="feasibility.report").count() == len(cases)
    assert list(Sweep.objects.values_list("status", flat=True).distinct()) == [SweepStatus.DONE]
    assert list(SweepShard.objects.values_list("status", flat=True).distinct()) == [SweepStatus.DONE]
    assert_invariants()
    call_command("verify_audit", stdout=StringIO())  # raises CommandError on a broken chain


@contextmanager
def _holding(cluster: PrivatePostgres, sql: str, params: Sequence[object]) -> Iterator[psycopg.Connection[Any]]:
    """Hold the locks `sql` takes in an open transaction, on a connection of the test's own (not Django's),
    until the block ends or the server dies."""
    holder = cluster.connect(autocommit=False)
    try:
        holder.execute(sql, params)
        yield holder
    finally:
        with suppress(psycopg.Error):
            holder.close()


def _wait_for_blocked_writer(cluster: PrivatePostgres, w: Worker, holder: psycopg.Connection[Any]) -> dict[str, Any]:
    """Wait until a session that has written in its open transaction (it has a transaction id) waits for a lock
    `holder` holds; return it (pid, wait event, query)."""
    found: list[dict[str, Any]] = []

    def sessions() -> list[dict[str, Any]]:
        with cluster.connect() as observer, observer.cursor(row_factory=dict_row) as cursor:
            cursor.execute(
                "SELECT pid, state, wait_event_type, wait_event, backend_xid::text AS xid, query, "
                "%s = ANY(pg_blocking_pids(pid)) AS blocked FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()",
                [holder.info.backend_pid],
            )
            return cursor.fetchall()

    def blocked() -> bool:
        found[:] = [row for row in sessions() if row["blocked"] and row["xid"]]
        return bool(found)

    try:
        wait_until(blocked, "a writer blocked by this test's lock", timeout_s=30)
    except TimeoutError as error:
        raise TimeoutError(f"{error}\nsessions: {sessions()}\nworker:\n{w.log()}") from None
    return found[0]


def _wait_for_count(cluster: PrivatePostgres, sql: str, params: Sequence[object], expected: int) -> None:
    def reached() -> bool:
        with cluster.connect() as observer:
            row = observer.execute(sql, params).fetchone()
        return row is not None and row[0] == expected

    wait_until(reached, f"{sql} to be {expected}", timeout_s=30)


def _retries(w: Worker, name: str | None = None, *, task_id: str | None = None) -> list[tuple[str, float, str]]:
    """(task id, countdown in seconds, error) of each retry the worker logged."""
    return [
        (match["id"], float(match["seconds"]), match["error"])
        for match in _RETRY_LINE.finditer(w.log())
        if (name is None or match["name"] == name) and (task_id is None or match["id"] == task_id)
    ]


def _assert_sweep_stored_once(sweep_id: int, *, killed_at: datetime, changed: set[int]) -> None:
    """Both shards and the sweep done. The shard that was killed stored every account of its range in one
    attempt, after the kill (an attempt's rows share its clock reading); the other, committed before the kill,
    kept what it stored. One history row per account whose band changed."""
    shards = list(SweepShard.objects.filter(sweep_id=sweep_id).order_by("account_id_from"))
    assert [s.status for s in shards] == [SweepStatus.DONE, SweepStatus.DONE]
    assert Sweep.objects.get(pk=sweep_id).status == SweepStatus.DONE
    for shard, killed in zip(shards, (False, True), strict=True):  # the held account is the last one
        ids = set(
            MarginAccount.objects.filter(pk__gte=shard.account_id_from, pk__lt=shard.account_id_to).values_list(
                "pk", flat=True
            )
        )
        states = list(RiskState.objects.filter(account_id__in=ids))
        snapshots = list(RiskSnapshot.objects.filter(sweep_id=sweep_id, account_id__in=ids))
        assert shard.accounts == len(ids) == len(states)
        assert {s.sweep_id for s in states} == {sweep_id}
        assert sorted(s.account_id for s in snapshots) == sorted(ids & changed)
        written = {s.computed_at for s in [*states, *snapshots]}
        assert len(written) == 1, f"shard {shard.pk}: rows of more than one attempt {written}"
        assert (written.pop() > killed_at) is killed, (shard.pk, killed_at)
