from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings

from accounts.models import MarginAccount, RiskState, Sweep, SweepStatus

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
