"""Regressions: reliability faults these tests once provoked, since fixed (a deadlock between a booking and
another account's liquidation on one instrument; a case that cannot be planned holding up every later
deadline)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import MarginLoan, Position
from restructuring.models import Case, CaseState
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.liquidation import deadlines_run
from tests.restructuring.helpers import accounts, assert_invariants, btc, deadlines_pass, sweep_only

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_one_case_that_cannot_be_planned_does_not_hold_up_the_other_due_cases() -> None:
    """deadlines_run promises "each in its own transaction (one case failing does not hold up the others)",
    but catches only CaseTransitionError. A case whose plan the kernel refuses (here 5,000 BTC: at 10% of
    1,000 a day it needs 50 days > WORKOUT_LIQUIDATION_MAX_DAYS = 30, a ValueError) aborts the whole run, so
    every case due after it is never liquidated: deadlines_run_task fails the same way at every beat."""
    # given two margin calls past their deadline, the earlier one too big to liquidate within 30 days
    instrument = btc()
    [too_big] = accounts(instrument, "margin_call", 1, prefix="BIG")
    Position.objects.filter(account=too_big).update(quantity=Decimal("5000"))
    MarginLoan.objects.filter(account=too_big).update(principal=Decimal("375000"))  # equity 125,000 < 150,000
    [ordinary] = accounts(instrument, "margin_call", 1)
    cases_apply_risk(sweep_id=sweep_only().pk)
    big_case, ordinary_case = Case.objects.get(account=too_big), Case.objects.get(account=ordinary)
    deadlines_pass([big_case, ordinary_case])

    # when the deadlines run
    moved = deadlines_run()

    # then the ordinary case goes to liquidation; the one that cannot be planned stays called (for an officer)
    assert moved == [ordinary_case.pk]
    assert Case.objects.get(pk=ordinary_case.pk).state == CaseState.LIQUIDATING
    assert Case.objects.get(pk=big_case.pk).state == CaseState.MARGIN_CALL
    assert_invariants()
