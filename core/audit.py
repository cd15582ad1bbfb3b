"""The tamper-evident audit trail: one `AuditEvent` per transition or decision, hash-chained.

Writing
-------
A service records the event inside its own `transaction.atomic()`, after the change it records, so the
event commits or rolls back with it::

    with transaction.atomic():
        ...change and save the case...
        audit_record(AuditEntry(action="case.open", object_type="restructuring.case", object_id=case.pk,
                                account_id=case.account_id, actor=user, to_state=case.state))

Both record functions refuse to run outside an atomic block (`AuditTransactionError`), and refuse an entry
that names both or neither of `actor` (a user) and `system_actor` (a named system task such as "sweep").

Appends are serialised. On PostgreSQL the writer takes the transaction-level advisory lock
`pg_advisory_xact_lock(8606147309532899700)` (the bytes "wo-audit" read as a big-endian int64) before it
reads the last event; the lock is held until the caller's transaction ends, so concurrent writers append one
after another and never fork. Because it is held to commit, record the event last, after taking every row
lock the service needs: that keeps the serialised stretch short and cannot deadlock with a writer that holds
the lock and waits for one of your rows. The caller's transaction must be READ COMMITTED (Django's default):
under REPEATABLE READ a snapshot taken before the lock would miss the previous holder's event, and the
insert would fail on the unique sequence. On SQLite the database serialises writers itself. Whatever
happens, the unique `sequence`, `previous_hash` and `hash` columns refuse a second event after the same
predecessor.

`created_at` is the writing process's clock when it took the lock (events written by one
`audit_record_many` call share it); `sequence` is the order of record.

Canonical serialisation and hash (for an external verifier)
-----------------------------------------------------------
`hash` = lowercase hex SHA-256 of the UTF-8 bytes of::

    json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

where `document` is a JSON object with exactly these thirteen keys (every column but `id` and `hash`):

    sequence       integer, 1, 2, 3, ... without gaps
    created_at     string, ISO 8601 in UTC with microseconds: "2026-11-05T14:03:07.120034+00:00"
    actor_id       integer (the user's primary key) or null
    system_actor   string ("" when actor_id is set)
    action         string, a dotted verb such as "case.margin_call"
    object_type    string, "app_label.model" such as "restructuring.case" (a model that moved to another app
                   keeps the name its events had: its `audit_object_type`, e.g. "core.apitoken")
    object_id      integer
    account_id     integer or null
    from_state     string ("" when none)
    to_state       string ("" when none)
    reason         string
    payload        object, exactly as stored (see below)
    previous_hash  string, the previous event's `hash`; 64 "0" characters for event 1

The payload is stored already canonical, so the JSON read back from the database is the object that was
hashed: objects with string keys, arrays, strings, integers, booleans and null only. When recording,
Decimal becomes the string `format(d, "f")` ("1.50" stays "1.50"; NaN and infinities are refused), an
aware datetime the UTC ISO string as for created_at (naive ones are refused), a date "YYYY-MM-DD", a tuple
an array. Floats are refused (not exact, and a JSON number can come back as another type), as are strings
containing NUL (PostgreSQL cannot store them). `sort_keys` orders nested objects too; Python sorts keys by
code point.

Verifying
---------
`audit_verify()` (and `manage.py verify_audit`) streams the table in sequence order, in batches, and
reports the first broken link: a gap in the sequence, an event whose hash does not match its contents, or an
event whose previous_hash is not the hash of the event before it.

What the chain proves and what it does not
------------------------------------------
Editing any stored field of event k (or deleting it) is found at k, or at k + 1 if the editor also
recomputed k's hash. Rewriting the whole tail from k onwards with fresh hashes, or deleting the newest
events, is not detectable from the table alone: anchor the chain by publishing the latest hash elsewhere
from time to time. On PostgreSQL a trigger (django-pgtrigger, `core.AuditEvent:append_only`) refuses UPDATE
and DELETE on the table, but the table's owner can disable it: real tamper resistance also needs the
application to connect as a role that has no UPDATE, DELETE or TRUNCATE privilege on `core_auditevent`
(operations' job, as are backups). SQLite installs no trigger.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, models, transaction
from django.utils import timezone

from core.errors import ValidationError
from core.models import GENESIS_HASH, AuditEvent

__all__ = [
    "AuditEntry",
    "AuditEvent",
    "AuditTransactionError",
    "AuditVerification",
    "audit_hash",
    "audit_record",
    "audit_record_many",
    "audit_verify",
]

# pg_advisory_xact_lock key that serialises appends: b"wo-audit" as a big-endian signed int64.
APPEND_LOCK_KEY = int.from_bytes(b"wo-audit", "big")

# The fields the hash covers, in the order they are documented above (the JSON is sorted by key anyway).
_HASHED_FIELDS = (
    "sequence",
    "created_at",
    "actor_id",
    "system_actor",
    "action",
    "object_type",
    "object_id",
    "account_id",
    "from_state",
    "to_state",
    "reason",
    "payload",
    "previous_hash",
)


@dataclass(frozen=True)
class AuditEntry:
    action: str  # dotted verb, e.g. "case.open", "case.margin_call", "sweep.run"
    object_type: str  # "app_label.model", e.g. "restructuring.case"
    object_id: int
    account_id: int | None = None  # the margin account the event concerns (for compliance search), if any
    actor: AbstractBaseUser | None = None  # a user, or None for a system actor
    system_actor: str = ""  # the named system task when actor is None, e.g. "sweep", "deadlines"
    from_state: str = ""
    to_state: str = ""
    reason: str = ""
    # Decimal, datetime, date, int, str, bool, None, lists, dicts
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditVerification:
    """The verifier's answer. `checked` counts the events found sound before the first broken one (all of
    them when `ok`); `first_broken_sequence` is the sequence of the event where the chain breaks and
    `problem` says how ("" when ok)."""

    ok: bool
    checked: int
    first_broken_sequence: int | None
    problem: str


class AuditTransactionError(RuntimeError):
    """An audit event was recorded outside `transaction.atomic()`: it could commit without the change it
    records, or survive that change's rollback. A programming error, not a domain one."""


