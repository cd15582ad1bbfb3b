"""The audit trail as CSV, streamed: one query (a server-side cursor read in chunks), one row per event.

Every field the hash covers is in the file, so a reader can recompute each event's hash and the chain from the
file alone (docs/audit-export.md, and its verifier docs/verify_audit_export.py, which uses Python's standard
library only). The actor's username comes beside `actor_id` for people.

No cell can run in a spreadsheet. Text that people or clients typed (a decline reason `=cmd|' /C calc'!A0`, a
reason starting `-2+3+`, a username starting with `@`) would be read as a formula if written as it is, so every
text column is written as a JSON string, the way the payload column is written as a JSON object: the cell starts
with `"` (or is `null`), and JSON escapes tabs, carriage returns and line breaks. Parsing the cell as JSON gives
back exactly the text that was hashed; nothing is dropped or "defused" with a leading quote, which would change
the evidence. The other cells are integers, an ISO 8601 timestamp and hexadecimal hashes.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet

from core.models import AuditEvent

COLUMNS = (
    "sequence",
    "created_at",
    "actor_id",
    "actor",
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
    "hash",
)
# The query's columns, in COLUMNS' order (the actor's username through the join).
_FIELDS = tuple("actor__username" if c == "actor" else c for c in COLUMNS)
# Written as JSON strings (`null` for no actor), so that no cell starts with a character a spreadsheet
# evaluates; `payload` is a JSON object already.
TEXT_COLUMNS = ("actor", "system_actor", "action", "object_type", "from_state", "to_state", "reason")
_TEXT_INDEXES = tuple(COLUMNS.index(c) for c in TEXT_COLUMNS)
_CHUNK = 2_000


class _Echo:
    """A file-like object whose write returns what it was given: csv.writer formats, the response streams."""

    def write(self, value: str) -> str:
        return value


def audit_csv_rows(events: QuerySet[AuditEvent]) -> Iterator[str]:
    """The header, then one formatted CSV line per event of `events`, in sequence order."""
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    rows: Iterable[tuple[Any, ...]] = events.order_by("sequence").values_list(*_FIELDS).iterator(chunk_size=_CHUNK)
    created_at, payload = COLUMNS.index("created_at"), COLUMNS.index("payload")
    for row in rows:
        cells = list(row)
        cells[created_at] = cells[created_at].astimezone(dt.UTC).isoformat(timespec="microseconds")
        cells[payload] = json.dumps(cells[payload], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        for index in _TEXT_INDEXES:
            cells[index] = json.dumps(cells[index], ensure_ascii=False)
        yield writer.writerow(["" if cell is None else cell for cell in cells])


# ------------------------------------------------------------------------------------------- the messages sent

MESSAGE_COLUMNS = (
    "id",
    "created_at",
    "case_id",
    "account",
    "kind",
    "channel",
    "recipient",
    "locale",
    "template_id",
    "template_version",
    "status",
    "attempts",
    "deferred_until",
    "sent_at",
    "bounced_at",
    "last_error",
    "subject",
    "body",
    "body_sha256",
    "letter_sha256",
    "provider_id",
    "audit_action",
    "audit_sequence",
    "audit_hash",
)
# Text a person or a template wrote, and the addresses: JSON strings, as in the audit export (no cell a spreadsheet
# would evaluate; the exact text back by parsing the cell).
MESSAGE_TEXT_COLUMNS = frozenset(
    {"account", "kind", "channel", "recipient", "locale", "status", "last_error", "subject", "body", "provider_id"}
)


def messages_csv_rows(messages: Iterable[Any]) -> Iterator[str]:
    """The header, then one CSV line per message (the communication log, restructuring.selectors.messages
    `messages_export_rows`): what it said, from which template version, its state and attempts, and the audit event
    of its last state with its place in the chain (`audit_sequence`, `audit_hash`). `body_sha256` is the SHA-256 of
    the subject, a NUL and the body: the `sha256` that event's payload recorded, so the file shows that each message
    is the one the trail holds."""
    import hashlib

    writer = csv.writer(_Echo())
    yield writer.writerow(MESSAGE_COLUMNS)
    for message in messages:
        body_sha256 = (
            hashlib.sha256(f"{message.subject}\x00{message.body}".encode()).hexdigest() if message.template_id else ""
        )
        values = {
            "id": message.pk,
            "created_at": _iso(message.created_at),
            "case_id": message.case_id,
            "account": message.case.account.code,
            "kind": message.kind,
            "channel": message.channel,
            "recipient": message.recipient,
            "locale": message.locale,
            "template_id": message.template_id,
            "template_version": message.template.version if message.template_id else None,
            "status": message.status,
            "attempts": message.attempts,
            "deferred_until": _iso(message.deferred_until),
            "sent_at": _iso(message.sent_at),
            "bounced_at": _iso(message.bounced_at),
            "last_error": message.last_error,
            "subject": message.subject,
            "body": message.body,
            "body_sha256": body_sha256,
            "letter_sha256": message.letter_sha256,
            "provider_id": message.provider_id,
            "audit_action": getattr(message, "audit_action", None) or "",
            "audit_sequence": getattr(message, "audit_sequence", None),
            "audit_hash": getattr(message, "audit_hash", None) or "",
        }
        cells = [
            json.dumps(values[c], ensure_ascii=False) if c in MESSAGE_TEXT_COLUMNS else values[c]
            for c in MESSAGE_COLUMNS
        ]
        yield writer.writerow(["" if cell is None else cell for cell in cells])


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="microseconds")
