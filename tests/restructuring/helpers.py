"""The harness of the reliability tests (docs: docs/reliability.md): a small book, threads started
together, locks held from another connection, a real Celery worker that can be killed, and the invariant
check every scenario ends with.
"""

from __future__ import annotations

import ast
import itertools
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.test import override_settings
from django.utils import timezone

from accounts.models import (
    Client,
    Instrument,
    LoanStatus,
    MarginAccount,
    MarginLoan,
    Position,
    Price,
    Sweep,
)
from accounts.services.sweep import sweep_run
from config.celery import app
from config.queues import queue_names
from core.audit import audit_verify
from core.models import AuditEvent
from restructuring.models import OPEN_STATES, Case, CaseState, LiquidationOrder, LiquidationPlan, LiquidationStatus
from tests.celery_worker import ROOT, _test_database_url, queues_delete

# ----------------------------------------------------------------------------------------------- the book

# 10 BTC at 100 in every account (maintenance 30% = 300, initial 50% = 500, warning below 1.25 x 300):
# the loan sets the band. BTC trades 1,000 a day, so at 10% participation a 10 BTC plan is one order on day 0
# at 100 x (1 - 0.7 x 0.04 x sqrt(10 / 1,000)) = 99.72: proceeds 997.20.
LOANS = {"healthy": "500", "warning": "660", "margin_call": "750", "critical": "1100"}


def btc(price: str = "100") -> Instrument:
    instrument = Instrument.objects.create(
        symbol="BTC",
        kind="spot",
        initial_rate=Decimal("0.5"),
        maintenance_rate=Decimal("0.3"),
        haircut=Decimal("0.1"),
        scenario_class="crypto",
        daily_volatility=Decimal("0.04"),
        average_daily_volume=Decimal("1000"),
    )
    Price.objects.create(instrument=instrument, time=timezone.now() - timedelta(minutes=5), price=Decimal(price))
    return instrument


def account(code: str, instrument: Instrument, *, band: str, quantity: str = "10") -> MarginAccount:
    """An account of 10 BTC, no cash, and the loan that puts it in `band` at 100 (the healthy one has 1,000
    cash besides)."""
    client = Client.objects.create(code=f"C-{code}", name=code)
    cash = Decimal("1000") if band == "healthy" else Decimal(0)
    margin_account = MarginAccount.objects.create(code=code, client=client, cash=cash)
    Position.objects.create(
        account=margin_account, instrument=instrument, quantity=Decimal(quantity), entry_price=Decimal(90)
    )
    MarginLoan.objects.create(account=margin_account, principal=Decimal(LOANS[band]), rate_annual=Decimal("0.08"))
    return margin_account


def accounts(instrument: Instrument, band: str, count: int, *, prefix: str = "") -> list[MarginAccount]:
    return [account(f"{prefix}{band.upper()}{i:02}", instrument, band=band) for i in range(count)]


def price_set(price: str) -> None:
    Price.objects.create(instrument=Instrument.objects.get(symbol="BTC"), time=timezone.now(), price=Decimal(price))


def sweep_only() -> Sweep:
    """A sweep whose after-sweep tasks (the case moves) are not queued: the test drives the cases itself."""
    with override_settings(WORKOUT_AFTER_SWEEP_TASKS=[]):
        return sweep_run()


def deadlines_pass(cases: Sequence[Case] | None = None) -> list[int]:
    """Put the margin calls' deadlines two hours in the past (an hour beyond the grace), one second apart
    in the given order, so that the deadline run takes them in that order."""
    if cases is None:
        cases = list(Case.objects.filter(state=CaseState.MARGIN_CALL).order_by("pk"))
    start = timezone.now() - timedelta(hours=2)
    for k, case in enumerate(cases):
        Case.objects.filter(pk=case.pk).update(deadline=start - timedelta(seconds=len(cases) - k))
    return [case.pk for case in cases]


# ----------------------------------------------------------------------------------------- concurrency


@dataclass(frozen=True)
class Outcome:
    value: Any = None
    error: BaseException | None = None


