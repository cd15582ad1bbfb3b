"""`manage.py verify_audit`: its output and exit status."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO

import pgtrigger
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from core.management.commands.verify_audit import Command
from core.models import AuditEvent

pytestmark = pytest.mark.django_db

Chain = Callable[[int], list[AuditEvent]]


def test_an_empty_trail_verifies() -> None:
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert out.getvalue() == "audit chain verified: 0 events\n"


def test_a_sound_chain_verifies(chain: Chain) -> None:
    chain(12)
    out = StringIO()
    call_command("verify_audit", "--batch-size", "5", stdout=out)
    assert out.getvalue() == "audit chain verified: 12 events\n"


def test_a_broken_chain_names_the_event(chain: Chain) -> None:
    chain(6)
    with pgtrigger.ignore("core.AuditEvent:append_only"):
        AuditEvent.objects.filter(sequence=4).update(payload={"n": "tampered"})
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("verify_audit", stdout=out)
    assert str(raised.value) == (
        "audit chain broken: event #4: hash does not match its contents (3 events before it verified)"
    )
    assert out.getvalue() == ""


def test_a_bad_batch_size_is_refused() -> None:
    with pytest.raises(CommandError, match="at least 1"):
        call_command("verify_audit", "--batch-size", "0")


# run_from_argv is what manage.py runs: it closes the connections at the end, hence transaction=True.
@pytest.mark.django_db(transaction=True)
def test_exit_status(chain: Chain, capsys: pytest.CaptureFixture[str]) -> None:
    # given a sound chain: exit status 0 (run_from_argv returns without SystemExit)
    chain(3)
    Command().run_from_argv(["manage.py", "verify_audit"])
    assert capsys.readouterr().out == "audit chain verified: 3 events\n"

    # when a row is deleted with the guard off
    with transaction.atomic(), pgtrigger.ignore("core.AuditEvent:append_only"):
        AuditEvent.objects.filter(sequence=2).delete()

    # then exit status 1 and the broken link on stderr
    with pytest.raises(SystemExit) as exited:
        Command().run_from_argv(["manage.py", "verify_audit"])
    assert exited.value.code == 1
    assert "CommandError: audit chain broken: gap before event #3: #2 missing" in capsys.readouterr().err
