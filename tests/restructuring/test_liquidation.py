"""The liquidation path: deadline -> LIQUIDATING with a plan -> fills booked -> LIQUIDATED or WRITTEN_OFF."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Client, Instrument, LoanStatus, MarginAccount, MarginLoan, Position, Price
from accounts.services.sweep import sweep_run
from core.audit import audit_verify
from core.errors import ValidationError
from core.models import AuditEvent
from restructuring.models import Case, CaseState, LiquidationPlan, LiquidationStatus
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.liquidation import CaseTransitionError, case_liquidate, deadlines_run, liquidation_book

pytestmark = pytest.mark.django_db


@pytest.fixture
def btc() -> Instrument:
    # daily volume 1,000 units, daily volatility 4%: at 10% participation 100 units a day
    instrument = Instrument.objects.create(
        symbol="BTC",
        kind="spot",
        initial_rate=Decimal("0.5"),
        maintenance_rate=Decimal("0.3"),
        scenario_class="crypto",
        daily_volatility=Decimal("0.04"),
        average_daily_volume=Decimal("1000"),
    )
    Price.objects.create(instrument=instrument, time=timezone.now() - timedelta(minutes=1), price=Decimal("100"))
    return instrument


def _account(code: str, btc: Instrument, *, quantity: str, loan: str, cash: str = "0") -> MarginAccount:
    account = MarginAccount.objects.create(
        code=code, client=Client.objects.create(code=f"C{code}", name=code), cash=Decimal(cash)
    )
    Position.objects.create(account=account, instrument=btc, quantity=Decimal(quantity), entry_price=Decimal(90))
    MarginLoan.objects.create(account=account, principal=Decimal(loan), rate_annual=Decimal("0.1"))
    return account


def _margin_call_past_deadline(account: MarginAccount) -> Case:
    cases_apply_risk(sweep_id=sweep_run().pk)
    case = Case.objects.get(account=account)
    assert case.state == CaseState.MARGIN_CALL
    Case.objects.filter(pk=case.pk).update(deadline=timezone.now() - timedelta(hours=2))
    return case


def test_a_missed_deadline_issues_a_liquidation_plan(btc: Instrument) -> None:
    # given 10 BTC at 100 against a 750 loan (equity 250 < maintenance 300): a margin call, two hours late
    account = _account("LATE", btc, quantity="10", loan="750")
    case = _margin_call_past_deadline(account)

    # when the deadlines run (grace: 1 hour)
    moved = deadlines_run()

    # then the case is liquidating, with one order selling 10 BTC on day 0: impact 0.7 x 0.04 x sqrt(10 / 1,000)
    # = 0.0028, expected price 100 x (1 - 0.0028) = 99.72, proceeds 997.20, impact cost 2.80
    assert moved == [case.pk]
    case.refresh_from_db()
    assert case.state == CaseState.LIQUIDATING
    plan = case.liquidation_plan
    order = plan.orders.get()
    assert (order.day, order.quantity, order.expected_price) == (0, Decimal("10.00000000"), Decimal("99.72000000"))
    assert plan.expected_proceeds == Decimal("997.20")
    assert plan.impact_cost == Decimal("2.80")
    assert plan.days == 1
    assert plan.inputs["holdings"][0]["symbol"] == "BTC"
    event = AuditEvent.objects.get(action="case.liquidate")
    assert (event.system_actor, event.from_state, event.to_state) == ("deadlines", "margin_call", "liquidating")
    assert event.payload["expected_proceeds"] == "997.20"


def test_deadlines_leave_calls_within_their_grace(btc: Instrument) -> None:
    account = _account("ONTIME", btc, quantity="10", loan="750")
    cases_apply_risk(sweep_id=sweep_run().pk)
    Case.objects.filter(account=account).update(deadline=timezone.now() - timedelta(minutes=30))

    assert deadlines_run() == []
    assert Case.objects.get(account=account).state == CaseState.MARGIN_CALL


def test_liquidating_twice_returns_the_same_plan(btc: Instrument) -> None:
    account = _account("TWICE", btc, quantity="10", loan="750")
    case = _margin_call_past_deadline(account)

    first = case_liquidate(case_id=case.pk, reason="deadline")
    second = case_liquidate(case_id=case.pk, reason="deadline")

    assert first.pk == second.pk
    assert AuditEvent.objects.filter(action="case.liquidate").count() == 1


def test_a_case_that_is_not_called_cannot_be_liquidated(btc: Instrument) -> None:
    _account("WARN", btc, quantity="10", loan="660")  # equity 340: warning only
    cases_apply_risk(sweep_id=sweep_run().pk)
    case = Case.objects.get()

    with pytest.raises(CaseTransitionError, match=f"case {case.pk} is warning: it cannot go to liquidation"):
        case_liquidate(case_id=case.pk, reason="officer")
    assert not AuditEvent.objects.filter(action="case.liquidate").exists()


def test_proceeds_above_the_debt_repay_it_and_close_the_loan(btc: Instrument) -> None:
    # given a liquidating account: 10 BTC, loan 750, accrued interest 20
    account = _account("REPAY", btc, quantity="10", loan="730")
    MarginLoan.objects.filter(account=account).update(accrued_interest=Decimal("20"))
    plan = case_liquidate(case_id=_margin_call_past_deadline(account).pk, reason="deadline")

    # when the order fills at its expected price (the demo's fill)
    liquidation_book(plan_id=plan.pk)

    # then 997.20 came in; 20 of interest and 730 of principal were repaid; 247.20 is left in cash
    plan.refresh_from_db()
    account.refresh_from_db()
    loan = MarginLoan.objects.get(account=account)
    assert plan.status == LiquidationStatus.BOOKED
    assert (plan.cash_realised, plan.debt_repaid, plan.shortfall) == (
        Decimal("997.20"),
        Decimal("750.00"),
        Decimal("0.00"),
    )
    assert account.cash == Decimal("247.20")
    assert (loan.principal, loan.accrued_interest, loan.status) == (Decimal(0), Decimal(0), LoanStatus.CLOSED)
    assert Position.objects.get(account=account).quantity == 0
    case = Case.objects.get(account=account)
    assert case.state == CaseState.LIQUIDATED
    assert case.closed_at is not None
    assert audit_verify().ok


def test_proceeds_below_the_debt_write_off_the_shortfall(btc: Instrument) -> None:
    # given 10 BTC against a 1,100 loan (equity -100)
    account = _account("SHORT", btc, quantity="10", loan="1100")
    plan = case_liquidate(case_id=_margin_call_past_deadline(account).pk, reason="deadline")

    # when filled at 99.72
    liquidation_book(plan_id=plan.pk)

    # then 997.20 repays the loan as far as it goes and 1,100 - 997.20 = 102.80 is written off
    case = Case.objects.get(account=account)
    assert case.state == CaseState.WRITTEN_OFF
    assert case.written_off_amount == Decimal("102.80")
    account.refresh_from_db()
    assert account.cash == Decimal("0.00")
    loan = MarginLoan.objects.get(account=account)
    assert loan.status == LoanStatus.CLOSED
    # and money neither appeared nor disappeared: proceeds = repaid; debt = repaid + written off
    plan.refresh_from_db()
    assert plan.cash_realised == plan.debt_repaid == Decimal("997.20")
    assert plan.debt_repaid + plan.shortfall == Decimal("1100.00")
    actions = list(
        AuditEvent.objects.filter(account_id=account.pk).order_by("sequence").values_list("action", flat=True)
    )
    assert actions == [
        "case.open",
        "case.margin_call",
        "case.liquidate",
        "liquidation.fill",
        "case.liquidated",
        "case.write_off",
    ]
    assert audit_verify().ok


def test_fills_are_booked_as_given_and_partial_fills_keep_the_case_liquidating(btc: Instrument) -> None:
    account = _account("PARTIAL", btc, quantity="10", loan="750")
    plan = case_liquidate(case_id=_margin_call_past_deadline(account).pk, reason="deadline")
    order = plan.orders.get()

    # when 4 BTC fill at 99.50
    liquidation_book(plan_id=plan.pk, fills={order.pk: (Decimal("4"), Decimal("99.50"))})

    # then 398.00 is in cash, 6 BTC remain, the case still liquidating and the loan untouched
    account.refresh_from_db()
    assert account.cash == Decimal("398.00")
    assert Position.objects.get(account=account).quantity == Decimal("6")
    assert Case.objects.get(account=account).state == CaseState.LIQUIDATING
    assert MarginLoan.objects.get(account=account).principal == Decimal("750")

    # when the other 6 fill at 99.75: the order is done at the volume-weighted price, the plan settles
    liquidation_book(plan_id=plan.pk, fills={order.pk: (Decimal("6"), Decimal("99.75"))})
    order.refresh_from_db()
    assert order.filled_quantity == Decimal("10")
    assert order.fill_price == Decimal("99.65000000")  # (4 x 99.50 + 6 x 99.75) / 10
    account.refresh_from_db()
    assert account.cash == Decimal("996.50") - Decimal("750")  # 398 + 598.50 in, 750 repaid
    assert Case.objects.get(account=account).state == CaseState.LIQUIDATED

    # each booking left its own event with the fills and the cash they realised, partial or settling
    fills = AuditEvent.objects.filter(action="liquidation.fill", object_id=plan.pk).order_by("sequence")
    assert [(e.payload["fills"], e.payload["cash_realised"], e.payload["settled"]) for e in fills] == [
        ([{"order_id": order.pk, "quantity": "4", "price": "99.50"}], "398.00", False),
        ([{"order_id": order.pk, "quantity": "6", "price": "99.75"}], "598.50", True),
    ]
    assert audit_verify().ok


def test_a_fill_beyond_its_order_is_refused_and_nothing_is_booked(btc: Instrument) -> None:
    account = _account("OVER", btc, quantity="10", loan="750")
    plan = case_liquidate(case_id=_margin_call_past_deadline(account).pk, reason="deadline")
    order = plan.orders.get()

    with pytest.raises(
        ValidationError, match=rf"order {order.pk}: fill 11 @ 99 does not fit the order \(10\.00000000 of"
    ):
        liquidation_book(plan_id=plan.pk, fills={order.pk: (Decimal("11"), Decimal("99"))})

    account.refresh_from_db()
    assert account.cash == Decimal("0")
    assert Position.objects.get(account=account).quantity == Decimal("10")


def test_the_orders_of_a_position_add_up_to_it_exactly(btc: Instrument) -> None:
    # given 1,234.56789 BTC: at 100 a day, 13 slices of which 12 are 100 and the last takes the rest
    account = _account("BIG", btc, quantity="1234.56789", loan="200000")
    plan = case_liquidate(case_id=_margin_call_past_deadline(account).pk, reason="deadline")

    quantities = list(plan.orders.order_by("sequence").values_list("quantity", flat=True))

    assert len(quantities) == 13
    assert sum(quantities) == Decimal("1234.56789")
    assert quantities[-1] == Decimal("34.56789")


def test_the_demo_desk_fills_every_open_plan(btc: Instrument) -> None:
    from io import StringIO

    from django.core.management import CommandError, call_command

    account = _account("DESK", btc, quantity="10", loan="1100")
    plan = case_liquidate(case_id=_margin_call_past_deadline(account).pk, reason="deadline")
    out = StringIO()

    call_command("liquidation_fill", "--all", stdout=out)

    assert f"plan {plan.pk} (case {plan.case_id}): booked, realised 997.20, repaid 997.20, written off 102.80" in (
        out.getvalue()
    )
    assert Case.objects.get(account=account).state == CaseState.WRITTEN_OFF
    assert AuditEvent.objects.filter(action="case.write_off").get().system_actor.startswith("command:")
    with pytest.raises(CommandError, match="name plan ids, or --all"):
        call_command("liquidation_fill", "--all")


def _officer(*permissions: str) -> object:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user(username="officer-" + "-".join(permissions))
    user.user_permissions.set(Permission.objects.filter(codename__in=permissions))
    return get_user_model().objects.get(pk=user.pk)  # a fresh instance: permissions are cached per instance


def test_an_officer_without_the_permission_cannot_liquidate(btc: Instrument) -> None:
    from restructuring.services.liquidation import PermissionDeniedError

    account = _account("PERM", btc, quantity="10", loan="750")
    case = _margin_call_past_deadline(account)
    clerk = _officer()

    with pytest.raises(PermissionDeniedError, match=f"may not send case {case.pk} to liquidation"):
        case_liquidate(case_id=case.pk, reason="officer", actor=clerk)  # type: ignore[arg-type]

    assert Case.objects.get(pk=case.pk).state == CaseState.MARGIN_CALL
    assert not AuditEvent.objects.filter(action="case.liquidate").exists()


def test_an_officer_with_the_permissions_liquidates_and_books_in_their_name(btc: Instrument) -> None:
    from restructuring.services.liquidation import PermissionDeniedError
    from restructuring.services.negotiation.execution import proposal_liquidate
    from restructuring.services.negotiation.proposals import proposal_approve, proposal_liquidation_draft

    account = _account("OFFICER", btc, quantity="10", loan="750")
    case = _margin_call_past_deadline(account)
    officer = _officer("liquidate_case")
    with pytest.raises(PermissionDeniedError, match="alone"):  # nobody sends a case to liquidation alone
        case_liquidate(case_id=case.pk, reason="client unreachable", actor=officer)  # type: ignore[arg-type]
    proposal = proposal_liquidation_draft(case_id=case.pk, reason="client unreachable", actor=officer)  # type: ignore[arg-type]
    proposal_approve(proposal_id=proposal.pk, actor=_officer("approve_proposal"), version=1)  # type: ignore[arg-type]

    proposal_liquidate(proposal_id=proposal.pk, actor=officer, version=1)  # type: ignore[arg-type]

    plan = LiquidationPlan.objects.get(case=case)
    event = AuditEvent.objects.get(action="case.liquidate")
    assert (event.actor_id, event.system_actor) == (officer.pk, "")  # type: ignore[attr-defined]
    assert event.reason == f"proposal {proposal.pk}: client unreachable"
    # booking fills is a permission of its own
    with pytest.raises(PermissionDeniedError, match="may not book liquidation fills"):
        liquidation_book(plan_id=plan.pk, actor=officer)  # type: ignore[arg-type]
    desk = _officer("liquidate_case", "book_liquidation")
    liquidation_book(plan_id=plan.pk, actor=desk)  # type: ignore[arg-type]
    assert Case.objects.get(pk=case.pk).state == CaseState.LIQUIDATED