def audit_record(entry: AuditEntry) -> AuditEvent:
    """Append one event. Must be called inside the caller's `transaction.atomic()`."""
    return audit_record_many([entry])[0]


def audit_record_many(entries: Sequence[AuditEntry]) -> list[AuditEvent]:
    """Append events in the given order under one lock, with one bulk insert. Must be called inside the
    caller's `transaction.atomic()`. Every entry is validated before anything is written."""
    if not transaction.get_connection().in_atomic_block:
        raise AuditTransactionError(
            "audit events must be recorded inside transaction.atomic(), with the change they record"
        )
    rows = [_entry_fields(entry) for entry in entries]
    if not rows:
        return []
    # Each payload is serialised once, for its hash and (on PostgreSQL) for the COPY of its row.
    payloads_json = [_json(row["payload"]) for row in rows]
    _serialise_appends()
    last = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
    sequence, previous_hash = last if last is not None else (0, GENESIS_HASH)
    created_at = timezone.now()
    events = []
    for row, payload_json in zip(rows, payloads_json, strict=True):
        sequence += 1
        values = {**row, "sequence": sequence, "created_at": created_at, "previous_hash": previous_hash}
        previous_hash = _hash_with_payload(values, payload_json)
        values["hash"] = previous_hash
        # positionally, in the fields' order, as Django builds a model read from the database: a model's
        # __init__ given keywords costs more than hashing the event (5,000 events: 0.05 s of 0.3)
        events.append(AuditEvent(*(values.get(name) for name in _ATTNAMES)))
    if connection.vendor != "postgresql":
        return AuditEvent.objects.bulk_create(events)
    _copy_events(events, payloads_json)
    return events


_COPIED_FIELDS = (*_HASHED_FIELDS, "hash")  # a COPY row: what the hash covers, and the hash
_ATTNAMES = tuple(f.attname for f in AuditEvent._meta.concrete_fields)  # "id" first: None until written


def _copy_events(events: list[AuditEvent], payloads_json: list[str]) -> None:
    """COPY the events in (a sweep appends thousands at once: Django's bulk_create spends most of its time
    preparing values in Python), then read their ids back in one query. A payload goes as the JSON text it
    was hashed from, which the jsonb column parses."""
    columns = ", ".join(f'"{name}"' for name in _COPIED_FIELDS)  # the column names are the attribute names
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f'COPY "{AuditEvent._meta.db_table}" ({columns}) FROM STDIN') as copy,
    ):
        for event, payload_json in zip(events, payloads_json, strict=True):
            copy.write_row([payload_json if n == "payload" else getattr(event, n) for n in _COPIED_FIELDS])
    ids = dict(
        AuditEvent.objects.filter(sequence__gte=events[0].sequence, sequence__lte=events[-1].sequence).values_list(
            "sequence", "id"
        )
    )
    for event in events:
        event.pk = ids[event.sequence]
        event._state.adding = False
        event._state.db = "default"


