"""Proposals from the published rules: made after a margin call's feasibility, explained, valued and ranked;
once per report; the case moves to PROPOSED with one audit event."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import TestCase, override_settings

from accounts.models import Client, ClientGroup, MarginLoan, Position
from core.audit import audit_verify
from core.models import AuditEvent
from restructuring.models import Case, CaseState, FeasibilityReport, Proposal
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.feasibility import liquidation_value
from restructuring.services.proposals import proposals_from_rules
from restructuring.services.rules_trial import ruleset_backtest, ruleset_dry_run
from rules.models import Rule
from rules.services import DEFAULT_RULES, rule_save, ruleset_clone, ruleset_load
from tests.restructuring.helpers import account, btc, run_together, sweep_only

FAST = override_settings(WORKOUT_FEASIBILITY_PATHS=500)


def _margin_call() -> Case:
    """10 BTC at 100 on a 750 loan (a 250 call to the 500 initial requirement), swept; the on-commit tasks (the
    margin call's feasibility, then the rules) run in process."""
    margin_account = account("CALL", btc(), band="margin_call")
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)
    return Case.objects.get(account=margin_account)


@pytest.mark.django_db
@FAST
def test_the_rules_propose_explained_valued_terms_and_the_case_moves_to_proposed() -> None:
    ruleset_load(DEFAULT_RULES, publish=True)

    case = _margin_call()

    # one position is the whole book (concentration 100% > 60%): the concentration package fires, three rules;
    # the call is a third of the debt (250 / 750), so no shortfall rule; loss capacity 25%, one day to sell
    assert case.state == CaseState.PROPOSED
    proposal = Proposal.objects.get(case=case)
    position = Position.objects.get(account=case.account)
    assert (proposal.name, proposal.kind, proposal.state, proposal.rank) == (
        "concentration",
        "restructure",
        "pending_approval",
        1,
    )
    assert proposal.terms == {
        "term_months": 12,
        "kind": "level",
        "collateral_to_add": "300.00",  # shortfall x 1.2
        "reduce": [[position.pk, "0.5000"]],
    }
    assert [e["rule"] for e in proposal.explanation] == [
        "concentrated_collateral",
        "concentrated_reduction",
        "concentrated_term",
    ]
    # each explanation names exactly the facts its rule read, with the case's values
    assert proposal.explanation[0]["facts"] == {"concentration_top1": 1.0, "shortfall": 250.0}
    assert proposal.explanation[1]["facts"] == {"concentration_top1": 1.0}
    assert proposal.explanation[0]["parameters"] == {"amount": 300.0}
    report = FeasibilityReport.objects.get(case=case)
    assert proposal.feasibility_report == report
    assert proposal.rule_set_version == 1
    assert proposal.valuation["affordable"] is False  # 300 of collateral; the client declared no capacity
    assert proposal.expected_pv == Decimal(proposal.valuation["expected_pv"]["value"])
    assert proposal.facts["shortfall_pct"] == pytest.approx(250 / 750)
    # the case keeps the last row the rules saw (what a backtest replays): the same, but for the clock
    seen = Case.objects.get(pk=case.pk).facts
    assert {k: v for k, v in seen.items() if k != "days_in_margin_call"} == {
        k: v for k, v in proposal.facts.items() if k != "days_in_margin_call"
    }
    event = AuditEvent.objects.get(action="case.propose")
    assert (event.object_id, event.from_state, event.to_state) == (case.pk, "margin_call", "proposed")
    assert event.payload["proposals"][0]["name"] == "concentration"
    assert audit_verify().ok

    # run again (a redelivered task): nothing more
    assert proposals_from_rules(case_ids=[case.pk]) == []
    assert Proposal.objects.count() == 1


@pytest.mark.django_db
@FAST
def test_without_a_published_rule_set_nothing_is_proposed() -> None:
    case = _margin_call()
    assert case.state == CaseState.MARGIN_CALL
    assert FeasibilityReport.objects.filter(case=case).exists()
    assert not Proposal.objects.exists()


