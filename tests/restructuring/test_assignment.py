"""Ownership: new cases are assigned as a sweep opens them (least-loaded eligible officer, authority covering the
debt, within capacity, urgency-weighted), a senior reassigns, leave redistributes; all audited; fixed queries."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from core.audit import audit_verify
from core.errors import ConflictError, PermissionRefusedError
from core.models import AuditEvent
from core.roles import CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import ApprovalLimit, Case, Team, TeamMembership
from restructuring.services.assignment import (
    NewCase,
    case_reassign,
    cases_assign_new,
    cases_balance,
    officer_cases_move,
    officer_leave_end,
    officer_leave_start,
)
from restructuring.services.case_sweep import cases_apply_risk
from tests.api.conftest import staff_user
from tests.restructuring.helpers import account, accounts, btc, sweep_only

pytestmark = pytest.mark.django_db


def _desk(*officers: str, senior: str = "sam", capacity: int | None = None) -> Team:
    boss = staff_user(senior, SENIOR_CREDIT_OFFICER)
    team = Team.objects.create(name="Desk A", senior=boss)
    for name in officers:
        TeamMembership.objects.create(team=team, user=staff_user(name, CREDIT_OFFICER), capacity=capacity)
    return team


def _owners() -> dict[str, int]:
    owners: dict[str, int] = {}
    for name in Case.objects.values_list("assignee__username", flat=True):
        owners[name or ""] = owners.get(name or "", 0) + 1
    return owners


def test_a_sweep_assigns_its_new_cases_to_the_least_loaded_officers_of_a_team_audited() -> None:
    team = _desk("alice", "bob")
    instrument = btc()
    accounts(instrument, "margin_call", 4)
    accounts(instrument, "warning", 2)
    cases_apply_risk(sweep_id=sweep_only().pk)
    cases = list(Case.objects.all())
    assert len(cases) == 6
    assert all(c.assignee is not None and c.team_id == team.pk for c in cases)
    # Four margin calls (3 points each) and two warnings (1 each): 7 points per officer.
    assert _owners() == {"alice": 3, "bob": 3}
    # Assigned as they opened: each case's opening event names its officer and team; no second event per case.
    opened = {e.object_id: e for e in AuditEvent.objects.filter(action="case.open")}
    assert set(opened) == {c.pk for c in cases}
    for case in cases:
        assert case.assignee is not None
        assert (opened[case.pk].payload["assignee"], opened[case.pk].payload["team"]) == (
            case.assignee.username,
            "Desk A",
        )
        assert opened[case.pk].system_actor == "sweep"
    assert not AuditEvent.objects.filter(action="case.assign").exists()
    assert audit_verify().ok


def test_only_officers_whose_authority_covers_the_debt_within_capacity_and_not_on_leave_are_eligible() -> None:
    _desk("alice", "bob", "carol")
    alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")
    ApprovalLimit.objects.create(user=alice, currency="USD", amount=Decimal("700"))  # below a 750 margin call
    TeamMembership.objects.filter(user__username="carol").update(on_leave=True)
    staff_user("dave", CREDIT_OFFICER)  # on no team
    instrument = btc()
    accounts(instrument, "margin_call", 2)  # debt 750: bob only
    accounts(instrument, "warning", 1)  # debt 660: alice (bob is loaded)
    cases_apply_risk(sweep_id=sweep_only().pk)
    assert _owners() == {"bob": 2, "alice": 1}
    assert not Case.objects.filter(assignee=alice, call_amount__isnull=False).exists()
    assert bob.assigned_cases.count() == 2


def test_a_case_nobody_can_take_stays_unassigned_and_is_counted() -> None:
    _desk("alice", capacity=3)  # a critical case weighs 4 points
    instrument = btc()
    account("CRIT", instrument, band="critical")
    account("WARN", instrument, band="warning")
    with override_settings(WORKOUT_AFTER_SWEEP_TASKS=[]):
        cases_apply_risk(sweep_id=sweep_only().pk)
    assert _owners() == {"": 1, "alice": 1}
    crit = Case.objects.get(account__code="CRIT")
    assert crit.assignee is None
    opening = AuditEvent.objects.get(action="case.open", object_id=crit.pk)
    assert (opening.payload["assignee"], opening.payload["team"]) == ("", "")
    TeamMembership.objects.update(capacity=None)
    result = cases_balance(system_actor="test")
    assert (result.assigned, result.unplaced) == (1, 0)
    # a later assignment is an event of its own
    event = AuditEvent.objects.get(action="case.assign")
    assert (event.object_id, event.system_actor, event.payload["to"]) == (crit.pk, "test", "alice")
    assert audit_verify().ok


def test_a_senior_reassigns_with_a_reason_an_officer_may_not_and_the_target_must_be_able_to_take_cases() -> None:
    _desk("alice", "bob")
    account("CALL", btc(), band="margin_call")
    cases_apply_risk(sweep_id=sweep_only().pk)
    case = Case.objects.get()
    holder = case.assignee
    assert holder is not None
    other = "bob" if holder.username == "alice" else "alice"
    with pytest.raises(PermissionRefusedError):
        case_reassign(case_id=case.pk, to=other, actor=holder)
    with pytest.raises(ConflictError):
        case_reassign(case_id=case.pk, to=staff_user("nina", CREDIT_OFFICER).pk, actor=User.objects.get(username="sam"))
    moved = case_reassign(case_id=case.pk, to=other, actor=User.objects.get(username="sam"), reason="balance")
    assert moved.assignee is not None
    assert moved.assignee.username == other
    event = AuditEvent.objects.get(action="case.reassign")
    assert event.actor is not None
    assert event.actor.username == "sam"
    assert (event.payload["from"], event.payload["to"], event.reason) == (holder.username, other, "balance")


def test_leave_redistributes_the_officers_cases_in_one_action_and_takes_them_off_new_work() -> None:
    _desk("alice", "bob", "carol")
    instrument = btc()
    accounts(instrument, "margin_call", 6)
    cases_apply_risk(sweep_id=sweep_only().pk)
    assert _owners() == {"alice": 2, "bob": 2, "carol": 2}
    sam = User.objects.get(username="sam")
    with pytest.raises(PermissionRefusedError):
        officer_leave_start(officer="alice", actor=User.objects.get(username="bob"))
    result = officer_leave_start(officer="alice", actor=sam)
    assert (result.assigned, result.unplaced) == (2, 0)
    assert _owners() == {"bob": 3, "carol": 3}
    assert AuditEvent.objects.filter(action="staff.leave_start", actor=sam).count() == 1
    assert AuditEvent.objects.filter(action="case.reassign", payload__from="alice").count() == 2
    accounts(instrument, "margin_call", 2, prefix="NEW")
    cases_apply_risk(sweep_id=sweep_only().pk)
    assert "alice" not in _owners()
    with pytest.raises(ConflictError):
        officer_leave_start(officer="alice", actor=sam)
    assert officer_leave_end(officer="alice", actor=sam) is True
    assert officer_leave_end(officer="alice", actor=sam) is False


def test_moving_one_officers_cases_to_another() -> None:
    _desk("alice", "bob")
    accounts(btc(), "margin_call", 4)
    cases_apply_risk(sweep_id=sweep_only().pk)
    result = officer_cases_move(officer="alice", to="bob", system_actor="test")
    assert result.by_officer == {"bob": 2}
    assert _owners() == {"bob": 4}


def test_balancing_takes_the_same_number_of_queries_for_3_cases_as_for_30() -> None:
    _desk("alice", "bob", "carol")
    instrument = btc()
    counts = []
    for prefix, n in (("S", 3), ("L", 30)):
        accounts(instrument, "margin_call", n, prefix=prefix)
        with override_settings(WORKOUT_ASSIGN_CAPACITY=0):  # the sweep leaves them unassigned
            cases_apply_risk(sweep_id=sweep_only().pk)
        with CaptureQueriesContext(connection) as queries:
            result = cases_balance(system_actor="test")
        assert result.assigned == n
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_a_sweep_assigns_3_or_30_new_cases_in_the_same_number_of_queries() -> None:
    _desk("alice", "bob", "carol")
    instrument = btc()
    counts = []
    for prefix, n in (("S", 3), ("L", 30)):
        accounts(instrument, "margin_call", n, prefix=prefix)
        sweep = sweep_only()
        with CaptureQueriesContext(connection) as queries, override_settings(WORKOUT_AFTER_SWEEP_TASKS=[]):
            moves = cases_apply_risk(sweep_id=sweep.pk)
        assert moves.opened == n
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert Case.objects.filter(assignee__isnull=True).count() == 0


@pytest.mark.django_db(transaction=True)
def test_placing_new_cases_outside_the_transaction_that_opens_them_is_refused() -> None:
    """The balancing's lock must be held until the new cases are written with their officers: by the transaction
    that opens them, which also records them."""
    _desk("alice")
    margin_account = account("CALL", btc(), band="margin_call")
    with pytest.raises(RuntimeError, match="inside the transaction"):
        cases_assign_new(cases=[NewCase(margin_account.pk, "margin_call", "USD")])
    with transaction.atomic():
        placed = cases_assign_new(cases=[NewCase(margin_account.pk, "margin_call", "USD")])
    assert placed.placements[margin_account.pk].username == "alice"
    assert not Case.objects.exists()  # placing writes nothing: the caller inserts the case with its officer