def audit_verify(*, batch_size: int = 10_000) -> AuditVerification:
    """Recompute the chain in sequence order, `batch_size` events per query, and name the first broken link."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    checked = 0
    expected_sequence = 1
    previous_hash = GENESIS_HASH
    while True:
        batch = list(
            AuditEvent.objects.filter(sequence__gte=expected_sequence)
            .order_by("sequence")
            .values(*_HASHED_FIELDS, "hash")[:batch_size]
        )
        for event in batch:
            sequence = event["sequence"]
            problem = ""
            if sequence != expected_sequence:
                missing = (
                    f"#{expected_sequence}"
                    if sequence == expected_sequence + 1
                    else f"#{expected_sequence} to #{sequence - 1}"
                )
                problem = f"gap before event #{sequence}: {missing} missing"
            elif audit_hash(event) != event["hash"]:
                problem = f"event #{sequence}: hash does not match its contents"
            elif event["previous_hash"] != previous_hash:
                problem = (
                    f"event #{sequence}: previous_hash does not link to event #{sequence - 1}"
                    if sequence > 1
                    else f"event #{sequence}: previous_hash is not the chain's start ({GENESIS_HASH[:8]}...)"
                )
            if problem:
                return AuditVerification(ok=False, checked=checked, first_broken_sequence=sequence, problem=problem)
            checked += 1
            expected_sequence = sequence + 1
            previous_hash = event["hash"]
        if len(batch) < batch_size:
            return AuditVerification(ok=True, checked=checked, first_broken_sequence=None, problem="")


def audit_hash(values: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical serialisation of an event's fields (see the module docstring).
    `values` holds the hashed fields by name (`actor_id`, not `actor`); other keys are ignored."""
    document = {name: values[name] for name in _HASHED_FIELDS}
    document["created_at"] = _iso_utc(values["created_at"])
    return hashlib.sha256(_json(document).encode("utf-8")).hexdigest()


# One encoder for every event: json.dumps with these options builds a new JSONEncoder per call.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _json(value: object) -> str:
    """The canonical JSON text (module docstring)."""
    return _ENCODER.encode(value)


# Stands for the payload while the rest of the document is serialised. It holds a NUL, which no recorded
# string can (they are refused), so its JSON form ("\u0000...") cannot occur anywhere else in the document.
_PAYLOAD_MARK = "\x00payload\x00"
_PAYLOAD_MARK_JSON = '"payload":' + _json(_PAYLOAD_MARK)


