"""The sweep drives the cases: open in warning, margin call below maintenance, cure when healthy again."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import MarginAccount
from accounts.services.sweep import sweep_run
from core.audit import audit_verify
from core.models import AuditEvent
from restructuring.models import Case, CaseState
from restructuring.services.case_sweep import cases_apply_risk
from tests.accounts.test_sweep import _account, _btc, _shock_btc

pytestmark = pytest.mark.django_db


@pytest.fixture
def book() -> dict[str, MarginAccount]:
    # 10 BTC at 100 in each account: maintenance 300, initial 500 (rates 30% / 50%)
    btc = _btc()
    return {
        "healthy": _account("HEALTHY", btc, cash="1000", btc_quantity="10", loan="500"),  # equity 1500
        "warning": _account("WARNING", btc, cash="0", btc_quantity="10", loan="660"),  # equity 340
        "margin_call": _account("CALL", btc, cash="0", btc_quantity="10", loan="750"),  # equity 250
        "critical": _account("CRITICAL", btc, cash="0", btc_quantity="10", loan="1100"),  # equity -100
    }


def _case(account: MarginAccount) -> Case:
    return Case.objects.get(account=account)


def test_sweep_opens_cases_with_margin_calls_below_maintenance(book: dict[str, MarginAccount]) -> None:
    # given a swept book
    sweep = sweep_run()
    before = timezone.now()

    # when
    moves = cases_apply_risk(sweep_id=sweep.pk)

    # then the warning account has a case in WARNING, the two below maintenance a margin call each, asking
    # for the shortfall to the initial requirement: 500 - 250 = 250 and 500 - (-100) = 600
    assert moves.as_dict() == {"opened": 3, "margin_calls": 2, "cured": 0}
    assert not Case.objects.filter(account=book["healthy"]).exists()
    assert _case(book["warning"]).state == CaseState.WARNING
    assert _case(book["warning"]).call_amount is None
    call = _case(book["margin_call"])
    assert call.state == CaseState.MARGIN_CALL
    assert call.call_amount == Decimal("250.00")
    assert call.call_basis == "initial"
    assert call.deadline is not None
    assert before + timedelta(hours=24) <= call.deadline <= timezone.now() + timedelta(hours=24)
    assert _case(book["critical"]).call_amount == Decimal("600.00")

    # and every step is one audit event, in order, by the sweep, and the chain verifies
    events = list(AuditEvent.objects.order_by("sequence").values_list("action", "account_id", "from_state", "to_state"))
    assert sorted(events) == sorted(
        [
            ("case.open", book["warning"].pk, "", "warning"),
            ("case.open", book["margin_call"].pk, "", "warning"),
            ("case.margin_call", book["margin_call"].pk, "warning", "margin_call"),
            ("case.open", book["critical"].pk, "", "warning"),
            ("case.margin_call", book["critical"].pk, "warning", "margin_call"),
        ]
    )
    margin_call_event = AuditEvent.objects.get(action="case.margin_call", account_id=book["margin_call"].pk)
    assert margin_call_event.system_actor == "sweep"
    assert margin_call_event.payload["call_amount"] == "250.00"
    assert margin_call_event.payload["sweep_id"] == sweep.pk
    assert audit_verify().ok


def test_a_second_run_changes_nothing(book: dict[str, MarginAccount]) -> None:
    sweep = sweep_run()
    cases_apply_risk(sweep_id=sweep.pk)
    states = dict(Case.objects.values_list("account_id", "state"))
    events = AuditEvent.objects.count()

    moves = cases_apply_risk(sweep_id=sweep.pk)

    assert moves.as_dict() == {"opened": 0, "margin_calls": 0, "cured": 0}
    assert dict(Case.objects.values_list("account_id", "state")) == states
    assert AuditEvent.objects.count() == events


def test_a_fall_escalates_and_a_recovery_cures(book: dict[str, MarginAccount]) -> None:
    # given the cases of the first sweep
    cases_apply_risk(sweep_id=sweep_run().pk)

    # when BTC falls to 90: the warning account's equity 900 - 660 = 240 < 270, initial 450
    _shock_btc("90")
    moves = cases_apply_risk(sweep_id=sweep_run().pk)

    # then its case gets a margin call for 450 - 240 = 210
    assert moves.as_dict() == {"opened": 0, "margin_calls": 1, "cured": 0}
    warning = _case(book["warning"])
    assert warning.state == CaseState.MARGIN_CALL
    assert warning.call_amount == Decimal("210.00")

    # when BTC rises to 120: warning 1200 - 660 = 540 and call 1200 - 750 = 450 are at least 1.25 x 360
    # (healthy); critical 1200 - 1100 = 100 stays below maintenance
    _shock_btc("120")
    moves = cases_apply_risk(sweep_id=sweep_run().pk)

    # then two cases are cured and closed, and a new episode could open later
    assert moves.as_dict() == {"opened": 0, "margin_calls": 0, "cured": 2}
    for name in ("warning", "margin_call"):
        cured = _case(book[name])
        assert cured.state == CaseState.CURED
        assert cured.closed_at is not None
    assert _case(book["critical"]).state == CaseState.MARGIN_CALL
    assert audit_verify().ok
    assert AuditEvent.objects.filter(action="case.cure").count() == 2


def test_a_new_episode_opens_a_new_case_after_a_cure(book: dict[str, MarginAccount]) -> None:
    cases_apply_risk(sweep_id=sweep_run().pk)
    _shock_btc("120")
    cases_apply_risk(sweep_id=sweep_run().pk)

    _shock_btc("90")
    cases_apply_risk(sweep_id=sweep_run().pk)

    # the warning account now has its cured case and a new one with a margin call
    assert list(Case.objects.filter(account=book["warning"]).order_by("pk").values_list("state", flat=True)) == [
        CaseState.CURED,
        CaseState.MARGIN_CALL,
    ]


def test_case_moves_take_a_fixed_number_of_queries(book: dict[str, MarginAccount]) -> None:
    # given 3 accounts to move, then 43 (40 more below maintenance)
    btc = book["healthy"].positions.get().instrument
    sweep = sweep_run()
    with CaptureQueriesContext(connection) as few:
        cases_apply_risk(sweep_id=sweep.pk)
    Case.objects.all().delete()
    for i in range(40):
        _account(f"MORE{i}", btc, cash="0", btc_quantity="10", loan="800")  # equity 200 < 300
    sweep = sweep_run()

    # when
    with CaptureQueriesContext(connection) as many:
        moves = cases_apply_risk(sweep_id=sweep.pk)

    # then no statement per case: the same count, but for the batches the portable path's bulk inserts
    # are cut into (SQLite's 999 parameters per statement)
    assert moves.opened == 43
    extra = 0
    if connection.vendor != "postgresql":
        for model, before, after in ((Case, 3, 43), (AuditEvent, 5, 86)):
            batch = connection.ops.bulk_batch_size(list(model._meta.concrete_fields), [None] * after)
            extra += math.ceil(after / batch) - math.ceil(before / batch)
    assert len(many.captured_queries) == len(few.captured_queries) + extra