def run_together(*works: Callable[[], Any], timeout_s: float = 60.0) -> list[Outcome]:
    """Run each work in its own thread, all released at once by a barrier; each thread closes its own
    database connection. Returns what each returned or raised, in the order given."""
    barrier = threading.Barrier(len(works))
    outcomes: list[Outcome] = [Outcome()] * len(works)

    def run(k: int, work: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[k] = Outcome(value=work())
        except BaseException as error:  # reported to the test, not lost in the thread
            outcomes[k] = Outcome(error=error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(k, work)) for k, work in enumerate(works)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout_s)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck (deadlock?)"
    return outcomes


def start_in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Outcome]]:
    """Start work in a thread of its own (its own connection, closed at the end) without waiting for it; the
    list gets its Outcome when it ends."""
    outcome: list[Outcome] = []

    def run() -> None:
        try:
            outcome.append(Outcome(value=work()))
        except BaseException as error:  # reported to the test, not lost in the thread
            outcome.append(Outcome(error=error))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


class LockHolder:
    """Run SQL that takes locks in a transaction of another connection, and hold them until release()."""

    def __init__(self, sql: str, params: Sequence[int | str] = ()) -> None:
        self._taken, self._release = threading.Event(), threading.Event()
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._hold, args=(sql, list(params)))
        self._thread.start()
        assert self._taken.wait(timeout=30), "the lock was not taken in time"
        if self._errors:
            raise self._errors[0]

    def _hold(self, sql: str, params: list[int | str]) -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, params)
                self._taken.set()
                self._release.wait(timeout=120)
        except BaseException as error:
            self._errors.append(error)
        finally:
            self._taken.set()
            connection.close()

    def release(self) -> None:
        self._release.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive()
        if self._errors:
            raise self._errors[0]


def lock_waits(locktype: str | None = None) -> int:
    """Sessions of this test database waiting for a lock right now (of `locktype`: "advisory", "tuple",
    "transactionid"...; any by default)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database() AND (%s::text IS NULL OR l.locktype = %s)",
            [locktype, locktype],
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def other_sessions() -> int:
    """Sessions of this test database other than this thread's (a killed worker's last one ends by itself)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def other_sessions_described() -> list[tuple[Any, ...]]:
    """The other sessions of this test database, as PostgreSQL sees them (for a timeout's message)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name, state, wait_event_type, wait_event, left(query, 120) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return list(cursor.fetchall())


def wait_until(condition: Callable[[], bool], what: str, *, timeout_s: float = 30.0, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(poll_s)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")


# ------------------------------------------------------------------------------------------ a real worker

# Workers with a short visibility timeout use their own Redis database: their sweep of unacknowledged
# messages is global to a database and would redeliver the in-flight tasks of every other worker there.
REDELIVERY_REDIS_DB = 9
_TASK_LINE = re.compile(r"Task (?P<name>[\w.]+)\[(?P<id>[0-9a-f-]+)\] (?P<event>received|succeeded in [\d.e-]+s: )")


DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused, as with Redis down


@contextmanager
def broker_unreachable() -> Iterator[None]:
    """This process publishes to a Redis address where nothing listens (the machine's shared Redis stays up), and
    runs no task in-process. The connection pools are dropped on the way in and out: a pool made earlier would
    still reach the real broker."""

    def pools_drop() -> None:  # forgotten, not closed: kombu keeps them per address, for the way back
        app._pool = None
        app.amqp._producer_pool = None

    previous = app.conf.broker_url, app.conf.task_always_eager
    previous_environ = os.environ.get("CELERY_BROKER_URL")
    pools_drop()
    # Celery reads CELERY_BROKER_URL from the environment before its settings (CI and the suite set it).
    os.environ["CELERY_BROKER_URL"] = DEAD_BROKER
    app.conf.broker_url, app.conf.task_always_eager = DEAD_BROKER, False
    try:
        yield
    finally:
        pools_drop()
        if previous_environ is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = previous_environ
        app.conf.broker_url, app.conf.task_always_eager = previous


def broker_url(*, redis_db: int | None = None) -> str:
    url = settings.CELERY_BROKER_URL
    if redis_db is None:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{redis_db}"))


@dataclass
class Worker:
    """A `celery worker` subprocess (its own process group and queue) and its log at INFO."""

    queue: str
    name: str
    broker_url: str
    log_path: Path
    concurrency: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    _starts: int = 0

    # --- life

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                ",".join(queue_names(self.queue)),
                "-n",
                f"{self.name}@localhost",
                "-c",
                str(self.concurrency),
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL takes the pool children with it
        )
        log.close()
        # Ready once it says so in its log (a ping would go through this process's default broker only).
        ready = f"{self.name}@localhost ready."
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited ({self.process.returncode}):\n{self.log()}")
            if self.log().count(ready) > self._starts:
                self._starts += 1
                return
            time.sleep(0.1)
        raise TimeoutError(f"the worker did not get ready in time:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool): nothing is acknowledged or cleaned up."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def pool_children(self) -> list[int]:
        assert self.process is not None
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)  # warm shutdown: running tasks finish
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    # --- tasks

    def send(self, name: str, **kwargs: object) -> str:
        """Publish task `name` to this worker's queue on its broker; returns the task id."""
        with app.connection_for_write(self.broker_url) as conn:
            result = app.send_task(name, kwargs=kwargs, queue=self.queue, connection=conn)
        return str(result.id)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, task_id: str | None = None, name: str | None = None) -> list[tuple[str, str, str]]:
        """(task name, task id, "received" or "succeeded: <return value>") from the log, in order."""
        found = []
        for line in self.log().splitlines():
            match = _TASK_LINE.search(line)
            if not match or (task_id and match["id"] != task_id) or (name and match["name"] != name):
                continue
            event = "received" if match["event"] == "received" else "succeeded: " + line[match.end() :].strip()
            found.append((match["name"], match["id"], event))
        return found

    def received(self, *, task_id: str | None = None, name: str | None = None) -> int:
        return sum(1 for *_, event in self.events(task_id, name) if event == "received")

    def results(self, *, task_id: str | None = None, name: str | None = None) -> list[Any]:
        """The return values of the runs that succeeded, as logged by the worker."""
        return [
            ast.literal_eval(event.removeprefix("succeeded: "))
            for *_, event in self.events(task_id, name)
            if event.startswith("succeeded")
        ]

    def wait_for_results(
        self, count: int, *, task_id: str | None = None, name: str | None = None, timeout_s: float = 60.0
    ) -> list[Any]:
        return wait_for_results([self], count, task_id=task_id, name=name, timeout_s=timeout_s)

    def queue_length(self) -> int:
        """Messages waiting in this worker's queues (all of its prefix's)."""
        client = redis.Redis.from_url(self.broker_url)
        try:
            return sum(int(client.llen(name)) for name in queue_names(self.queue))
        finally:
            client.close()


