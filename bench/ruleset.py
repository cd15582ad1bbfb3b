"""Benchmark of the rule engine: the default rule set (20 rules) over 10,000 cases. Prints one JSON object on
its last line.

    python bench/ruleset.py [--cases 10000]

- `evaluate_s`: the published default set compiled once, then evaluated on 10,000 fact rows drawn from the
  book's ranges (columns built from the rows, every condition and parameter vectorised, firings with their
  explanations, and each case's packages turned into terms): the rule engine alone (median of 5).
- `end_to_end_s`: the same reading the facts of 10,000 cases from PostgreSQL (risk state, loans, clients, the
  latest feasibility reports, prior restructurings, group debt) on the bench book of bench/feasibility.py,
  whose feasibility reports are copied onto the cases that have none (the figures, not their computation, are
  what the rules read).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from decimal import Decimal
from statistics import median
from typing import Any

from common import database_ready, machine, timed, truncate_workflow

os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/workout_bench_feasibility"
)


def _rows(n: int, seed: int = 5) -> list[dict[str, Any]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    tiers = np.array(["A", "B", "C", "D"])
    debt = rng.lognormal(11, 1.5, n)
    shortfall = debt * rng.uniform(0.0, 0.4, n)
    equity = debt * rng.uniform(-0.2, 0.5, n)
    rows = []
    for k in range(n):
        rows.append(
            {
                "shortfall": float(shortfall[k]),
                "shortfall_pct": float(shortfall[k] / debt[k]),
                "margin_ratio": float(rng.uniform(0.2, 1.0)),
                "equity": float(equity[k]),
                "debt": float(debt[k]),
                "account_value": float(equity[k] + debt[k]),
                "recovery_expected": float(debt[k] * rng.uniform(0.6, 1.4)),
                "recovery_p5": float(debt[k] * rng.uniform(0.4, 1.2)),
                "expected_loss": float(debt[k] * rng.uniform(0.0, 0.3)),
                "loss_given_default": float(rng.uniform(0.0, 0.5)),
                "loss_capacity_pct": float(rng.uniform(0.0, 0.5)) if k % 10 else float("nan"),
                "liquidation_days": float(rng.integers(1, 30)),
                "portfolio_volatility": float(rng.uniform(0.01, 0.06)),
                "concentration_top1": float(rng.uniform(0.2, 1.0)),
                "position_count": float(rng.integers(1, 12)),
                "credit_tier": str(tiers[k % 4]),
                "external_capacity": float(debt[k] * rng.uniform(0.0, 0.5)),
                "days_in_margin_call": float(rng.uniform(0, 2)),
                "prior_restructurings": float(rng.integers(0, 3)),
                "group_exposure": float(debt[k] * rng.uniform(1, 3)),
                "is_isolated": bool(k % 7 == 0),
                "loan_rate": float(rng.uniform(0.05, 0.15)),
            }
        )
    return rows


def _evaluate(compiled: Any, rows: list[dict[str, Any]], holdings: list[Any]) -> int:
    from restructuring.services.proposals import package_candidates
    from rules.engine import evaluate
    from rules.expressions import columns_from_rows
    from rules.schema import FACT_TYPES

    firings = evaluate(compiled, columns_from_rows(rows, FACT_TYPES), len(rows))
    packages = 0
    for fired, held in zip(firings, holdings, strict=True):
        packages += len(package_candidates(fired, held, Decimal("0.01"))[0])
    return packages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000)
    args = parser.parse_args()
    database_ready()
    from django.utils import timezone

    from accounts.models import MarginAccount
    from demo.book import demo_book_generate, demo_book_write
    from restructuring.models import Case, FeasibilityReport
    from restructuring.selectors.rule_facts import rule_facts_load
    from rules.actions import CaseHoldings
    from rules.models import RuleSet
    from rules.services import DEFAULT_RULES, published_rules, ruleset_load

    figures: dict[str, Any] = {"bench": "rules", "cases": args.cases}
    RuleSet.objects.filter(status="published").update(status="retired")
    ruleset_load(DEFAULT_RULES, publish=True, system_actor="bench")
    published = published_rules()
    assert published is not None
    compiled = published[1]
    figures["rules"] = len(compiled)

    rows = _rows(args.cases)
    holdings = [CaseHoldings(position_ids=(1, 2), long=(True, False))] * len(rows)
    _evaluate(compiled, rows, holdings)
    figures["evaluate_s"] = round(median(timed(lambda: _evaluate(compiled, rows, holdings))[0] for _ in range(5)), 4)
    figures["packages"] = _evaluate(compiled, rows, holdings)

    # The database path: 10,000 cases on the bench book, each with a feasibility report's figures.
    accounts = max(args.cases * 3, 30_000)
    if MarginAccount.objects.count() < args.cases:
        demo_book_write(book=demo_book_generate(accounts=accounts, seed=7), replace=True)
    truncate_workflow()
    now = timezone.now()
    account_ids = list(MarginAccount.objects.order_by("pk").values_list("pk", flat=True)[: args.cases])
    cases = Case.objects.bulk_create(
        Case(account_id=a, opened_at=now, called_at=now, call_amount=Decimal(100), state="margin_call")
        for a in account_ids
    )
    template = _template_report()
    FeasibilityReport.objects.bulk_create(
        FeasibilityReport(**{**template, "case_id": c.pk, "key": f"bench:{c.pk}"}) for c in cases
    )
    loaded = list(Case.objects.filter(pk__in=[c.pk for c in cases]).select_related("account__client"))

    def end_to_end() -> int:
        facts = rule_facts_load(loaded, timezone.now())
        return _evaluate(compiled, facts.rows, facts.holdings)

    end_to_end()
    figures["end_to_end_s"] = round(median(timed(end_to_end)[0] for _ in range(3)), 4)
    figures["facts_load_s"] = round(
        median(timed(lambda: rule_facts_load(loaded, timezone.now()))[0] for _ in range(3)), 4
    )
    figures["machine"] = machine()
    figures["date"] = time.strftime("%Y-%m-%d")
    print(json.dumps(figures))


def _template_report() -> dict[str, Any]:
    """The fields of a realistic feasibility report (one position, one driver), for every case."""
    from django.utils import timezone

    exposure = {
        "position_id": 1,
        "symbol": "BTC",
        "driver": 0,
        "kind": "spot",
        "quantity": 10.0,
        "daily_volume": 1000.0,
        "daily_volatility": 0.04,
        "haircut": 0.1,
        "entry_price": 0.0,
        "isolated_margin": None,
        "strike": 0.0,
        "expiry_years": 0.0,
        "implied_volatility": 0.0,
        "carry": 0.0,
        "co_sold": 0.0,
    }
    return {
        "trigger": "on_demand",
        "created_at": timezone.now(),
        "as_of": timezone.now(),
        "model_version": "feasibility-1.0",
        "market_seed": 1,
        "case_seed": 1,
        "parameters": {},
        "inputs": {
            "account": {
                "drivers": [
                    {
                        "instrument_id": 1,
                        "symbol": "BTC",
                        "price": 100.0,
                        "daily_volatility": 0.04,
                        "days_per_year": 365.0,
                    }
                ],
                "exposures": [exposure],
            },
            "quantum": "0.01",
        },
        "results": {"recovery": {"days": 3}, "loss_capacity": {"portfolio_volatility": "0.040000"}},
        "debt": Decimal(750),
        "recovery_expected": Decimal(897),
        "recovery_p5": Decimal(850),
        "expected_loss": Decimal(0),
        "loss_given_default": Decimal(0),
        "loss_capacity_pct": Decimal("0.25"),
        "liquidation_value": Decimal(750),
        "liquidation_days": 3,
        "portfolio_volatility": 0.04,
        "concentration_top1": 1.0,
        "position_count": 1,
        "holdings": [[1, True]],
    }


if __name__ == "__main__":
    main()
