"""Partial payments: any amount up to what the schedule owes is taken and allocated by the waterfall (fees, then
interest, then principal, oldest installment first), the balance carried; a payment may cover several
installments. Worked by hand below; the loan follows the schedule's unpaid principal through the ledger."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import ProgrammingError, connection, transaction
from django.test import override_settings

from accounts.models import LoanStatus, MarginLoan
from core.audit import audit_verify
from core.errors import ConflictError, ValidationError
from core.models import AuditEvent
from restructuring.allocation import AllocationError, Owing, allocate
from restructuring.models import Case, CaseState, Installment, InstallmentStatus, Repayment, RepaymentAllocation
from restructuring.services.negotiation.repayments import repayment_record, repayment_summary
from tests.restructuring.restructured import restructured

FAST = override_settings(WORKOUT_FEASIBILITY_PATHS=500)
D = Decimal

# 750.00 over 3 months at 12% a year (1% a month), level, with 30.00 of accrued interest carried forward as
# arrears (10.00 an installment, without interest). By hand: A = 750 x 0.01 / (1 - 1.01^-3) = 255.0166... -> 255.02.
#   1: interest 750.00 x 1% = 7.50, principal 255.02 - 7.50 = 247.52, fees 10.00: 265.02; balance 502.48
#   2: interest 502.48 x 1% = 5.02 (5.0248), principal 250.00, fees 10.00:          265.02; balance 252.48
#   3: interest 252.48 x 1% = 2.52 (2.5248), principal 252.48 (the rest), fees 10.00: 265.00; balance 0
TERMS = {"term_months": 3, "rate_annual": "0.12", "arrears_treatment": "carry_forward", "collateral_to_add": "0"}


def _parts(i: Installment) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    i.refresh_from_db()
    return (i.arrears_paid, i.interest_paid, i.principal_paid, i.paid_amount)


def _principal(case: Case) -> Decimal:
    return MarginLoan.objects.filter(account_id=case.account_id).order_by("-pk").values_list("principal", flat=True)[0]


def test_the_waterfall_by_hand() -> None:
    owing = [
        Owing(installment_id=12, number=2, arrears=D("10.00"), interest=D("5.02"), principal=D("250.00")),
        Owing(installment_id=11, number=1, arrears=D("10.00"), interest=D("7.50"), principal=D("247.52")),
        Owing(installment_id=13, number=3, arrears=D("10.00"), interest=D("2.52"), principal=D("252.48")),
    ]
    # 300.00: installment 1 whole (265.02), then 34.98 into 2: its fees 10.00, its interest 5.02, principal 19.96
    one, two = allocate(D("300.00"), owing)
    assert (one.number, one.arrears, one.interest, one.principal, one.settles) == (
        1,
        D("10.00"),
        D("7.50"),
        D("247.52"),
        True,
    )
    assert (two.number, two.arrears, two.interest, two.principal, two.settles) == (
        2,
        D("10.00"),
        D("5.02"),
        D("19.96"),
        False,
    )
    # 12.00 only: the fees, then 2.00 of the interest, oldest first
    [first] = allocate(D("12.00"), owing)
    assert (first.number, first.arrears, first.interest, first.principal) == (1, D("10.00"), D("2.00"), D("0"))
    with pytest.raises(AllocationError, match=r"more than the 795\.04 the schedule still owes"):
        allocate(D("795.05"), owing)
    for bad in (D("0"), D("-1"), D("NaN")):
        with pytest.raises(AllocationError):
            allocate(bad, owing)


@pytest.mark.django_db
@FAST
def test_partial_payments_are_allocated_by_the_waterfall_and_the_balance_carried() -> None:
    case, (one, two, three), alice = restructured(TERMS, accrued=D("30.00"))
    assert [(i.arrears, i.interest, i.principal, i.total) for i in (one, two, three)] == [
        (D("10.00"), D("7.50"), D("247.52"), D("265.02")),
        (D("10.00"), D("5.02"), D("250.00"), D("265.02")),
        (D("10.00"), D("2.52"), D("252.48"), D("265.00")),
    ]
    assert _principal(case) == D("750.00")

    # 300.00, recorded from row 3: still oldest first. 1 is paid, 2 partly (34.98 of it), 3 untouched
    first = repayment_record(installment_id=three.pk, amount=D("300.00"), actor=alice)
    assert _parts(one) == (D("10.00"), D("7.50"), D("247.52"), D("265.02"))
    assert _parts(two) == (D("10.00"), D("5.02"), D("19.96"), D("34.98"))
    assert _parts(three) == (0, 0, 0, 0)
    assert [one.status, two.status, three.status] == ["paid", "due", "due"]
    assert two.partly_paid
    assert two.outstanding == D("230.04")
    assert _principal(case) == D("482.52") == first.principal_after  # 750.00 - 247.52 - 19.96
    assert repayment_summary(first) == (
        "Payment of $300.00 recorded: installment 1 paid, installment 2 partly paid ($230.04 still due)."
    )

    # 5.00: fees and interest of 2 are paid, so all of it is principal
    repayment_record(installment_id=two.pk, amount=D("5.00"), actor=alice)
    assert _parts(two) == (D("10.00"), D("5.02"), D("24.96"), D("39.98"))
    assert _principal(case) == D("477.52")

    # more than the 490.04 still owed (225.04 + 265.00) is refused, naming the amount; nothing is written
    with pytest.raises(ValidationError, match=r"more than the 490\.04 the schedule still owes") as caught:
        repayment_record(installment_id=two.pk, amount=D("490.05"), actor=alice)
    assert caught.value.context["field"] == "amount"
    with pytest.raises(ValidationError, match="USD"):  # a third decimal place of a dollar
        repayment_record(installment_id=two.pk, amount=D("1.005"), actor=alice)
    assert Repayment.objects.filter(case=case).count() == 2

    # 490.04 covers two installments and closes the loan and the case
    last = repayment_record(installment_id=two.pk, amount=D("490.04"), actor=alice)
    assert [(a.installment.number, a.total) for a in last.allocations.order_by("installment__number")] == [
        (2, D("225.04")),
        (3, D("265.00")),
    ]
    for each in (one, two, three):
        each.refresh_from_db()
        assert (each.status, each.paid_amount) == (InstallmentStatus.PAID, each.total)
    assert sum(Repayment.objects.filter(case=case).values_list("amount", flat=True)) == D("795.04")
    loan = MarginLoan.objects.filter(account_id=case.account_id).order_by("-pk").first()
    assert loan is not None
    assert (loan.principal, loan.status) == (D("0"), LoanStatus.CLOSED)
    assert Case.objects.get(pk=case.pk).state == CaseState.CLOSED

    events = list(AuditEvent.objects.filter(action="repayment.record").order_by("sequence"))
    assert [e.payload["amount"] for e in events] == ["300.00", "5.00", "490.04"]
    assert events[0].payload["allocation"] == [
        {"number": 1, "fees": "10.00", "interest": "7.50", "principal": "247.52", "settles": True},
        {"number": 2, "fees": "10.00", "interest": "5.02", "principal": "19.96", "settles": False},
    ]
    paid = AuditEvent.objects.filter(action="installment.paid").order_by("sequence")
    assert [e.payload["number"] for e in paid] == [1, 2, 3]
    assert audit_verify().ok


@pytest.mark.django_db
def test_a_payment_on_a_loan_that_is_no_longer_active_is_refused_and_nothing_is_written() -> None:
    """The schedule still owes, but the account's loan was closed elsewhere (liquidated, written off by the
    ledger): the payment is refused as a conflict naming the account, not a server error, and nothing is kept."""
    case, schedule, alice = restructured(TERMS, accrued=D("30.00"))
    MarginLoan.objects.filter(account_id=case.account_id).update(status=LoanStatus.CLOSED)
    events = AuditEvent.objects.count()
    with pytest.raises(ConflictError, match=f"account {case.account_id} has no active loan"):
        repayment_record(installment_id=schedule[0].pk, amount=D("100.00"), actor=alice)
    assert not Repayment.objects.filter(case=case).exists()
    assert _parts(schedule[0]) == (0, 0, 0, 0)
    assert AuditEvent.objects.count() == events


@pytest.mark.django_db(transaction=True)
@FAST
def test_a_payment_and_its_allocation_are_never_changed() -> None:
    """Corrections are new entries: the database refuses UPDATE and DELETE of either, whoever asks."""
    _, schedule, alice = restructured(TERMS, accrued=D("30.00"))
    payment = repayment_record(installment_id=schedule[0].pk, amount=D("100.00"), actor=alice)
    for table, column in (("restructuring_repayment", "amount"), ("restructuring_repaymentallocation", "principal")):
        key = "id" if table == "restructuring_repayment" else "repayment_id"
        for sql in (f"UPDATE {table} SET {column} = 1 WHERE {key} = %s", f"DELETE FROM {table} WHERE {key} = %s"):
            with (
                pytest.raises(ProgrammingError, match="Cannot update or delete"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                cursor.execute(sql, [payment.pk])
    assert Repayment.objects.get(pk=payment.pk).amount == D("100.00")
    assert RepaymentAllocation.objects.filter(repayment=payment).count() == 1