@contextmanager
def worker(
    *,
    concurrency: int = 2,
    visibility_timeout_s: int | None = None,
    start: bool = True,
    route_here: bool = False,
    env: Mapping[str, str] | None = None,
    broker: str | None = None,
) -> Iterator[Worker]:
    """A real worker on a fresh queue against this test's database.

    `visibility_timeout_s`: the worker's env gets CELERY_VISIBILITY_TIMEOUT (config/settings.py reads it into
    CELERY_BROKER_TRANSPORT_OPTIONS), and the worker runs on REDELIVERY_REDIS_DB. `route_here`: tasks this
    process queues with `.delay()` (the services' on-commit ones) go to this worker's queue; only on the
    suite's own broker database. Tasks sent with `Worker.send` always do. `env`: more settings for the worker.
    `broker`: another broker URL (a private Redis a test may restart).
    """
    assert not (route_here and visibility_timeout_s is not None), "`.delay()` publishes on the configured broker"
    queue = f"test-rel-{uuid.uuid4().hex[:12]}"
    url = broker or broker_url(redis_db=None if visibility_timeout_s is None else REDELIVERY_REDIS_DB)
    worker_env = {
        **os.environ,
        **(env or {}),
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": url,
        "CELERY_QUEUE": queue,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "INFO",
    }
    if visibility_timeout_s is not None:
        worker_env["CELERY_VISIBILITY_TIMEOUT"] = str(visibility_timeout_s)
    previous = app.conf.task_default_queue, app.conf.task_always_eager
    app.conf.task_always_eager = False
    if route_here:
        app.conf.task_default_queue = queue
    try:
        with _worker_process(
            queue=queue, name=queue, url=url, env=worker_env, concurrency=concurrency, start=start
        ) as w:
            yield w
    finally:
        app.conf.task_default_queue, app.conf.task_always_eager = previous
        _queue_forget(url, queue)