@pytest.mark.django_db
@FAST
def test_a_large_exposure_escalates_every_proposal_to_a_senior_officer() -> None:
    ruleset_load(DEFAULT_RULES, publish=True)
    # the same book for a client whose group owes more than 2,000,000 across its accounts
    group = ClientGroup.objects.create(code="BIG", name="Big owner")
    instrument = btc()
    other = account("OTHER", instrument, band="healthy")
    MarginLoan.objects.filter(account=other).update(principal=Decimal("2500000"))
    called = account("CALLED", instrument, band="margin_call")
    Client.objects.filter(accounts__in=[called, other]).update(group=group)
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)

    case = Case.objects.get(account=called)
    proposals = list(Proposal.objects.filter(case=case))
    assert case.state == CaseState.PROPOSED
    assert [p.name for p in proposals] == ["concentration"]  # the escalation is no package of its own...
    assert proposals[0].requires_senior
    # ...but it is in the explanation, with the fact it read
    escalation = proposals[0].explanation[-1]
    assert (escalation["rule"], escalation["facts"]) == (
        "large_exposure_escalates",
        {"debt": 750.0, "group_exposure": 2500750.0},
    )


@pytest.mark.django_db
@FAST
def test_a_dry_run_and_a_backtest_show_what_a_draft_changes_against_the_published_set() -> None:
    published = ruleset_load(DEFAULT_RULES, publish=True)
    case = _margin_call()
    draft = ruleset_clone(rule_set_id=published.pk)
    # the draft asks for more collateral from concentrated books, and adds a 6-month extension for them
    rule = draft.rules.get(name="concentrated_collateral")
    editor = User.objects.create_user("editor")
    rule_save(
        rule_set_id=draft.pk,
        actor=editor,
        rule={**spec_dict(rule), "parameters": {"amount": "shortfall * 1.5"}},
        replaces="concentrated_collateral",
    )
    rule_save(
        rule_set_id=draft.pk,
        actor=editor,
        rule={
            "name": "concentrated_short",
            "priority": 45,
            "condition": "concentration_top1 > 0.9",
            "action": "extend_term",
            "parameters": {"months": "6"},
            "package": "short_concentrated",
        },
    )

    trial = ruleset_dry_run(rule_set_id=draft.pk)

    assert (trial.rule_set_version, trial.against_version, trial.cases) == (2, 1, 1)
    assert (trial.added, trial.removed, trial.changed) == (1, 0, 1)
    [diff] = trial.differences
    assert (diff.case_id, diff.added, diff.changed) == (case.pk, ["short_concentrated"], ["concentration"])
    # neither concentration package is affordable (no declared capacity): before, the best is liquidating now;
    # after, the 6-month extension is valued, and counts if it beats that
    report = FeasibilityReport.objects.get(case=case)
    assert diff.before == Decimal(liquidation_value(report.results)["value"])
    assert diff.after >= diff.before
    assert trial.recovery_after - trial.recovery_before == diff.after - diff.before

    # once the case is closed, the backtest replays the facts the rules saw for it, with the same answer
    Case.objects.filter(pk=case.pk).update(state=CaseState.CURED, closed_at=case.opened_at)
    assert ruleset_dry_run(rule_set_id=draft.pk).cases == 0
    backtest = ruleset_backtest(rule_set_id=draft.pk)
    assert (backtest.cases, backtest.added, backtest.removed, backtest.changed) == (1, 1, 0, 1)
    assert (backtest.recovery_before, backtest.recovery_after) == (trial.recovery_before, trial.recovery_after)


def spec_dict(rule: Rule) -> dict[str, object]:
    return {f: getattr(rule, f) for f in ("name", "priority", "condition", "action", "parameters", "package")}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@FAST
def test_two_rule_runs_at_once_propose_once() -> None:
    # given a margin call with its feasibility report, and rules published only afterwards (nothing proposed yet)
    case = _margin_call()
    assert case.state == CaseState.MARGIN_CALL
    ruleset_load(DEFAULT_RULES, publish=True)
    events = AuditEvent.objects.filter(action="case.propose").count()

    # when two runs evaluate the rules on it at once (both compute; the store re-checks under the case lock)
    outcomes = run_together(
        lambda: proposals_from_rules(case_ids=[case.pk]),
        lambda: proposals_from_rules(case_ids=[case.pk]),
    )

    # then one stored the proposal and moved the case, the other nothing
    assert [o.error for o in outcomes] == [None, None]
    assert sorted(len(o.value) for o in outcomes) == [0, 1]
    assert Proposal.objects.filter(case=case).count() == 1
    assert Case.objects.get(pk=case.pk).state == CaseState.PROPOSED
    assert AuditEvent.objects.filter(action="case.propose").count() == events + 1
    assert audit_verify().ok
