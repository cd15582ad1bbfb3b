"""Recording events: the documented hash, the chain, the transaction rule, the actor rule, the payload."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import TextChoices
from hypothesis import given
from hypothesis import strategies as st

from core import audit
from core.audit import (
    AuditEntry,
    AuditTransactionError,
    audit_hash,
    audit_record,
    audit_record_many,
    audit_verify,
)
from core.errors import ValidationError
from core.models import AuditEvent
from tests.core.conftest import OBJECT_TYPE, make_entry

pytestmark = pytest.mark.django_db

ZEROS = "0" * 64


def _reference_hash(document: dict[str, Any]) -> str:
    """The serialisation exactly as the module docstring documents it, written out independently."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _document(event: AuditEvent) -> dict[str, Any]:
    return {
        "sequence": event.sequence,
        "created_at": event.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"),
        "actor_id": event.actor_id,
        "system_actor": event.system_actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "account_id": event.account_id,
        "from_state": event.from_state,
        "to_state": event.to_state,
        "reason": event.reason,
        "payload": event.payload,
        "previous_hash": event.previous_hash,
    }


def test_hash_of_a_hand_built_event_is_the_documented_sha256(
    officer: AbstractBaseUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a fixed clock on a whole second (microseconds must still be written) and a mixed payload
    monkeypatch.setattr(audit.timezone, "now", lambda: datetime(2026, 11, 5, 14, 3, 7, tzinfo=UTC))
    entry = AuditEntry(
        action="case.open",
        object_type=OBJECT_TYPE,
        object_id=7,
        account_id=42,
        actor=officer,
        from_state="",
        to_state="open",
        reason="Fehlbetrag über Limit — 1/2",
        payload={
            "shortfall": Decimal("1.50"),
            "as_of": datetime(2026, 11, 5, 16, 3, 7, 120034, tzinfo=timezone(timedelta(hours=2))),
            "due": date(2026, 11, 6),
            "rule_set": {"version": 3, "name": "base"},
            "flags": (True, None, "ß"),
        },
    )

    # when
    with transaction.atomic():
        event = audit_record(entry)

    # then the stored payload is already in its canonical JSON form
    payload = {
        "shortfall": "1.50",
        "as_of": "2026-11-05T14:03:07.120034+00:00",
        "due": "2026-11-06",
        "rule_set": {"version": 3, "name": "base"},
        "flags": [True, None, "ß"],
    }
    document = {
        "sequence": 1,
        "created_at": "2026-11-05T14:03:07.000000+00:00",
        "actor_id": officer.pk,
        "system_actor": "",
        "action": "case.open",
        "object_type": OBJECT_TYPE,
        "object_id": 7,
        "account_id": 42,
        "from_state": "",
        "to_state": "open",
        "reason": "Fehlbetrag über Limit — 1/2",
        "payload": payload,
        "previous_hash": ZEROS,
    }
    assert event.hash == _reference_hash(document)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.payload == payload
    assert stored.created_at == datetime(2026, 11, 5, 14, 3, 7, tzinfo=UTC)
    assert stored.hash == event.hash
    assert _reference_hash(_document(stored)) == stored.hash


def test_events_chain_each_to_the_one_before(chain: Callable[[int], list[AuditEvent]]) -> None:
    # when three events are recorded in three transactions
    chain(3)

    # then
    events = list(AuditEvent.objects.order_by("sequence"))
    assert [e.sequence for e in events] == [1, 2, 3]
    assert [e.previous_hash for e in events] == [ZEROS, events[0].hash, events[1].hash]
    assert len({e.hash for e in events}) == 3
    for event in events:
        assert event.hash == _reference_hash(_document(event))
    assert [e.object_id for e in events] == [1, 2, 3]
    assert all(e.system_actor == "sweep" and e.actor_id is None for e in events)


def test_a_rolled_back_change_takes_its_event_with_it(chain: Callable[[int], list[AuditEvent]]) -> None:
    # given
    chain(1)

    # when the transaction that recorded an event fails afterwards
    def change_that_fails() -> None:
        with transaction.atomic():
            audit_record(make_entry(2))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError, match="the change failed"):
        change_that_fails()

    # then the event is gone and the next one takes its sequence: no gap
    with transaction.atomic():
        event = audit_record(make_entry(3))
    assert list(AuditEvent.objects.values_list("sequence", "object_id")) == [(1, 1), (2, 3)]
    assert event.previous_hash == AuditEvent.objects.get(sequence=1).hash
    assert audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_recording_outside_an_atomic_block_is_refused() -> None:
    # given no transaction (autocommit)
    assert not connection.in_atomic_block

    # when / then
    with pytest.raises(AuditTransactionError, match=r"inside transaction\.atomic\(\)"):
        audit_record(make_entry())
    with pytest.raises(AuditTransactionError):
        audit_record_many([make_entry(1), make_entry(2)])
    assert AuditEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("with_officer", "system_actor", "message"),
    [
        (True, "sweep", "not both"),
        (False, "", "needs an actor"),
        (False, "   ", "needs an actor"),
    ],
)
def test_exactly_one_of_actor_and_system_actor(
    officer: AbstractBaseUser, with_officer: bool, system_actor: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message), transaction.atomic():
        audit_record(make_entry(actor=officer if with_officer else None, system_actor=system_actor))
    assert AuditEvent.objects.count() == 0


