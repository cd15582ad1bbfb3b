"""The beats that re-drive a follow-up whose post-commit task was lost (issue 14): each finds the work still due in
the database, runs it, and finds nothing the next time; the work is done once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import TestCase, override_settings
from django.utils import timezone

from accounts.models import Instrument, Price
from accounts.services.prices import prices_shock
from accounts.services.volatility import instrument_volatility_refresh, volatility_due_instrument_ids
from accounts.tasks import volatility_redrive_task
from core.dispatch import Dispatch
from restructuring.models import Case, CaseState, FeasibilityReport, Proposal, ProposalSource
from restructuring.selectors.feasibility import counter_followups_due, proposals_due_case_ids
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.negotiation.offers import offer_counter
from restructuring.tasks import feasibility_redrive_task
from tests.api.conftest import offered_case
from tests.restructuring.helpers import account, btc, sweep_only
from tests.web.helpers import policy_in_force

pytestmark = pytest.mark.django_db
FAST = override_settings(WORKOUT_FEASIBILITY_PATHS=500)


def _task_name(callback: Callable[[], Any]) -> str:
    assert isinstance(callback, Dispatch), callback
    return callback.task_name


@FAST
def test_a_margin_call_report_whose_proposals_task_was_lost_is_proposed_by_the_beat_once() -> None:
    # given published rules and a margin call whose report is stored, but whose proposals task never ran
    policy_in_force()
    margin_account = account("LOSTRULES", btc(), band="margin_call")
    with TestCase.captureOnCommitCallbacks(execute=False) as after_cases:
        cases_apply_risk(sweep_id=sweep_only().pk)
    with TestCase.captureOnCommitCallbacks(execute=False) as lost:  # the feasibility task runs, in process
        for callback in after_cases:
            if _task_name(callback) == "restructuring.tasks.compute_feasibility":
                callback()
    assert [_task_name(callback) for callback in lost] == ["restructuring.tasks.propose_from_rules"]
    case = Case.objects.get(account=margin_account)
    assert case.state == CaseState.MARGIN_CALL
    assert FeasibilityReport.objects.filter(case=case).count() == 1
    assert not Proposal.objects.filter(case=case).exists()
    assert proposals_due_case_ids() == [case.pk]

    # when the beat runs, the rules propose on the report; the next beat finds nothing due and adds nothing
    assert feasibility_redrive_task() == 1
    case.refresh_from_db()
    assert case.state == CaseState.PROPOSED
    proposals = set(Proposal.objects.filter(case=case).values_list("pk", flat=True))
    assert proposals
    assert proposals_due_case_ids() == []
    assert feasibility_redrive_task() == 0
    assert set(Proposal.objects.filter(case=case).values_list("pk", flat=True)) == proposals


@FAST
def test_a_report_the_rules_read_without_firing_is_not_due_again() -> None:
    # given a margin call whose report the rules have read (they proposed, then the proposals went): not due
    policy_in_force()
    margin_account = account("READ", btc(), band="margin_call")
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)
    case = Case.objects.get(account=margin_account)
    assert case.facts_at is not None
    Proposal.objects.filter(case=case).delete()
    Case.objects.filter(pk=case.pk).update(state=CaseState.MARGIN_CALL)
    assert proposals_due_case_ids() == []

    # and without a published rule set nothing is ever due (the rules would propose nothing)
    Case.objects.filter(pk=case.pk).update(facts_at=None)
    assert proposals_due_case_ids() == [case.pk]
    from rules.models import RuleSet, RuleSetStatus

    RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED).update(status=RuleSetStatus.RETIRED)
    assert proposals_due_case_ids() == []


@FAST
def test_a_counter_whose_followup_was_lost_is_followed_up_by_the_beat_once() -> None:
    # given a client's counter-offer whose follow-up task never ran
    offer = offered_case("COUNTERLOST")
    with TestCase.captureOnCommitCallbacks(execute=False) as lost:
        offer_counter(proposal_id=offer.pk, client_id=offer.case.account.client_id, terms={"term_months": 18})
    assert [_task_name(callback) for callback in lost] == ["restructuring.tasks.counter_followup_task"]
    assert counter_followups_due() == [(offer.case_id, offer.pk)]

    # when the beat runs: a fresh report for the new round and the rules' proposals on it
    assert feasibility_redrive_task() == 1
    report = FeasibilityReport.objects.get(case=offer.case, key=f"counter:{offer.pk}")
    made = set(
        Proposal.objects.filter(source=ProposalSource.RULES, feasibility_report=report).values_list("pk", flat=True)
    )
    assert made
    # then nothing is due, and running it again adds nothing
    assert counter_followups_due() == []
    assert feasibility_redrive_task() == 0
    assert FeasibilityReport.objects.filter(case=offer.case, key=f"counter:{offer.pk}").count() == 1
    assert (
        set(
            Proposal.objects.filter(source=ProposalSource.RULES, feasibility_report=report).values_list("pk", flat=True)
        )
        == made
    )


def test_prices_whose_volatility_refresh_was_lost_are_refreshed_by_the_beat_once() -> None:
    # given an instrument whose volatility was computed, then a new price whose refresh task never ran
    instrument = btc()
    start = timezone.now() - timedelta(days=40)
    Price.objects.bulk_create(
        Price(instrument=instrument, time=start + timedelta(days=day), price=Decimal(100 + (day % 3)))
        for day in range(30)
    )
    instrument_volatility_refresh()
    assert volatility_due_instrument_ids() == []
    prices_shock(moves={"BTC": Decimal("-0.25")})  # in the test's transaction: its on-commit refresh never runs
    before = Instrument.objects.get(pk=instrument.pk)
    assert volatility_due_instrument_ids() == [instrument.pk]

    # when the beat runs, the volatility is recomputed with the new price; the next beat finds nothing
    assert volatility_redrive_task() == [instrument.pk]
    after = Instrument.objects.get(pk=instrument.pk)
    assert after.volatility_as_of > before.volatility_as_of  # type: ignore[operator]
    assert after.ewma_volatility != before.ewma_volatility
    assert volatility_redrive_task() == []
    assert Instrument.objects.get(pk=instrument.pk).ewma_volatility == after.ewma_volatility
