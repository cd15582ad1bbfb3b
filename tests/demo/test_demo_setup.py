from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings

from accounts.models import Client, MarginAccount, MessagePreferences, RiskState, Sweep, SweepStatus
from restructuring.models import Case, Notification
from restructuring.services.case_sweep import cases_apply_risk

pytestmark = pytest.mark.django_db


@override_settings(DEBUG=True)
def test_demo_setup_loads_sweeps_and_sets_no_password() -> None:
    out = StringIO()

    call_command("demo_setup", accounts=60, stdout=out)

    assert MarginAccount.objects.count() == 60
    assert RiskState.objects.count() == 60
    assert Sweep.objects.get().status == SweepStatus.DONE
    # no superuser with a known password: the admin is read-only, behind the second factor, for demo_users' ada
    assert not get_user_model().objects.exists()
    assert "http://127.0.0.1:8000/admin/ as ada" in out.getvalue()


def test_demo_setup_refuses_without_debug() -> None:
    with pytest.raises(CommandError, match="runs only with DEBUG=true"):
        call_command("demo_setup", accounts=10)
    assert not MarginAccount.objects.exists()


@override_settings(DEBUG=True)
def test_the_demos_clients_can_be_reached_and_hear_of_their_margin_calls(
    tmp_path: Any, mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    # given the demo book (its sweep's case moves run here, as its on-commit task would)
    out = StringIO()
    with override_settings(MEDIA_ROOT=str(tmp_path / "media"), WORKOUT_SMS_FILE_PATH=str(tmp_path / "sms")):
        call_command("demo_setup", accounts=300, stdout=out)
        with django_capture_on_commit_callbacks(execute=True):
            cases_apply_risk(sweep_id=Sweep.objects.get().pk)

    # then every client has an email address, a third have preferences (German for some, SMS, letters for a few)
    assert not Client.objects.filter(email="").exists()
    assert Client.objects.filter(email="cl000001@client.example").exists()
    preferences = MessagePreferences.objects.all()
    assert preferences.count() == -(-Client.objects.count() // 3)
    assert preferences.filter(locale="de").exists()
    assert preferences.filter(by_letter=True).exists()
    # and each margin call was told by email, from its template, in the client's language, and sent
    calls = Notification.objects.filter(kind="margin_call", channel="email")
    assert calls.count() == Case.objects.filter(state__in=["margin_call", "proposed"]).count() > 0
    assert {n.status for n in calls} == {"sent"}
    assert all(n.template is not None and n.subject and n.body for n in calls)
    assert len(mailoutbox) >= calls.count()
    # and the demo says where a newcomer reads what was sent
    printed = out.getvalue()
    assert "what clients receive" in printed
    assert f"emails:  {settings.EMAIL_FILE_PATH}/" in printed
    assert f"letters: {tmp_path / 'media'}/letters/<case>/" in printed