def test_an_unsaved_user_is_refused() -> None:
    user = get_user_model()(username="ghost")
    with pytest.raises(ValidationError, match="saved user"), transaction.atomic():
        audit_record(make_entry(actor=user, system_actor=""))
    assert AuditEvent.objects.count() == 0


def test_a_user_actor_is_recorded(officer: AbstractBaseUser) -> None:
    with transaction.atomic():
        event = audit_record(make_entry(actor=officer, system_actor=""))
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor_id == officer.pk
    assert stored.system_actor == ""
    assert audit_verify().ok


def test_the_database_refuses_both_or_neither_actor(officer: AbstractBaseUser) -> None:
    # the check constraint holds the rule even for rows not written by core.audit
    for actor_id, system_actor in [(officer.pk, "sweep"), (None, "")]:
        row = AuditEvent(
            sequence=1,
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            actor_id=actor_id,
            system_actor=system_actor,
            action="case.open",
            object_type=OBJECT_TYPE,
            object_id=1,
            previous_hash=ZEROS,
            hash="1" * 64,
        )
        with pytest.raises(IntegrityError), transaction.atomic():
            row.save()
    assert AuditEvent.objects.count() == 0


def test_payload_with_decimals_and_datetimes_round_trips_and_verifies() -> None:
    # given
    payload = {
        "amounts": [Decimal("1.50"), Decimal("0.00000001"), Decimal("1E+3"), Decimal("-0"), Decimal(7)],
        "at": datetime(2026, 3, 29, 1, 30, 0, 5, tzinfo=timezone(timedelta(hours=-5))),
        "on": date(2026, 2, 28),
        "big": 10**30,
        "model_version": "risk-2026.11",
        "nested": {"z": {"b": 1, "a": [{}]}, "a": None},
        "unicode": '日本 \u2028 "quoted" \\',
    }

    # when
    with transaction.atomic():
        event = audit_record(make_entry(payload=payload))

    # then what the database gives back is what was hashed
    expected = {
        "amounts": ["1.50", "0.00000001", "1000", "-0", "7"],
        "at": "2026-03-29T06:30:00.000005+00:00",
        "on": "2026-02-28",
        "big": 10**30,
        "model_version": "risk-2026.11",
        "nested": {"z": {"b": 1, "a": [{}]}, "a": None},
        "unicode": '日本 \u2028 "quoted" \\',
    }
    assert event.payload == expected
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.payload == expected
    assert audit_hash(AuditEvent.objects.values().get(pk=event.pk)) == event.hash
    assert audit_verify().ok


def test_text_choices_are_stored_as_plain_strings() -> None:
    class State(TextChoices):
        OPEN = "open", "Open"

    with transaction.atomic():
        event = audit_record(make_entry(to_state=State.OPEN, payload={"state": State.OPEN}))
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.to_state, stored.payload) == ("open", {"state": "open"})
    assert audit_verify().ok


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"rate": 0.05}, "floats are not exact"),
        ({"x": Decimal("NaN")}, "only finite"),
        ({"x": Decimal("Infinity")}, "only finite"),
        ({"at": datetime(2026, 1, 1, 12, 0)}, "naive datetime"),
        ({1: "one"}, "keys must be strings"),
        ({"s": {1, 2}}, "a set cannot be recorded"),
        ({"s": "a\x00b"}, "NUL"),
        ({"s": "\ud800"}, "not valid Unicode"),
        ({"deep": [{"rate": 1.5}]}, r"payload\.deep\[0\]\.rate: floats"),
    ],
)
def test_payload_values_that_would_not_round_trip_are_refused(payload: dict[Any, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message), transaction.atomic():
        audit_record(make_entry(payload=payload))
    assert AuditEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"object_type": "accounts.MarginAccount"}, "lower case"),
        ({"object_type": "marginaccount"}, "app_label.model"),
        ({"object_type": "nosuch.thing"}, "names no installed model"),
        ({"action": ""}, "needs an action"),
        ({"action": "x" * 101}, "longer than 100"),
        ({"to_state": "s" * 65}, "longer than 64"),
        ({"reason": "a\x00"}, "NUL"),
        ({"object_id": "7"}, "object_id must be an integer"),
        ({"object_id": True}, "object_id must be an integer"),
        ({"account_id": 1.0}, "account_id must be an integer"),
        ({"payload": [1, 2]}, "payload must be a mapping"),
    ],
)
def test_malformed_entries_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message), transaction.atomic():
        audit_record(make_entry(**overrides))
    assert AuditEvent.objects.count() == 0


