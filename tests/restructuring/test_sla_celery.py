"""The SLA beat through a real Celery worker: delivered twice (or run by two beats), a breach is escalated once."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import app
from core.models import AuditEvent
from restructuring.models import Case, Notification, NotificationKind, SlaEscalation
from restructuring.tasks import sla_escalate_task
from tests.celery_worker import celery_worker
from tests.restructuring.test_sla import _calls, _desk

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]
TASK = "restructuring.tasks.sla_escalate_task"


def _wait_done(queue: str, count: int, timeout_s: float = 60.0) -> None:
    """Until the worker has taken the task `count` times and runs none (no result backend: it says so itself)."""
    name = f"{queue}@localhost"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        inspect = app.control.inspect(destination=[name], timeout=1)
        taken = (inspect.stats() or {}).get(name, {}).get("total", {}).get(TASK, 0)
        if taken >= count and not (inspect.active() or {}).get(name):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{TASK} did not run {count} times")


def test_the_beat_run_twice_escalates_each_breach_once() -> None:
    _desk()
    _calls(3)
    Case.objects.update(state_changed_at=timezone.now() - timedelta(hours=25))
    with celery_worker() as queue:
        sla_escalate_task.delay()
        sla_escalate_task.delay()  # two at once, as two beats would: the lock serialises them
        _wait_done(queue, 2)
        sla_escalate_task.delay()  # and later again
        _wait_done(queue, 3)
    assert SlaEscalation.objects.count() == 3
    assert AuditEvent.objects.filter(action="case.sla_breach").count() == 3
    assert Notification.objects.filter(kind=NotificationKind.SLA_BREACH).count() == 3