@contextmanager
def another_worker(first: Worker, *, concurrency: int | None = None) -> Iterator[Worker]:
    """A second worker process on the first one's queue and broker, with the same settings."""
    name = f"{first.queue}-{uuid.uuid4().hex[:4]}"
    with _worker_process(
        queue=first.queue,
        name=name,
        url=first.broker_url,
        env=first.env,
        concurrency=concurrency or first.concurrency,
        start=True,
    ) as w:
        yield w


@contextmanager
def _worker_process(
    *, queue: str, name: str, url: str, env: dict[str, str], concurrency: int, start: bool
) -> Iterator[Worker]:
    handle, log_name = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
    os.close(handle)
    the_worker = Worker(
        queue=queue, name=name, broker_url=url, log_path=Path(log_name), concurrency=concurrency, env=env
    )
    try:
        if start:
            the_worker.start()
        yield the_worker
    finally:
        the_worker.stop()
        Path(log_name).unlink(missing_ok=True)


def _queue_forget(url: str, queue: str) -> None:
    queues_delete(url, queue)


def results_of(workers: Sequence[Worker], *, task_id: str | None = None, name: str | None = None) -> list[Any]:
    return [result for w in workers for result in w.results(task_id=task_id, name=name)]


def received_by(workers: Sequence[Worker], *, task_id: str | None = None, name: str | None = None) -> int:
    return sum(w.received(task_id=task_id, name=name) for w in workers)


def wait_for_results(
    workers: Sequence[Worker],
    count: int,
    *,
    task_id: str | None = None,
    name: str | None = None,
    timeout_s: float = 60.0,
) -> list[Any]:
    """Wait until the workers' logs show `count` successful runs of the task; fail at once if one raised."""
    failed = re.compile(rf"Task {re.escape(name or '')}[\w.]*\[{re.escape(task_id or '')}[0-9a-f-]*\] raised")

    def logs() -> str:
        return "\n".join(f"--- {w.name}:\n{w.log()}" for w in workers)

    try:
        wait_until(
            lambda: (
                len(results_of(workers, task_id=task_id, name=name)) >= count
                or any(failed.search(w.log()) for w in workers)
            ),
            f"{count} successful run(s) of {name or task_id}",
            timeout_s=timeout_s,
            poll_s=0.1,
        )
    except TimeoutError as error:
        raise TimeoutError(f"{error}\n{logs()}") from None
    results = results_of(workers, task_id=task_id, name=name)
    assert len(results) >= count, f"a run failed:\n{logs()}"
    return results


# ------------------------------------------------------------------------------------------ invariants

MoneyBefore = Mapping[int, tuple[Decimal, Decimal]]


def money_snapshot() -> dict[int, tuple[Decimal, Decimal]]:
    """{account id: (cash, debt = principal + accrued interest of the active loan)}, taken before a
    scenario books liquidations, for the money check of assert_invariants."""
    debt = {
        loan.account_id: loan.principal + loan.accrued_interest
        for loan in MarginLoan.objects.filter(status=LoanStatus.ACTIVE)
    }
    return {a.pk: (a.cash, debt.get(a.pk, Decimal(0))) for a in MarginAccount.objects.all()}


def _expected_path(case: Case, plan: LiquidationPlan | None) -> list[str]:
    """The states a case has been through, read from its row and its plan (the services that exist: the
    sweep's open / margin call / cure, liquidation, booking)."""
    path = ["", CaseState.WARNING]
    if case.called_at is not None:
        path.append(CaseState.MARGIN_CALL)
    if plan is not None:
        path.append(CaseState.LIQUIDATING)
    if case.state in (CaseState.LIQUIDATED, CaseState.WRITTEN_OFF):
        path.append(CaseState.LIQUIDATED)
    if case.state == CaseState.WRITTEN_OFF:
        path.append(CaseState.WRITTEN_OFF)
    if case.state == CaseState.CURED:
        path.append(CaseState.CURED)
    return [str(state) for state in path]


