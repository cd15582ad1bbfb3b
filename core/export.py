"""The audit trail as CSV, streamed: one query (a server-side cursor read in chunks), one row per event.

Every field the hash covers is written exactly as it was hashed (core/audit.py: `created_at` in UTC with
microseconds, `actor_id`, the payload as its canonical JSON), so a reader can recompute each event's hash and
the chain from the file alone; the actor's username comes beside `actor_id` for people. Cells are written as
stored, not "defused" for spreadsheets (a leading quote would change the evidence): import the file as data.
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
        yield writer.writerow(["" if cell is None else cell for cell in cells])
