"""Queueing Celery tasks after a commit: the one way a service hands follow-up work to the workers.

`dispatch_on_commit(task, {...}, ..., redrive="...")` publishes one message per keyword set once the current
transaction commits (at once outside one). The work it asks for has already committed, so a publish that fails
must not fail the caller (an API request answered 500 though its counter-offer was stored): the failure is
logged at WARNING with the task's name and what re-drives it, and the caller goes on.

Every follow-up queued here can be lost (the broker down at commit, a process killed between the commit and the
publish), so every caller names its re-drive: a beat that finds the work still due from the database state
(sweeps_redrive_task, feasibility_redrive_task, volatility_redrive_task, the notifications' outbox drain, the
next beat sweep), and runs an idempotent task again. The tasks run twice with effect once.

One attempt at the broker, on a connection of its own without kombu's reconnect loop (seconds with Redis
down), and no publish retry: the caller has just committed and should not hang on Redis. A fresh connection
also never trips on a pooled one that a Redis restart left dead.

Django's own `on_commit(robust=True)` is not used: Django 5.2 logs its failure with `func.__qualname__`, which a
`functools.partial` lacks, so the AttributeError escaped from the commit as a 500. The callback here catches
its own errors.

In-process mode (CELERY_TASK_ALWAYS_EAGER: the demo, most tests) has no broker: the task runs here, and its
error is the caller's, as a bug should be.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celery import Task
from django.db import transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dispatch:
    """The on-commit callback: `task` once per keyword set in `calls`, on one connection."""

    task: Task
    calls: tuple[Mapping[str, Any], ...]
    redrive: str

    @property
    def task_name(self) -> str:
        return str(self.task.name)

    def __call__(self) -> None:
        app = self.task.app
        if app.conf.task_always_eager:
            for kwargs in self.calls:
                self.task.apply_async(kwargs=dict(kwargs))
            return
        sent = 0
        try:
            with app.connection_for_write(transport_options={"max_retries": 0}) as connection:
                for kwargs in self.calls:
                    self.task.apply_async(kwargs=dict(kwargs), connection=connection, retry=False)
                    sent += 1
        except Exception as exc:  # the broker is down or refused the message: the re-drive will queue it
            logger.warning(
                "task %s not queued after commit (%d of %d messages sent; %s: %s); %s re-drives it",
                self.task_name,
                sent,
                len(self.calls),
                type(exc).__name__,
                exc,
                self.redrive,
                exc_info=True,
            )


def dispatch_on_commit(task: Task, *calls: Mapping[str, Any], redrive: str) -> Dispatch | None:
    """Queue `task` with each keyword set of `calls` after the current transaction commits. `redrive` names what
    queues it again if this is lost (logged with a failure). Returns the callback (None when there is nothing
    to queue)."""
    if not calls:
        return None
    dispatch = Dispatch(task=task, calls=tuple(calls), redrive=redrive)
    transaction.on_commit(dispatch)
    return dispatch
