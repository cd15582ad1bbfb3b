"""The liquidation cascade: a hand-worked book where the first sales push a second account over, and the
comparison with restructuring by the rules on the real book."""

from __future__ import annotations

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command

from accounts import risk
from restructuring.cascade import CascadeOutcome, cascade
from restructuring.services.cascade import cascade_compare
from rules.services import DEFAULT_RULES, ruleset_load
from tests.accounts.risk.builders import Account, Instrument, Position, book, market
from tests.restructuring.helpers import account, btc, sweep_only

# One coin X at 100: maintenance 50% of the notional, daily volatility 4%, 100 units traded a day.
X = Instrument(kind=risk.KIND_SPOT, root=0, initial_rate=0.5, maintenance_rate=0.5, reference_volatility=0.04)
BOOK = book(
    [X],
    [Account(debt=450.0), Account(debt=398.0), Account(debt=420.0)],  # A, B, C
    [Position(0, 0, 10.0), Position(1, 0, 10.0), Position(2, 0, 5.0)],
)
EPS = float(np.finfo(np.float64).eps)


def _run(sellers: np.ndarray | None = None) -> CascadeOutcome:
    prepared = risk.ShardedBook.prepare(BOOK, 1)
    return cascade(
        prepared,
        BOOK,
        market([100.0]),
        risk.RiskParams(dynamic_margin=False),
        root=0,
        drop=0.2,
        daily_volume=np.array([100.0]),
        impact_coefficient=0.7,
        sellers=sellers,
    )


def test_the_first_sales_push_the_next_account_over_and_the_cascade_stops_when_nobody_new_breaches() -> None:
    outcome = _run()
    # X falls 20% to 80. A: 800 - 450 = 350 < 400 required; C: 400 - 420 = -20: both breach. B: 800 - 398 = 402
    # >= 400 holds. A and C sell 15 units: X moves 0.7 x 0.04 x sqrt(15 / 100) = 1.0844353% to 79.132452:
    # B's equity 791.32452 - 398 = 393.32452 < 395.66226 required: B breaches. The three sell 25 units:
    # 0.7 x 0.04 x sqrt(0.25) = 1.4% from 80: 78.88. Nobody is left to breach.
    assert [r.liquidated for r in outcome.rounds] == [2, 3]
    path = [r.shocked_price for r in outcome.rounds]
    assert path == pytest.approx([80 * (1 - 0.028 * np.sqrt(0.15)), 78.88], rel=8 * EPS)
    assert path[0] == pytest.approx(79.132452, abs=1e-6)
    # at 78.88: C's 5 units are 394.40 against 420 of debt: 25.60 of bad debt; A and B stay above zero
    assert outcome.bad_debt == pytest.approx(25.6, abs=1e-9)
    # 25 units sold 1.12 below the shocked 80
    assert outcome.impact_cost == pytest.approx(28.0, abs=1e-9)


def test_only_the_accounts_allowed_to_sell_are_sold() -> None:
    # only C may be liquidated (as the rules would decide): 5 units move X 0.7 x 0.04 x sqrt(0.05) = 0.626%,
    # to 79.4991: B's equity 794.991 - 398 = 396.991 is below its 397.496 required now, but B, like A, is not sold
    outcome = _run(sellers=np.array([False, False, True]))
    assert outcome.liquidated.tolist() == [False, False, True]
    assert outcome.rounds[-1].shocked_price == pytest.approx(80 * (1 - 0.028 * np.sqrt(0.05)), rel=8 * EPS)
    assert outcome.final_breached.tolist() == [True, True, True]


@pytest.mark.django_db
def test_the_command_compares_liquidating_everyone_with_the_rules() -> None:
    ruleset_load(DEFAULT_RULES, publish=True)
    instrument = btc()
    # BTC at 100; 10 BTC each. After a 30% fall: an underwater account without means (the rules liquidate it)
    # and one below maintenance with equity left (the rules keep it)
    account("UNDER", instrument, band="critical")  # loan 1,100 on 700: -400
    account("CALLED", instrument, band="warning")  # loan 660 on 700: 40 < 210 required
    account("FINE", instrument, band="healthy")
    sweep_only()

    comparison = cascade_compare(symbol="BTC", drop=0.3)

    assert (comparison.price_before, comparison.price_shocked) == (100.0, pytest.approx(70.0))
    assert comparison.accounts_breached == 2
    assert comparison.liquidate_all.accounts_sold == 2
    assert comparison.by_rules.accounts_sold == 1
    assert comparison.by_rules.accounts_kept == 1
    assert comparison.by_rules.impact_cost < comparison.liquidate_all.impact_cost
    out = StringIO()
    call_command("cascade", "BTC", "--drop", "0.3", "--json", stdout=out)
    assert json.loads(out.getvalue())["by_rules"]["accounts_sold"] == 1
