"""SLA timers: each staff wait has a target (settings, per team), the queue's annotation computes the clock in SQL,
and a breach escalates to the team's senior once (audited, emailed), however often the beat runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.test import TestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import AuditEvent
from core.roles import CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import (
    Case,
    CaseState,
    Notification,
    NotificationKind,
    Proposal,
    ProposalState,
    SlaEscalation,
    Team,
    TeamMembership,
)
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.negotiation.offers import offer_accept
from restructuring.services.sla import sla_breaches_escalate
from restructuring.sla import ACCEPTED_NOT_EXECUTED, MARGIN_CALL_NO_PROPOSAL, PROPOSAL_PENDING_APPROVAL, sla_annotate
from tests.api.conftest import offered_case, policy_in_force, staff_user
from tests.restructuring.helpers import accounts, btc, sweep_only

pytestmark = pytest.mark.django_db


def _desk() -> Team:
    sam = staff_user("sam", SENIOR_CREDIT_OFFICER)
    sam.email = "sam@bank.example"
    sam.save()
    team = Team.objects.create(name="Desk A", senior=sam)
    TeamMembership.objects.create(team=team, user=staff_user("alice", CREDIT_OFFICER))
    return team


def _calls(n: int) -> list[Case]:
    accounts(btc(), "margin_call", n)
    cases_apply_risk(sweep_id=sweep_only().pk)
    return list(Case.objects.order_by("pk"))


def _waited(hours: float) -> None:
    Case.objects.update(state_changed_at=timezone.now() - timedelta(hours=hours))


def test_a_margin_call_without_a_proposal_runs_its_clock_against_the_setting_and_the_teams_target() -> None:
    team = _desk()
    case = _calls(1)[0]
    now = timezone.now()
    row = sla_annotate(Case.objects.filter(pk=case.pk), now).get()
    assert (row.sla_clock, row.sla_target_hours, row.sla_breached) == (MARGIN_CALL_NO_PROPOSAL, 24.0, False)
    assert case.state_changed_at is not None
    assert row.sla_due_at == case.state_changed_at + timedelta(hours=24)
    _waited(25)
    assert sla_annotate(Case.objects.all(), timezone.now()).get().sla_breached is True
    team.sla_hours = {MARGIN_CALL_NO_PROPOSAL: 48}
    team.save()
    row = sla_annotate(Case.objects.all(), timezone.now()).get()
    assert (row.sla_target_hours, row.sla_breached) == (48.0, False)


def test_a_case_waiting_for_nobody_runs_no_clock() -> None:
    _desk()
    accounts(btc(), "warning", 1)
    cases_apply_risk(sweep_id=sweep_only().pk)
    row = sla_annotate(Case.objects.all(), timezone.now()).get()
    assert row.state == CaseState.WARNING
    assert (row.sla_clock, row.sla_due_at, row.sla_breached) == ("", None, None)


def test_a_breach_escalates_to_the_teams_senior_once_however_often_the_beat_runs() -> None:
    _desk()
    _calls(2)
    _waited(25)
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        with TestCase.captureOnCommitCallbacks(execute=True):
            assert sla_breaches_escalate() == 2
        with TestCase.captureOnCommitCallbacks(execute=True):
            assert sla_breaches_escalate() == 0
        assert SlaEscalation.objects.count() == 2
        sam = User.objects.get(username="sam")
        assert set(SlaEscalation.objects.values_list("escalated_to", flat=True)) == {sam.pk}
        events = AuditEvent.objects.filter(action="case.sla_breach")
        assert events.count() == 2
        assert events.first().payload["escalated_to"] == "sam"  # type: ignore[union-attr]
        notes = Notification.objects.filter(kind=NotificationKind.SLA_BREACH)
        assert list(notes.values_list("recipient", flat=True)) == ["sam@bank.example"] * 2
        assert sorted(m.to[0] for m in mail.outbox) == ["sam@bank.example"] * 2
        assert "breached its SLA" in mail.outbox[0].subject
    # A new wait (the case moved and came back) is a new breach.
    Case.objects.update(state_changed_at=timezone.now() - timedelta(hours=30))
    assert sla_breaches_escalate() == 2


def test_escalation_takes_the_same_number_of_queries_for_2_breaches_as_for_20() -> None:
    _desk()
    instrument = btc()
    counts = []
    for prefix, n in (("S", 2), ("L", 20)):
        accounts(instrument, "margin_call", n, prefix=prefix)
        cases_apply_risk(sweep_id=sweep_only().pk)
        Case.objects.filter(account__code__startswith=prefix).update(
            state_changed_at=timezone.now() - timedelta(hours=25)
        )
        with CaptureQueriesContext(connection) as queries:
            assert sla_breaches_escalate() == n
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_a_pending_proposal_then_an_accepted_offer_each_run_their_own_clock_from_their_own_start() -> None:
    _desk()
    offer = offered_case()  # the rules proposed (pending), alice approved and offered
    case = offer.case
    row = sla_annotate(Case.objects.filter(pk=case.pk), timezone.now()).get()
    assert row.sla_clock == ""  # offered: the client is the one to act
    accepted = offer_accept(proposal_id=offer.pk, client_id=case.account.client_id)
    row = sla_annotate(Case.objects.filter(pk=case.pk), timezone.now()).get()
    assert (row.state, row.sla_clock, row.sla_target_hours) == (CaseState.ACCEPTED, ACCEPTED_NOT_EXECUTED, 24.0)
    assert row.sla_started_at == Case.objects.get(pk=case.pk).state_changed_at
    assert row.sla_started_at >= accepted.offered_at


def test_the_pending_approval_clock_counts_from_the_oldest_pending_proposal() -> None:
    _desk()
    policy_in_force()
    accounts(btc(), "margin_call", 1)
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)
    case = Case.objects.get()
    pending = Proposal.objects.filter(case=case, state=ProposalState.PENDING_APPROVAL)
    assert pending.exists()
    old = timezone.now() - timedelta(hours=9)
    pending.filter(pk__in=pending.order_by("pk").values("pk")[:1]).update(state_changed_at=old)
    row = sla_annotate(Case.objects.all(), timezone.now()).get()
    assert (row.sla_clock, row.sla_started_at, row.sla_target_hours) == (PROPOSAL_PENDING_APPROVAL, old, 8.0)
    assert row.sla_breached is True
