"""PostgreSQL: the append-only trigger, and concurrent appenders that never fork the chain."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import ProgrammingError, connection, transaction

from core.audit import AuditVerification, audit_record, audit_record_many, audit_verify
from core.models import AuditEvent
from tests.core.conftest import make_entry

pytestmark = pytest.mark.postgres

Chain = Callable[[int], list[AuditEvent]]
REFUSED = "pgtrigger: Cannot update or delete rows from core_auditevent table"


def _raw(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda: AuditEvent.objects.filter(sequence=2).update(reason="x"), id="queryset-update"),
        pytest.param(lambda: AuditEvent.objects.update(payload={}), id="queryset-update-all"),
        pytest.param(lambda: AuditEvent.objects.get(sequence=2).save(), id="instance-save"),
        pytest.param(lambda: AuditEvent.objects.filter(sequence=2).delete(), id="queryset-delete"),
        pytest.param(lambda: AuditEvent.objects.get(sequence=3).delete(), id="instance-delete"),
        pytest.param(lambda: _raw("UPDATE core_auditevent SET reason = 'x' WHERE sequence = 2"), id="sql-update"),
        pytest.param(lambda: _raw("UPDATE core_auditevent SET hash = previous_hash"), id="sql-update-all"),
        pytest.param(lambda: _raw("DELETE FROM core_auditevent WHERE sequence = 3"), id="sql-delete"),
        pytest.param(lambda: _raw("DELETE FROM core_auditevent"), id="sql-delete-all"),
    ],
)
def test_update_and_delete_are_refused(chain: Chain, tamper: Callable[[], Any]) -> None:
    # given
    chain(3)
    before = list(AuditEvent.objects.order_by("sequence").values())

    # when / then
    with pytest.raises(ProgrammingError, match=REFUSED), transaction.atomic():
        tamper()
    assert list(AuditEvent.objects.order_by("sequence").values()) == before
    assert audit_verify().ok


def _run_together(workers: int, work: Callable[[int], None]) -> list[BaseException]:
    """Start `workers` threads at once; each runs work(i) on its own connection and closes it."""
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(i)
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def _assert_one_unforked_chain(total: int) -> list[AuditEvent]:
    events = list(AuditEvent.objects.order_by("sequence"))
    assert [e.sequence for e in events] == list(range(1, total + 1))
    assert all(b.previous_hash == a.hash for a, b in itertools.pairwise(events))
    assert len({e.previous_hash for e in events}) == total
    assert audit_verify(batch_size=50) == AuditVerification(
        ok=True, checked=total, first_broken_sequence=None, problem=""
    )
    return events


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_append_one_chain() -> None:
    # given 8 writers started together, each appending 25 events, one transaction per event
    def work(i: int) -> None:
        for n in range(25):
            with transaction.atomic():
                audit_record(make_entry(n, system_actor=f"writer-{i}"))

    # when
    errors = _run_together(8, work)

    # then 200 events, sequences 1..200, one chain, each writer's events in its own order
    assert errors == []
    events = _assert_one_unforked_chain(200)
    for i in range(8):
        assert [e.object_id for e in events if e.system_actor == f"writer-{i}"] == list(range(25))


@pytest.mark.django_db(transaction=True)
def test_concurrent_batch_writers_append_one_chain() -> None:
    # given 8 writers started together, each appending 25 events in one transaction with one bulk insert
    def work(i: int) -> None:
        with transaction.atomic():
            audit_record_many([make_entry(n, system_actor=f"writer-{i}") for n in range(25)])

    # when
    errors = _run_together(8, work)

    # then each writer's 25 events are consecutive: a batch is appended whole under one lock
    assert errors == []
    events = _assert_one_unforked_chain(200)
    for start in range(0, 200, 25):
        block = events[start : start + 25]
        assert len({e.system_actor for e in block}) == 1
        assert [e.object_id for e in block] == list(range(25))


@pytest.mark.django_db(transaction=True)
def test_a_second_writer_waits_for_the_first_to_commit() -> None:
    # given a writer that has recorded an event and not yet committed
    recorded = threading.Event()
    release = threading.Event()
    second_done = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with transaction.atomic():
                audit_record(make_entry(1, system_actor="first"))
                recorded.set()
                release.wait(timeout=30)
        except BaseException as error:
            errors.append(error)
        finally:
            recorded.set()
            connection.close()

    def second() -> None:
        try:
            with transaction.atomic():
                audit_record(make_entry(2, system_actor="second"))
            second_done.set()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    first_thread = threading.Thread(target=first)
    first_thread.start()
    assert recorded.wait(timeout=30)
    second_thread = threading.Thread(target=second)
    second_thread.start()

    # when the second writer tries to append, it waits on the lock
    assert not second_done.wait(timeout=0.5)

    # then once the first commits, the second follows it
    release.set()
    first_thread.join(timeout=30)
    second_thread.join(timeout=30)
    assert errors == []
    assert second_done.is_set()
    events = _assert_one_unforked_chain(2)
    assert [e.system_actor for e in events] == ["first", "second"]
