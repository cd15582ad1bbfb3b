"""Verifying the chain: sound chains pass, and a row edited or deleted with the guard off is named."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pgtrigger
import pytest

from core.audit import AuditVerification, audit_hash, audit_verify
from core.models import AuditEvent

pytestmark = pytest.mark.django_db

Chain = Callable[[int], list[AuditEvent]]


def _guard_off() -> Any:
    """The append-only trigger ignored for this thread (PostgreSQL; on SQLite there is none to ignore)."""
    return pgtrigger.ignore("core.AuditEvent:append_only")


def test_an_empty_trail_verifies() -> None:
    assert audit_verify() == AuditVerification(ok=True, checked=0, first_broken_sequence=None, problem="")


@pytest.mark.parametrize(("events", "batch_size"), [(250, 10_000), (250, 7), (245, 7), (5, 1)])
def test_a_long_chain_verifies_in_batches(
    chain: Chain, django_assert_num_queries: Any, events: int, batch_size: int
) -> None:
    # given
    chain(events)

    # when / then one query per batch (and one more, empty, when the last batch is full)
    with django_assert_num_queries(events // batch_size + 1):
        result = audit_verify(batch_size=batch_size)
    assert result == AuditVerification(ok=True, checked=events, first_broken_sequence=None, problem="")


def test_a_changed_payload_is_named(chain: Chain) -> None:
    # given
    chain(5)

    # when a row is edited with the guard off
    with _guard_off():
        AuditEvent.objects.filter(sequence=3).update(payload={"n": 4})

    # then
    assert audit_verify(batch_size=2) == AuditVerification(
        ok=False, checked=2, first_broken_sequence=3, problem="event #3: hash does not match its contents"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reason", "nothing to see"),
        ("to_state", "cured"),
        ("system_actor", "someone-else"),
        ("account_id", None),
        ("object_id", 999),
        ("action", "case.cure"),
    ],
)
def test_any_changed_field_is_named(chain: Chain, field: str, value: Any) -> None:
    chain(4)
    with _guard_off():
        AuditEvent.objects.filter(sequence=2).update(**{field: value})
    result = audit_verify()
    assert (result.ok, result.first_broken_sequence) == (False, 2)
    assert result.problem == "event #2: hash does not match its contents"


def test_a_moved_timestamp_is_named(chain: Chain) -> None:
    events = chain(4)
    with _guard_off():
        AuditEvent.objects.filter(sequence=4).update(created_at=events[3].created_at + timedelta(microseconds=1))
    assert audit_verify().problem == "event #4: hash does not match its contents"


def test_a_deleted_middle_row_is_named(chain: Chain) -> None:
    # given
    chain(5)

    # when
    with _guard_off():
        AuditEvent.objects.filter(sequence=3).delete()

    # then the gap is found where the chain resumes
    assert audit_verify(batch_size=2) == AuditVerification(
        ok=False, checked=2, first_broken_sequence=4, problem="gap before event #4: #3 missing"
    )


def test_deleted_first_rows_are_named(chain: Chain) -> None:
    chain(4)
    with _guard_off():
        AuditEvent.objects.filter(sequence__in=[1, 2]).delete()
    assert audit_verify() == AuditVerification(
        ok=False, checked=0, first_broken_sequence=3, problem="gap before event #3: #1 to #2 missing"
    )


def test_swapped_hashes_are_named(chain: Chain) -> None:
    # given
    events = chain(5)

    # when the hashes of #2 and #4 are swapped (through a placeholder: hashes are unique)
    with _guard_off():
        AuditEvent.objects.filter(sequence=2).update(hash="x" * 64)
        AuditEvent.objects.filter(sequence=4).update(hash=events[1].hash)
        AuditEvent.objects.filter(sequence=2).update(hash=events[3].hash)

    # then the first of them is named
    assert audit_verify() == AuditVerification(
        ok=False, checked=1, first_broken_sequence=2, problem="event #2: hash does not match its contents"
    )


def test_an_edited_row_with_a_recomputed_hash_breaks_the_next_link(chain: Chain) -> None:
    # given
    chain(5)

    # when a row is edited and its own hash recomputed, so that it is consistent in itself
    with _guard_off():
        AuditEvent.objects.filter(sequence=3).update(reason="rewritten")
        AuditEvent.objects.filter(sequence=3).update(hash=audit_hash(AuditEvent.objects.values().get(sequence=3)))

    # then the next event no longer links to it
    assert audit_verify() == AuditVerification(
        ok=False,
        checked=3,
        first_broken_sequence=4,
        problem="event #4: previous_hash does not link to event #3",
    )


def test_a_first_event_that_does_not_start_the_chain_is_named(chain: Chain) -> None:
    chain(2)
    with _guard_off():
        AuditEvent.objects.filter(sequence=1).update(previous_hash="a" * 64)
        AuditEvent.objects.filter(sequence=1).update(hash=audit_hash(AuditEvent.objects.values().get(sequence=1)))
    result = audit_verify()
    assert (result.ok, result.first_broken_sequence) == (False, 1)
    assert result.problem.startswith("event #1: previous_hash is not the chain's start")


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        audit_verify(batch_size=0)
