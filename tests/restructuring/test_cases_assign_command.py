"""manage.py cases_assign: balances the unassigned open cases; --officer A --to B moves A's cases; on the record."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from core.models import AuditEvent, Operation
from restructuring.models import Case
from restructuring.services.case_sweep import cases_apply_risk
from tests.restructuring.helpers import accounts, btc, sweep_only
from tests.restructuring.test_assignment import _desk, _owners

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("cases_assign", *args, stdout=out)
    return out.getvalue()


def test_the_command_balances_unassigned_cases_then_moves_one_officers_cases() -> None:
    _desk("alice", "bob")
    accounts(btc(), "margin_call", 4)
    with override_settings(WORKOUT_ASSIGN_CAPACITY=0):
        cases_apply_risk(sweep_id=sweep_only().pk)
    assert _owners() == {"": 4}
    assert "assigned 4 cases (alice 2, bob 2); 0 left unassigned" in _run()
    assert AuditEvent.objects.filter(action="case.assign").count() == 4
    assert "assigned 2 cases (bob 2)" in _run("--officer", "alice", "--to", "bob")
    assert _owners() == {"bob": 4}
    assert AuditEvent.objects.filter(action="case.reassign", payload__from="alice", payload__to="bob").count() == 2
    assert list(Operation.objects.order_by("pk").values_list("name", flat=True)) == ["cases_assign"] * 2


def test_a_bad_officer_or_half_the_pair_refuses_the_run_and_changes_nothing() -> None:
    _desk("alice", "bob")
    accounts(btc(), "margin_call", 2)
    cases_apply_risk(sweep_id=sweep_only().pk)
    owners, events = _owners(), AuditEvent.objects.count()
    with pytest.raises(CommandError, match="no user 'nobody'"):
        _run("--officer", "alice", "--to", "nobody")
    with pytest.raises(CommandError, match="go together"):
        _run("--officer", "alice")
    assert (_owners(), AuditEvent.objects.count()) == (owners, events)
    assert Case.objects.filter(assignee__isnull=True).count() == 0
