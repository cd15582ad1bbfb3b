"""The audit trail in the admin: readable, never editable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from core.audit import audit_verify
from core.models import AuditEvent

pytestmark = [
    pytest.mark.django_db,
    # whitenoise notes at start-up that `collectstatic` has not run; these tests do not serve static files.
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]


@pytest.fixture
def admin_client_(client: Client, settings: Any) -> Client:
    # Pages render without `collectstatic` having built the manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    client.force_login(get_user_model().objects.create_superuser(username="root", password="not-used-0"))
    return client


def test_events_are_listed_and_shown(admin_client_: Client, chain: Callable[[int], list[AuditEvent]]) -> None:
    events = chain(3)

    listing = admin_client_.get("/admin/core/auditevent/", secure=True)
    detail = admin_client_.get(f"/admin/core/auditevent/{events[1].pk}/change/", secure=True)

    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 3
    assert detail.status_code == 200
    assert events[1].hash in detail.content.decode()
    assert b'name="_save"' not in detail.content  # read-only: no save button


def test_events_cannot_be_added_changed_or_deleted(
    admin_client_: Client, chain: Callable[[int], list[AuditEvent]]
) -> None:
    (event,) = chain(1)

    add = admin_client_.get("/admin/core/auditevent/add/", secure=True)
    change = admin_client_.post(f"/admin/core/auditevent/{event.pk}/change/", {"reason": "edited"}, secure=True)
    delete = admin_client_.post(f"/admin/core/auditevent/{event.pk}/delete/", {"post": "yes"}, secure=True)

    assert add.status_code == 403
    assert change.status_code == 403
    assert delete.status_code == 403
    assert AuditEvent.objects.get().reason == event.reason
    assert audit_verify().ok
