"""Operations on the record: every run of a management command that changes state, and every call of the
operations API, leaves an `Operation` row and its audit event ("operation.<name>", object "core.operation").

The event names who ran it: the user (`--actor USERNAME` of a command, the request's user of an API call), or,
for a command run without `--actor`, the system actor "command:<operating-system user>@<host>". It carries the
arguments as given (paths as typed, with the SHA-256 of each input file as it was read) and the outcome (counts).

Where the work is one transaction, the record is written in it, last (core.audit: the append lock is taken
after the work's own row locks), so the change and its event commit or roll back together, and a run that fails
writes nothing::

    with operation(OperationRun.start(name="import_book", channel=OperationChannel.COMMAND, ...)) as run:
        result = book_import(path=path)
        run.outcome = {...}

Work that cannot run inside one transaction (a sweep on several threads, a re-encryption in batches, plans
booked one by one) records its run right after, in a transaction of its own (`operation_record` inside
`transaction.atomic()`); the caller says why where it does so.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from core.access import is_staff_member
from core.audit import audit_record
from core.audit_events import OPERATION
from core.errors import ValidationError
from core.models import Operation, OperationChannel

__all__ = [
    "COMMAND_ACTOR_PREFIX",
    "OperationActorError",
    "OperationRun",
    "command_system_actor",
    "file_sha256",
    "json_native",
    "operation",
    "operation_actor",
    "operation_record",
]

COMMAND_ACTOR_PREFIX = "command:"
_SYSTEM_ACTOR_MAX = Operation._meta.get_field("system_actor").max_length or 64


class OperationActorError(ValidationError):
    """`--actor` names nobody who may act: no such user, inactive, or not a member of staff."""

    code = "operation_actor_invalid"


def operation_actor(username: str) -> User:
    """The user an operation is run as: an active member of staff (a role other than client)."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise OperationActorError(f"--actor {username!r}: no such user", field="actor")
    if not user.is_active:
        raise OperationActorError(f"--actor {username!r} is inactive", field="actor")
    if not is_staff_member(user):
        raise OperationActorError(f"--actor {username!r} is not a member of staff", field="actor")
    return user


def command_system_actor() -> str:
    """ "command:<os user>@<host>", cut to the audit column's 64 characters (the host loses its tail first). Never
    fails: a process without a user name (a container's uid without a passwd entry) is named by its uid."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError, ImportError):  # no LOGNAME/USER/... and no passwd entry for the uid
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    try:
        host = socket.gethostname()
    except OSError:
        host = ""
    user = (user or "unknown")[: _SYSTEM_ACTOR_MAX - len(COMMAND_ACTOR_PREFIX) - 1]
    text = f"{COMMAND_ACTOR_PREFIX}{user}@{host or 'unknown'}"
    return text[:_SYSTEM_ACTOR_MAX]


def file_sha256(path: str | PurePath) -> str | None:
    """Hex SHA-256 of a file's bytes, or None when it cannot be read (the work then refuses it, recording nothing)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def json_native(value: object) -> Any:
    """What an argument or an outcome is recorded as: JSON-native, exact, the same in the Operation row and in the
    audit payload. Decimals and floats become their decimal text (a float is not exact, and core.audit refuses
    it), paths their text as given, datetimes their ISO form; anything else its str()."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): json_native(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [json_native(item) for item in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    return str(value)


@dataclass
class OperationRun:
    """One run being done: who, what with, since when; `outcome` is filled in by the work."""

    name: str
    channel: str
    actor: User | None
    system_actor: str
    arguments: dict[str, Any]
    started_at: dt.datetime
    outcome: dict[str, Any] = field(default_factory=dict)
    # Set by work that found nothing to do and wrote nothing (a prompt declined): then nothing is recorded.
    nothing_done: bool = False

    @classmethod
    def start(
        cls,
        *,
        name: str,
        channel: str,
        actor: User | None = None,
        system_actor: str = "",
        arguments: Mapping[str, Any] | None = None,
        started_at: dt.datetime | None = None,
    ) -> OperationRun:
        if (actor is None) == (not system_actor):
            raise ValidationError("an operation is run by a user or by a named system actor, one of them")
        if channel not in OperationChannel.values:
            raise ValidationError(f"unknown operation channel {channel!r}", field="channel")
        return cls(
            name=name,
            channel=channel,
            actor=actor,
            system_actor=system_actor,
            arguments=json_native(dict(arguments or {})),
            started_at=started_at or timezone.now(),
        )


def operation_record(run: OperationRun) -> Operation:
    """Store the run and its audit event. Inside the caller's `transaction.atomic()` (core.audit refuses
    otherwise), after the work it records."""
    outcome = json_native(run.outcome)
    op = Operation.objects.create(
        name=run.name,
        channel=run.channel,
        actor=run.actor,
        system_actor=run.system_actor,
        started_at=run.started_at,
        arguments=run.arguments,
        outcome=outcome,
    )
    audit_record(
        OPERATION.entry(
            op,
            run.name,
            actor=run.actor,
            system_actor=run.system_actor,
            payload={
                "name": run.name,
                "channel": run.channel,
                "started_at": run.started_at,
                "arguments": run.arguments,
                "outcome": outcome,
            },
        )
    )
    return op


@contextmanager
def operation(run: OperationRun) -> Iterator[OperationRun]:
    """Do the work of `run` and record it in one transaction: an error inside rolls back both. Work that wrote
    nothing says so with `run.nothing_done = True`, and is not recorded."""
    with transaction.atomic():
        yield run
        if not run.nothing_done:
            operation_record(run)
