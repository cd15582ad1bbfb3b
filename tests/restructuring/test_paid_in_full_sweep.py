"""The real sweep on PostgreSQL opens no case for an account paid in full (issue 14): no debt, no debit cash,
cross positions only long spot and long options. Before, one long call bought with cash had margin ratio
1.000000 and band warning, and the sweep opened a WARNING case for it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import MarginAccount, MarginLoan, MarginMode, MarginModel, Position, Price, RiskState
from accounts.services.sweep import sweep_run
from restructuring.models import Case, CaseState
from restructuring.services.case_sweep import cases_apply_risk
from tests.factories.accounts import ClientFactory, InstrumentFactory, OptionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _account(
    code: str, *, cash: str = "0", model: str = MarginModel.STANDARD, mode: str = MarginMode.CROSS
) -> MarginAccount:
    return MarginAccount.objects.create(
        code=code, client=ClientFactory.create(), cash=Decimal(cash), margin_model=model, mode=mode
    )


def test_the_sweep_opens_no_case_for_accounts_paid_in_full() -> None:
    # given a stock at 100 and a 30-day call on it struck at 120 (100 per contract, standard option rates);
    # a second stock whose market is stormy: EWMA 5% and stressed 6% a day against a reference of 1%, so its
    # 25% maintenance rate scales to 131.25%
    now = timezone.now()
    stock = InstrumentFactory.create(symbol="ABC", daily_volatility=Decimal("0.02"))
    call = OptionFactory.create(
        symbol="ABC-C120", underlying=stock, strike=Decimal("120"), expiry=now + timedelta(days=30)
    )
    stormy = InstrumentFactory.create(
        symbol="XYZ", daily_volatility=Decimal("0.01"), ewma_volatility=0.05, stressed_volatility=0.06
    )
    for instrument in (stock, stormy):
        Price.objects.create(instrument=instrument, time=now - timedelta(minutes=1), price=Decimal("100"))
    premium = Decimal("2.50")  # what the calls were bought at, per unit of the underlying

    # accounts paid in full, one per margin model
    standard = _account("STANDARD")
    Position.objects.create(account=standard, instrument=call, quantity=Decimal(1), entry_price=premium)
    portfolio = _account("PORTFOLIO", model=MarginModel.PORTFOLIO)
    Position.objects.create(account=portfolio, instrument=call, quantity=Decimal(1), entry_price=premium)
    dynamic = _account("DYNAMIC", cash="10")
    Position.objects.create(account=dynamic, instrument=stormy, quantity=Decimal(3), entry_price=Decimal(90))
    isolated = _account("ISOLATED", mode=MarginMode.ISOLATED)
    Position.objects.create(
        account=isolated, instrument=call, quantity=Decimal(1), entry_price=premium, isolated_margin=premium * 100
    )
    Position.objects.create(account=isolated, instrument=stock, quantity=Decimal(2), entry_price=Decimal(95))
    # and the control: the standard call with a loan of one cent, which the ratio rule still judges
    borrowed = _account("BORROWED")
    Position.objects.create(account=borrowed, instrument=call, quantity=Decimal(1), entry_price=premium)
    MarginLoan.objects.create(account=borrowed, principal=Decimal("0.01"), rate_annual=Decimal("0.08"))

    # when the real sweep runs (two shards) and the cases follow it
    sweep = sweep_run(shards=2)
    moves = cases_apply_risk(sweep_id=sweep.pk)

    # then only the borrowed account has a case: below maintenance by its cent, a margin call
    assert moves.as_dict() == {"opened": 1, "margin_calls": 1, "cured": 0}
    assert list(Case.objects.values_list("account__code", "state")) == [("BORROWED", CaseState.MARGIN_CALL)]
    states = {s.account.code: s for s in RiskState.objects.select_related("account")}
    for code in ("STANDARD", "PORTFOLIO", "DYNAMIC", "ISOLATED"):
        assert states[code].band == "healthy", (code, states[code].band, states[code].margin_ratio)
        assert states[code].shortfall_maintenance == Decimal("0.00"), code
        assert states[code].distance_to_liquidation is None, code
    # the standard call's ratio is still the fact it was (requirement = value): it just no longer sets the band
    assert states["STANDARD"].margin_ratio == Decimal("1.000000")
    # the stormy shares require no more than their value, 300, and the account holds 310
    assert states["DYNAMIC"].maintenance_requirement == Decimal("300.00")
    assert states["DYNAMIC"].equity == Decimal("310.00")
    assert states["ISOLATED"].isolated_breaches == 0
