from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from core.audit import AuditEntry, audit_record_many
from core.models import AuditEvent

# A real model, so object_type validation passes without depending on another app's work in progress.
OBJECT_TYPE = "accounts.marginaccount"


@pytest.fixture
def officer() -> AbstractBaseUser:
    return get_user_model().objects.create_user(username="officer", password="not-used-0")


def make_entry(n: int = 1, **overrides: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "action": "case.margin_call",
        "object_type": OBJECT_TYPE,
        "object_id": n,
        "account_id": 100 + n,
        "system_actor": "sweep",
        "from_state": "watch",
        "to_state": "margin_call",
        "reason": f"event {n}",
        "payload": {"n": n},
    }
    fields.update(overrides)
    return AuditEntry(**fields)


@pytest.fixture
def chain() -> Callable[[int], list[AuditEvent]]:
    """Record n events (each in its own transaction) and return them."""

    def record(n: int) -> list[AuditEvent]:
        events = []
        for i in range(1, n + 1):
            with transaction.atomic():
                events.extend(audit_record_many([make_entry(i)]))
        return events

    return record
