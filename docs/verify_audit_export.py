#!/usr/bin/env python3
"""Verify a Workout audit export (`audit-*.csv`, from **Export CSV** on the Audit trail page) with nothing but
Python's standard library: recompute every event's hash from the file alone, and check that each event names
the hash of the one before it wherever the file holds both (a filtered export skips events).

    python3 docs/verify_audit_export.py audit-20261207T120000Z.csv

Prints one line per problem and exits 1, or prints how many events were checked and exits 0. The format is
described in docs/audit-export.md; the hash is defined in core/audit.py ("Canonical serialisation and hash").
This file imports nothing from Workout, so that it checks the application rather than agreeing with it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections.abc import Iterable
from typing import Any

# Text columns are JSON strings in the file (so that no cell can start a spreadsheet formula): decode them.
JSON_TEXT = ("system_actor", "action", "object_type", "from_state", "to_state", "reason")


def _optional_int(cell: str) -> int | None:
    return int(cell) if cell else None


def hashed_document(row: dict[str, str]) -> dict[str, Any]:
    """The thirteen values an event's hash covers, as core/audit.py defines them, read from one CSV row."""
    document: dict[str, Any] = {name: json.loads(row[name]) for name in JSON_TEXT}
    for name in JSON_TEXT:
        if not isinstance(document[name], str):
            raise ValueError(f"{name} is not a JSON string")
    document.update(
        sequence=int(row["sequence"]),
        created_at=row["created_at"],  # written exactly as hashed: ISO 8601, UTC, microseconds
        actor_id=_optional_int(row["actor_id"]),
        object_id=int(row["object_id"]),
        account_id=_optional_int(row["account_id"]),
        payload=json.loads(row["payload"]),
        previous_hash=row["previous_hash"],
    )
    return document


def event_hash(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def verify(lines: Iterable[str]) -> tuple[int, list[str]]:
    """(events checked, problems found) for the CSV text `lines`."""
    problems: list[str] = []
    checked = 0
    previous: tuple[int, str] | None = None  # (sequence, hash) of the row before
    for row in csv.DictReader(lines):
        checked += 1
        sequence = row.get("sequence", "?")
        try:
            document = hashed_document(row)
        except (KeyError, ValueError) as error:  # json.JSONDecodeError is a ValueError
            problems.append(f"event {sequence}: unreadable ({error})")
            previous = None
            continue
        if event_hash(document) != row["hash"]:
            problems.append(f"event {sequence}: its hash does not match its contents")
        if previous is not None and previous[0] + 1 == document["sequence"] and previous[1] != row["previous_hash"]:
            problems.append(f"event {sequence}: previous_hash is not the hash of event {previous[0]}")
        previous = (document["sequence"], row["hash"])
    return checked, problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} AUDIT_EXPORT.csv", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8", newline="") as file:
        checked, problems = verify(file)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"{checked} events checked: every hash matches its event")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