def _hash_with_payload(values: Mapping[str, Any], payload_json: str) -> str:
    """audit_hash(values) for a payload already serialised as `payload_json`: the canonical JSON of a nested
    object is the same whether it is serialised alone or inside its parent, so the text is spliced in."""
    document = {name: values[name] for name in _HASHED_FIELDS}
    document["created_at"] = _iso_utc(values["created_at"])
    document["payload"] = _PAYLOAD_MARK
    text = _json(document).replace(_PAYLOAD_MARK_JSON, '"payload":' + payload_json, 1)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _serialise_appends() -> None:
    """Held until the transaction ends; SQLite needs nothing (one writer at a time)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [APPEND_LOCK_KEY])


def _iso_utc(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValidationError("a naive datetime cannot be recorded: give it a time zone")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


_MAX_LENGTHS = {
    field.name: field.max_length for field in AuditEvent._meta.get_fields() if isinstance(field, models.CharField)
}


def _entry_fields(entry: AuditEntry) -> dict[str, Any]:
    """The model fields of an entry (all but sequence, created_at and the hashes), validated and plain."""
    if not isinstance(entry, AuditEntry):
        raise ValidationError(f"expected an AuditEntry, got {type(entry).__name__}")
    actor_id: int | None = None
    if entry.actor is not None:
        if entry.system_actor:
            raise ValidationError(
                "an audit event has one actor: give actor (a user) or system_actor (a system task), not both",
                field="system_actor",
            )
        if entry.actor.pk is None:
            raise ValidationError("the actor must be a saved user", field="actor")
        actor_id = entry.actor.pk
    elif not isinstance(entry.system_actor, str) or not entry.system_actor.strip():
        raise ValidationError(
            "an audit event needs an actor: give actor (a user) or system_actor (the system task's name)",
            field="actor",
        )
    fields: dict[str, Any] = {"actor_id": actor_id}
    for name in ("system_actor", "action", "object_type", "from_state", "to_state", "reason"):
        fields[name] = _text(getattr(entry, name), name, _MAX_LENGTHS.get(name))
    if not fields["action"]:
        raise ValidationError("an audit event needs an action, e.g. 'case.open'", field="action")
    _check_object_type(fields["object_type"])
    fields["object_id"] = _integer(entry.object_id, "object_id")
    fields["account_id"] = None if entry.account_id is None else _integer(entry.account_id, "account_id")
    if not isinstance(entry.payload, Mapping):
        raise ValidationError("payload must be a mapping with string keys", field="payload")
    fields["payload"] = _canonical(entry.payload, "payload")
    return fields


# The object types found valid (an installed model's, or a name a moved model keeps): checked once each.
_KNOWN_OBJECT_TYPES: set[str] = set()


def _check_object_type(object_type: str) -> None:
    if object_type in _KNOWN_OBJECT_TYPES:
        return
    app_label, dot, model_name = object_type.partition(".")
    problem = ""
    if not dot or object_type != object_type.lower():
        problem = "must be 'app_label.model' in lower case, e.g. 'restructuring.case'"
    else:
        try:
            apps.get_model(app_label, model_name)
        except LookupError:
            if object_type not in _kept_object_types():
                problem = "names no installed model"
    if problem:
        raise ValidationError(f"object_type {object_type!r} {problem}", field="object_type")
    _KNOWN_OBJECT_TYPES.add(object_type)


def _kept_object_types() -> set[str]:
    """The names that models moved between apps keep for their events (a model's `audit_object_type`), so that
    one object's events, stored and new, share one name: accounts.ApiToken's are "core.apitoken"."""
    return {kept for model in apps.get_models() if (kept := getattr(model, "audit_object_type", None))}


def _text(value: object, where: str, max_length: int | None = None) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{where} must be a string, not {type(value).__name__}", field=where)
    text = str.__str__(value)  # a plain str, also from a TextChoices member
    if "\x00" in text:
        raise ValidationError(f"{where} contains a NUL character", field=where)
    if not text.isascii():  # ASCII encodes; only other text can hold a lone surrogate
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValidationError(f"{where} is not valid Unicode: {error.reason}", field=where) from error
    if max_length is not None and len(text) > max_length:
        raise ValidationError(f"{where} is longer than {max_length} characters", field=where)
    return text


def _integer(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{where} must be an integer, not {type(value).__name__}", field=where)
    return int(value)


def _canonical(value: object, where: str) -> Any:
    """The JSON-native form a payload is stored and hashed in (module docstring)."""
    kind = type(value)
    # the common exact types first (a payload of thousands of events is mostly these); subclasses go the long way
    if kind is str:
        return _text(value, where)
    if kind is dict:
        return _canonical_mapping(value, where)  # type: ignore[arg-type]
    if kind is Decimal:
        return _decimal(value, where)  # type: ignore[arg-type]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return _text(value, where)
    if isinstance(value, Decimal):
        return _decimal(value, where)
    if isinstance(value, dt.datetime):
        return _iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        raise ValidationError(f"{where}: floats are not exact, record a Decimal instead", field=where)
    if isinstance(value, Mapping):
        return _canonical_mapping(value, where)
    if isinstance(value, list | tuple):
        return [_canonical(item, f"{where}[{index}]") for index, item in enumerate(value)]
    raise ValidationError(f"{where}: a {type(value).__name__} cannot be recorded", field=where)


def _decimal(value: Decimal, where: str) -> str:
    if not value.is_finite():
        raise ValidationError(f"{where}: {value} cannot be recorded, only finite amounts", field=where)
    return format(value, "f")


def _canonical_mapping(value: Mapping[Any, Any], where: str) -> dict[str, Any]:
    canonical = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ValidationError(f"{where}: keys must be strings, not {type(key).__name__}", field=where)
        key_text = _text(key, f"{where} key")
        canonical[key_text] = _canonical(item, f"{where}.{key_text}")
    return canonical