def assert_invariants(*, money_before: MoneyBefore | None = None) -> None:
    """What must hold after every scenario, whatever raced:
    - at most one open case per account;
    - every state change of every case has exactly one audit event: the events of a case chain from "" to
      its current state, one per transition its row and plan show it made, none twice;
    - a plan exists exactly for the cases that went to liquidation, with its orders (a planned plan's orders
      add up to the positions), booked exactly when the case is liquidated or written off;
    - money: a booked plan's proceeds are the debt repaid plus the cash left in the account by it, and the
      debt before is the debt repaid plus the shortfall written off;
    - the audit chain verifies.
    """
    doubled = list(
        Case.objects.filter(state__in=OPEN_STATES).values("account_id").annotate(n=Count("id")).filter(n__gt=1)
    )
    assert doubled == [], f"accounts with more than one open case: {doubled}"

    cases = {case.pk: case for case in Case.objects.all()}
    plans = {plan.case_id: plan for plan in LiquidationPlan.objects.all()}
    events: dict[int, list[AuditEvent]] = {}
    for event in AuditEvent.objects.filter(object_type="restructuring.case").order_by("sequence"):
        events.setdefault(event.object_id, []).append(event)
    assert set(events) <= set(cases), f"audit events of cases that do not exist: {set(events) - set(cases)}"
    for case_id, case in cases.items():
        mine = events.get(case_id, [])
        path = _expected_path(case, plans.get(case_id))
        assert path[-1] == case.state, f"case {case_id} is {case.state} but its row and plan say {path}"
        assert mine, f"case {case_id} ({case.state}) has no audit event"
        assert mine[-1].to_state == case.state, f"case {case_id} is {case.state}, its last event {mine[-1].action}"
        recorded = [(e.from_state, e.to_state) for e in mine]
        assert recorded == list(itertools.pairwise(path)), (
            f"case {case_id}: events {[(e.action, e.from_state, e.to_state) for e in mine]}, transitions {path}"
        )
        assert {e.account_id for e in mine} == {case.account_id}

    for case_id, plan in plans.items():
        case = cases[case_id]
        orders = list(LiquidationOrder.objects.filter(plan=plan))
        assert orders or not plan.inputs.get("holdings"), f"plan {plan.pk} has no orders"
        booked = case.state in (CaseState.LIQUIDATED, CaseState.WRITTEN_OFF)
        assert (plan.status == LiquidationStatus.BOOKED) == booked, f"plan {plan.pk} {plan.status}, case {case.state}"
        if booked:
            assert all(o.filled_quantity == o.quantity for o in orders), f"plan {plan.pk} booked with open orders"
            _assert_money(case, plan, money_before)
        elif not any(o.filled_quantity for o in orders):
            planned: dict[int, Decimal] = {}
            for order in orders:
                planned[order.position_id] = planned.get(order.position_id, Decimal(0)) + order.quantity
            held = dict(Position.objects.filter(pk__in=planned).values_list("pk", "quantity"))
            assert planned == held, f"plan {plan.pk}: orders {planned} do not add up to the positions {held}"

    verification = audit_verify()
    assert verification.ok, verification


def _assert_money(case: Case, plan: LiquidationPlan, money_before: MoneyBefore | None) -> None:
    assert money_before is not None, "a plan was booked: pass money_before=money_snapshot() taken before"
    cash_before, debt_before = money_before[case.account_id]
    cash_after = MarginAccount.objects.values_list("cash", flat=True).get(pk=case.account_id)
    assert plan.cash_realised is not None
    assert plan.debt_repaid is not None
    assert plan.shortfall is not None
    assert plan.cash_realised == plan.debt_repaid + (cash_after - cash_before), (case.pk, plan.pk)
    assert debt_before == plan.debt_repaid + plan.shortfall, (case.pk, plan.pk)
    if case.state == CaseState.WRITTEN_OFF:
        assert plan.shortfall > 0
        assert case.written_off_amount == plan.shortfall
    else:
        assert plan.shortfall == 0
    event = AuditEvent.objects.get(object_type="restructuring.case", object_id=case.pk, action="case.liquidated")
    recorded = {name: Decimal(event.payload[name]) for name in ("cash_realised", "debt_repaid", "shortfall")}
    assert recorded == {
        "cash_realised": plan.cash_realised,
        "debt_repaid": plan.debt_repaid,
        "shortfall": plan.shortfall,
    }