def test_record_many_writes_n_events_in_a_constant_number_of_queries(
    chain: Callable[[int], list[AuditEvent]], django_assert_num_queries: Any
) -> None:
    # given one event already; PostgreSQL also takes the advisory lock
    chain(1)
    queries = 3 if connection.vendor == "postgresql" else 2  # (lock,) last event, one INSERT

    # when one, then forty events are recorded
    with transaction.atomic(), django_assert_num_queries(queries):
        one = audit_record_many([make_entry(2)])
    with transaction.atomic(), django_assert_num_queries(queries):
        forty = audit_record_many([make_entry(i) for i in range(3, 43)])

    # then they follow on, in the order given, and the chain verifies
    assert [e.sequence for e in one + forty] == list(range(2, 43))
    stored = list(AuditEvent.objects.order_by("sequence"))
    assert [e.object_id for e in stored] == list(range(1, 43))
    assert all(b.previous_hash == a.hash for a, b in itertools.pairwise(stored))
    assert [e.pk for e in forty] == [e.pk for e in stored[2:]]
    assert audit_verify() == audit.AuditVerification(ok=True, checked=42, first_broken_sequence=None, problem="")


def test_record_many_validates_every_entry_before_writing(django_assert_num_queries: Any) -> None:
    with pytest.raises(ValidationError), transaction.atomic(), django_assert_num_queries(0):
        audit_record_many([make_entry(1), make_entry(2, payload={"rate": 0.1}), make_entry(3)])
    assert AuditEvent.objects.count() == 0


def test_record_many_of_nothing_writes_nothing(django_assert_num_queries: Any) -> None:
    with transaction.atomic(), django_assert_num_queries(0):
        assert audit_record_many([]) == []


def test_a_fork_is_refused_by_the_database(chain: Callable[[int], list[AuditEvent]]) -> None:
    # given a chain of two
    first, second = chain(2)

    # when a second event after #1 is written directly (as an unserialised appender would)
    for sequence in (2, 3):  # whether it reuses #2's sequence or not
        fork = AuditEvent(
            sequence=sequence,
            created_at=second.created_at,
            system_actor="rogue",
            action="case.open",
            object_type=OBJECT_TYPE,
            object_id=9,
            previous_hash=first.hash,
            hash="f" * 64,
        )
        with pytest.raises(IntegrityError), transaction.atomic():
            AuditEvent.objects.bulk_create([fork])

    # then
    assert AuditEvent.objects.count() == 2


_json_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | _json_text | st.sampled_from(['"payload":', "\\u0000"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_json_text, inner, max_size=4),
    max_leaves=20,
)


@given(payload=st.dictionaries(_json_text, _json_values, max_size=6), reason=_json_text)
def test_the_recording_hash_equals_the_documented_one_for_any_payload(payload: dict[str, Any], reason: str) -> None:
    # given an event's fields with any JSON-native payload (quotes, escapes, non-ASCII, the text '"payload":')
    values = {
        "sequence": 7,
        "created_at": datetime(2026, 11, 24, 15, 0, 0, 120034, tzinfo=UTC),
        "actor_id": None,
        "system_actor": "sweep",
        "action": "case.open",
        "object_type": OBJECT_TYPE,
        "object_id": 3,
        "account_id": 11,
        "from_state": "",
        "to_state": "warning",
        "reason": reason,
        "payload": payload,
        "previous_hash": ZEROS,
    }

    # when it is hashed as audit_record_many does (the payload serialised once, spliced into the document)
    recorded = audit._hash_with_payload(values, audit._json(payload))

    # then it is the documented hash, serialised whole and independently
    assert (
        recorded == audit_hash(values) == _reference_hash({**values, "created_at": "2026-11-24T15:00:00.120034+00:00"})
    )
