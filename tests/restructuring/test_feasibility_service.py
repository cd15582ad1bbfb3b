"""Feasibility reports: computed when a case enters margin call, once per call; stored with what reproduces them;
recomputed exactly; previews of any terms; the inputs read from the book (co-sellers, correlation, debt)."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from django.test import TestCase, override_settings
from django.utils import timezone

from accounts.models import Client, ClientGroup, Instrument, MarginAccount, MarginLoan, Position, Price
from core.audit import audit_verify
from core.errors import NotFoundError, ValidationError
from core.models import AuditEvent
from restructuring.models import Case, CaseState, FeasibilityReport
from restructuring.selectors.feasibility import feasibility_due_case_ids, feasibility_facts_load
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.feasibility import (
    feasibility_compute,
    feasibility_recompute,
    liquidation_value,
    market_current,
    terms_preview,
)
from restructuring.tasks import feasibility_redrive_task
from tests.restructuring.helpers import account, btc, run_together, sweep_only, worker

# Small Monte Carlo for the database tests: the model's accuracy is tests/restructuring/test_feasibility_model.py's.
FAST = override_settings(WORKOUT_FEASIBILITY_PATHS=500)


def _called(code: str, instrument: Instrument) -> Case:
    """An account below maintenance (10 BTC at 100 against a 750 loan), swept: its case is in margin call."""
    margin_account = account(code, instrument, band="margin_call")
    sweep = sweep_only()
    with TestCase.captureOnCommitCallbacks(execute=True):  # the on-commit feasibility task runs, in process
        cases_apply_risk(sweep_id=sweep.pk)
    return Case.objects.get(account=margin_account)


@pytest.mark.django_db
@FAST
def test_a_margin_call_gets_one_report_with_its_inputs_seeds_and_figures() -> None:
    # given an account that the sweep moves to margin call (the task runs in process, on commit)
    case = _called("CALL", btc())

    # then the case has one report, keyed by its call
    assert case.state == CaseState.MARGIN_CALL
    report = FeasibilityReport.objects.get(case=case)
    assert report.trigger == "margin_call"
    assert report.key == f"margin_call:{case.called_at.isoformat()}"  # type: ignore[union-attr]
    assert report.model_version == "feasibility-2.0"
    assert report.case_seed == case.pk
    assert report.market_seed == market_current().seed
    # the inputs as the book has them: 10 BTC at 100 in units, ADV 1,000, 4% a day, haircut 10%; no cash;
    # debt = the 750 loan
    exposure = report.inputs["account"]["exposures"][0]
    assert (exposure["quantity"], exposure["daily_volume"], exposure["daily_volatility"]) == (10.0, 1000.0, 0.04)
    assert (exposure["haircut"], exposure["kind"]) == (0.1, "spot")
    assert report.inputs["account"]["drivers"][0]["price"] == 100.0
    assert report.debt == Decimal("750.00")
    # the market value is 10 x 100; after the 10% haircut 900: the figures in the report, to the cent
    recovery = report.results["recovery"]
    assert recovery["market_value"] == "1000.00"
    assert recovery["value_after_haircut"] == "900.00"
    # one day of trading (10 units under a cap of 100 a day) at impact 0.7 x 0.04 x sqrt(10 / 1,000) = 0.0028:
    # expected cost 10 x E[S_1] x 0.0028 = 2.80 (no drift: E[S_1] = 100, in closed form)
    assert recovery["days"] == 1
    assert recovery["impact_cost"] == "2.80"
    # 900 x (1 - 0.0028) = 897.48 expected, within 4 of its reported standard errors (a normal mean: this check
    # fails by chance once in 16,000 runs)
    expected = Decimal(recovery["expected"]["value"])
    error = Decimal(recovery["expected"]["standard_error"])
    assert abs(expected - Decimal("897.48")) <= 4 * error
    assert report.recovery_expected == expected
    # the standard valuations are all there, and the audit trail has the computation, once
    # (ranked: affordable first, then by expected PV)
    valued = report.results["valuations"]
    assert sorted(v["name"] for v in valued) == [
        "extend_12m",
        "extend_24m",
        "interest_only_6m",
        "reduce_half_extend_12m",
        "top_up_extend_12m",
    ]
    order = [(not v["affordable"], -Decimal(v["expected_pv"]["value"])) for v in valued]
    assert order == sorted(order)
    assert len(report.results["schedules"]["extend_12m"]) == 12
    events = AuditEvent.objects.filter(action="feasibility.report", account_id=case.account_id)
    assert events.count() == 1
    assert (events.get().object_id, events.get().payload["case_id"]) == (report.pk, case.pk)
    assert audit_verify().ok


@pytest.mark.django_db
@FAST
def test_a_margin_call_is_computed_once_however_often_the_task_runs() -> None:
    case = _called("CALL", btc())
    before = AuditEvent.objects.count()

    # when the margin-call computation runs again (a redelivered task) and the sweep runs again
    assert feasibility_compute(case_ids=[case.pk], trigger="margin_call") == []
    with TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)

    # then nothing more is stored
    assert FeasibilityReport.objects.filter(case=case).count() == 1
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
@FAST
def test_only_cases_in_margin_call_get_the_margin_call_report_but_any_case_on_demand() -> None:
    instrument = btc()
    warning = account("WARN", instrument, band="warning")
    cases_apply_risk(sweep_id=sweep_only().pk)
    case = Case.objects.get(account=warning)
    assert case.state == CaseState.WARNING
    assert feasibility_compute(case_ids=[case.pk], trigger="margin_call") == []

    # on demand with a key: computed once under that key
    first = feasibility_compute(case_ids=[case.pk], key="officer-1")
    again = feasibility_compute(case_ids=[case.pk], key="officer-1")
    assert len(first) == 1
    assert again == []
    assert FeasibilityReport.objects.get(pk=first[0]).trigger == "on_demand"


def _figures(case: Case) -> tuple[Any, ...]:
    case.refresh_from_db()
    return (case.report_at, case.report_expected_loss, case.report_recovery_expected, case.report_recommended)


def _report_figures(report: FeasibilityReport) -> tuple[Any, ...]:
    return (report.created_at, report.expected_loss, report.recovery_expected, report.recommended)


@pytest.mark.django_db
@FAST
def test_the_case_keeps_its_latest_reports_figures_for_the_queue() -> None:
    """The queue sorts on the latest report's expected loss without reading reports: the service that stores a
    report keeps its figures on the case (Case.report_*), in the same transaction."""
    # given a case in margin call: its first report's figures are on the case
    case = _called("CALL", btc())
    first = FeasibilityReport.objects.get(case=case)
    assert _figures(case) == _report_figures(first)
    assert first.expected_loss is not None

    # when the client sells half the position and an officer asks for a new report an hour later
    Position.objects.filter(account=case.account).update(quantity=Decimal(5))
    later = timezone.now() + timedelta(hours=1)
    (second_id,) = feasibility_compute(case_ids=[case.pk], key="officer-1", now=later)

    # then the case carries the new report's figures, a larger expected loss (less to sell against the same debt)
    second = FeasibilityReport.objects.get(pk=second_id)
    assert second.expected_loss > first.expected_loss
    assert _figures(case) == _report_figures(second)

    # and a report computed for an earlier moment (stored last, but not the latest) leaves the latest's figures
    Position.objects.filter(account=case.account).update(quantity=Decimal(10))
    (earlier_id,) = feasibility_compute(case_ids=[case.pk], key="officer-2", now=later - timedelta(minutes=30))
    assert FeasibilityReport.objects.get(pk=earlier_id).expected_loss != second.expected_loss
    assert _figures(case) == _report_figures(second)
    latest = FeasibilityReport.objects.filter(case=case).order_by("-created_at", "-pk").first()
    assert latest is not None
    assert latest.pk == second.pk


@pytest.mark.django_db
@FAST
def test_a_stored_report_is_reproduced_exactly_and_a_changed_one_is_caught() -> None:
    report = FeasibilityReport.objects.get(case=_called("CALL", btc()))

    # when recomputed from its stored inputs in a fresh market (no paths kept from before)
    recomputed = feasibility_recompute(report_id=report.pk)

    # then every figure is the same string
    assert recomputed.reproduced
    assert recomputed.results == {k: report.results[k] for k in recomputed.results}

    # when a stored input is changed (the debt, say), the recomputation names what moved
    inputs = report.inputs
    inputs["account"]["debt"] = 800.0
    FeasibilityReport.objects.filter(pk=report.pk).update(inputs=inputs)
    recomputed = feasibility_recompute(report_id=report.pk)
    assert not recomputed.reproduced
    # (equity at today's prices: 10 x 100 - 750 = 250, now 200)
    assert "loss_capacity.equity: stored '250.00', now '200.00'" in recomputed.differences
    assert any(d.startswith("recovery.lender_receipt.value: stored '750.00'") for d in recomputed.differences)

    with pytest.raises(NotFoundError, match="feasibility report 999999 does not exist"):
        feasibility_recompute(report_id=999999)


@pytest.mark.django_db
@FAST
def test_a_report_of_the_first_model_stays_readable_and_its_recomputation_names_what_the_model_changed() -> None:
    # given a report as the first model stored it: no loan rate in its inputs, no rate on its candidates, none of
    # the newer parameters, and its own figures (the liquidation value undiscounted, no recourse)
    report = FeasibilityReport.objects.get(case=_called("CALL", btc()))
    inputs, parameters, results = report.inputs, report.parameters, report.results
    del inputs["account"]["contract_rate"]
    for candidate in inputs["candidates"]:
        del candidate["rate_annual"]
    for name in ("collection_rate", "collection_lag_months", "redefault_cost_fixed", "redefault_cost_rate"):
        del parameters[name]
    del results["recovery"]["lender_value"]
    FeasibilityReport.objects.filter(pk=report.pk).update(
        model_version="feasibility-1.0", inputs=inputs, parameters=parameters, results=results
    )
    old = FeasibilityReport.objects.get(pk=report.pk)

    # when it is read and recomputed
    recomputed = feasibility_recompute(report_id=old.pk)

    # then it reads (its liquidation value is its receipt), and the recomputation says which model made it and what
    # this one gives instead
    assert liquidation_value(old.results) == old.results["recovery"]["lender_receipt"]
    assert recomputed.differences[0] == "model_version: stored 'feasibility-1.0', now 'feasibility-2.0'"
    assert any(d.startswith("recovery.lender_value: stored None") for d in recomputed.differences)


@pytest.mark.django_db
@FAST
def test_a_preview_values_any_terms_and_refuses_bad_ones_naming_the_field() -> None:
    case = _called("CALL", btc())
    position = Position.objects.get(account=case.account)

    preview = terms_preview(
        case_id=case.pk,
        terms={"term_months": 12, "rate_annual": "0.06", "collateral_to_add": "100", "reduce": [[position.pk, "0.2"]]},
    )
    # 2 BTC sold now in one day at 100 x (1 - 0.7 x 0.04 x sqrt(2 / 1,000)) = 99.874780...: 199.749561, counted
    # after the 10% haircut as liquidation counts it, 179.774604 -> 179.77 repays the loan first (no accrued
    # interest), so 750 - 179.77 = 570.23 is scheduled over 12 months at 6%
    assert preview.valuation["reduction_proceeds"] == "179.77"
    assert preview.schedule.terms.principal == Decimal("570.23")
    assert len(preview.schedule.installments) == 12
    assert sum(i.principal for i in preview.schedule.installments) == Decimal("570.23")
    assert preview.valuation["affordable"] is False  # the client declared no external capacity for the 100
    assert not FeasibilityReport.objects.filter(case=case, trigger="on_demand").exists()

    bad: list[tuple[dict[str, Any], str]] = [
        ({"rate_annual": "0.05"}, "term_months"),
        ({"term_months": 12, "rate_annual": 0.05}, "rate_annual"),
        ({"term_months": 12, "term": 3}, "term"),
        ({"term_months": 12, "reduce": [[999999, "0.5"]]}, "reduce"),
        ({"term_months": 12, "kind": "balloon"}, "kind"),
        ({"term_months": 500}, "term_months"),
    ]
    for terms, field in bad:
        with pytest.raises(ValidationError) as caught:
            terms_preview(case_id=case.pk, terms=terms)
        assert caught.value.context.get("field") == field or str(caught.value).startswith(field), (terms, caught)


@pytest.mark.django_db
def test_the_inputs_share_liquidity_with_other_distressed_accounts_and_the_same_owner() -> None:
    instrument = btc()
    first = account("A", instrument, band="margin_call")
    second = account("B", instrument, band="margin_call")
    healthy_other = account("H", instrument, band="healthy")
    # the same beneficial owner holds a healthy account with 10 BTC too
    group = ClientGroup.objects.create(code="FAMILY", name="Family")
    Client.objects.filter(accounts__in=[first, healthy_other]).update(group=group)
    sweep_only()
    cases = [Case.objects.create(account=a, opened_at=timezone.now(), state=CaseState.WARNING) for a in (first, second)]
    Case.objects.filter(pk__in=[c.pk for c in cases]).update(state=CaseState.MARGIN_CALL)
    cases = list(Case.objects.filter(pk__in=[c.pk for c in cases]).select_related("account__client").order_by("pk"))

    facts = feasibility_facts_load(cases, timezone.now())

    # A sells alongside B (distressed) and H (its owner's): 20 BTC; B alongside A only: 10
    assert facts[cases[0].pk].inputs.exposures[0].co_sold == 20.0
    assert facts[cases[1].pk].inputs.exposures[0].co_sold == 10.0


@pytest.mark.django_db
def test_the_correlation_comes_from_the_price_history() -> None:
    # given two coins with 60 days of closes whose log returns are correlated
    now = timezone.now()
    rng = np.random.default_rng(3)
    z = rng.standard_normal((2, 60))
    returns = np.vstack([z[0], 0.6 * z[0] + 0.8 * z[1]]) * 0.03
    coins = []
    for k, symbol in enumerate(("AAA", "BBB")):
        coin = Instrument.objects.create(
            symbol=symbol,
            kind="spot",
            initial_rate=Decimal("0.5"),
            maintenance_rate=Decimal("0.3"),
            scenario_class="crypto",
            daily_volatility=Decimal("0.03"),
            average_daily_volume=Decimal("1000"),
        )
        closes = 100 * np.exp(np.concatenate([[0.0], np.cumsum(returns[k])]))
        Price.objects.bulk_create(
            Price(instrument=coin, time=now - timedelta(days=60 - d), price=Decimal(f"{closes[d]:.8f}"))
            for d in range(61)
        )
        coins.append(coin)
    client = Client.objects.create(code="C", name="C")
    holder = MarginAccount.objects.create(code="X", client=client)
    for coin in coins:
        Position.objects.create(account=holder, instrument=coin, quantity=Decimal(5))
    MarginLoan.objects.create(account=holder, principal=Decimal(500), rate_annual=Decimal("0.1"))
    case = Case.objects.create(account=holder, opened_at=now)

    inputs = feasibility_facts_load([Case.objects.select_related("account__client").get(pk=case.pk)], now)[
        case.pk
    ].inputs

    # then the pair's correlation is the sample correlation of the stored closes' log returns
    stored = np.array(
        [
            [
                math.log(float(p))
                for p in Price.objects.filter(instrument=c).order_by("time").values_list("price", flat=True)
            ]
            for c in coins
        ]
    )
    expected = np.corrcoef(np.diff(stored, axis=1))[0, 1]
    assert inputs.correlation[0][1] == pytest.approx(expected, abs=1e-12)
    assert inputs.correlation[1][0] == inputs.correlation[0][1]
    assert inputs.debt == 500.0

    # configured instead: every pair takes the configured value
    with override_settings(
        WORKOUT_FEASIBILITY_CORRELATION_FROM_HISTORY=False, WORKOUT_FEASIBILITY_DEFAULT_CORRELATION=0.3
    ):
        configured = feasibility_facts_load([Case.objects.select_related("account__client").get(pk=case.pk)], now)
    assert configured[case.pk].inputs.correlation == ((1.0, 0.3), (0.3, 1.0))


@pytest.mark.django_db
@FAST
def test_the_beat_redrives_margin_calls_whose_task_was_lost() -> None:
    # given a case in margin call whose feasibility task never ran (the broker was down at commit)
    instrument = btc()
    margin_account = account("LOST", instrument, band="margin_call")
    sweep = sweep_only()
    cases_apply_risk(sweep_id=sweep.pk)  # in the test's transaction, never committed: its on-commit task is lost
    case = Case.objects.get(account=margin_account)
    assert case.state == CaseState.MARGIN_CALL
    assert not FeasibilityReport.objects.filter(case=case).exists()
    assert feasibility_due_case_ids() == [case.pk]

    # when the beat runs, the case is computed; the next beat finds nothing
    assert feasibility_redrive_task() == 1
    assert FeasibilityReport.objects.filter(case=case).count() == 1
    assert feasibility_due_case_ids() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@FAST
def test_two_runs_at_once_store_one_report_and_one_event() -> None:
    case = _called("RACE", btc())
    events = AuditEvent.objects.filter(action="feasibility.report").count()

    # when two requests under one key compute at once (both compute; the store re-checks under the case lock)
    outcomes = run_together(
        lambda: feasibility_compute(case_ids=[case.pk], key="race"),
        lambda: feasibility_compute(case_ids=[case.pk], key="race"),
    )

    # then one stored its report and its event, the other nothing
    assert [o.error for o in outcomes] == [None, None]
    assert sorted(len(o.value) for o in outcomes) == [0, 1]
    assert FeasibilityReport.objects.filter(case=case, key="race").count() == 1
    assert AuditEvent.objects.filter(action="feasibility.report").count() == events + 1
    assert audit_verify().ok


@pytest.mark.postgres
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_the_task_delivered_twice_to_a_real_worker_stores_each_report_once() -> None:
    # given three accounts in margin call whose feasibility has not run (cases made directly, no task queued)
    instrument = btc()
    now = timezone.now()
    accounts_called = [account(f"W{i}", instrument, band="margin_call") for i in range(3)]
    sweep_only()
    made = Case.objects.bulk_create(
        Case(account=a, opened_at=now, called_at=now, deadline=now + timedelta(hours=24)) for a in accounts_called
    )
    Case.objects.filter(pk__in=[c.pk for c in made]).update(state=CaseState.MARGIN_CALL)
    case_ids = sorted(c.pk for c in made)

    # when the same task is sent twice to a worker with two processes (they may run at once)
    with worker(concurrency=2, env={"WORKOUT_FEASIBILITY_PATHS": "500"}) as w:
        first = w.send("restructuring.tasks.compute_feasibility", case_ids=case_ids, trigger="margin_call")
        second = w.send("restructuring.tasks.compute_feasibility", case_ids=case_ids, trigger="margin_call")
        results = [w.wait_for_results(1, task_id=task_id)[0] for task_id in (first, second)]

    # then between them the two deliveries stored each case's report once, with one audit event each
    stored = sorted(results[0] + results[1])
    assert len(stored) == 3
    assert sorted(FeasibilityReport.objects.values_list("case_id", flat=True)) == case_ids
    assert AuditEvent.objects.filter(action="feasibility.report").count() == 3
    assert audit_verify().ok
