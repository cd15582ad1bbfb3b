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
