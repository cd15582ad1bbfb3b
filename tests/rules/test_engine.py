"""The rule engine over many cases: priority order, stop-processing, packages, bounds, explanations naming exactly
the facts read, determinism; and what actions make of the terms."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import numpy as np

from restructuring.services.proposals import package_candidates
from restructuring.terms import Terms
from rules.actions import CaseHoldings, terms_from_actions
from rules.engine import RuleSpec, evaluate, ruleset_compile
from rules.expressions import columns_from_rows
from rules.schema import FACT_TYPES

HOLDINGS = CaseHoldings(position_ids=(7, 3, 9), long=(True, False, True))  # largest first

RULES = [
    RuleSpec("stop_underwater", 1, "equity < 0", "liquidate", package="liquidate", stop_processing=True),
    RuleSpec("collateral", 10, "shortfall_pct > 0.1", "demand_collateral", {"amount": "shortfall * 1.2"}, "topup"),
    RuleSpec("term", 11, "shortfall_pct > 0.1", "extend_term", {"months": "6"}, "topup"),
    RuleSpec("rate", 12, "shortfall_pct > 0.1", "change_rate", {"rate": "loan_rate - 0.5"}, "cheaper"),
    RuleSpec("escalate", 0, "debt > 1000", "escalate_to_senior", package="escalate"),
]


def _rows() -> list[dict[str, Any]]:
    return [
        {"equity": -5.0, "shortfall": 50.0, "shortfall_pct": 0.5, "debt": 100.0, "loan_rate": 0.1},  # stops
        {"equity": 5.0, "shortfall": 50.0, "shortfall_pct": 0.5, "debt": 2000.0, "loan_rate": 0.1},
        {"equity": 5.0, "shortfall": 1.0, "shortfall_pct": 0.01, "debt": 100.0, "loan_rate": None},
        {"equity": None, "shortfall": 50.0, "shortfall_pct": 0.5, "debt": 100.0, "loan_rate": 0.1},  # null equity
    ]


def _evaluate() -> list[list[Any]]:
    rows = _rows()
    return evaluate(ruleset_compile(RULES), columns_from_rows(rows, FACT_TYPES), len(rows))


def test_rules_run_in_priority_order_and_stop_processing_hides_later_rules() -> None:
    fired = _evaluate()
    assert [f.rule for f in fired[0]] == ["stop_underwater"]  # escalate (priority 0) does not fire: debt 100
    assert [f.rule for f in fired[1]] == ["escalate", "collateral", "term", "rate"]
    assert fired[2] == []
    # a null fact makes its comparison false: the underwater rule does not fire, the others do
    assert [f.rule for f in fired[3]] == ["collateral", "term", "rate"]


def test_each_firing_names_exactly_the_facts_its_rule_read_with_the_values() -> None:
    fired = _evaluate()[1]
    assert fired[0].facts == {"debt": 2000.0}
    assert fired[1].facts == {"shortfall": 50.0, "shortfall_pct": 0.5}  # condition and amount
    assert fired[1].parameters == {"amount": 60.0}
    assert fired[3].facts == {"loan_rate": 0.1, "shortfall_pct": 0.5}


def test_a_parameter_out_of_bounds_voids_its_package_and_says_why() -> None:
    fired = _evaluate()[1]
    assert fired[3].problem == "rate = -0.4 is below 0"
    candidates, escalate = package_candidates(fired, HOLDINGS, Decimal("0.01"))
    assert escalate
    assert [c.package for c in candidates] == ["topup"]  # "cheaper" is void
    assert candidates[0].terms == {"term_months": 6, "kind": "level", "collateral_to_add": "60.00"}
    assert [c.kind for c in package_candidates(_evaluate()[0], HOLDINGS, Decimal("0.01"))[0]] == ["liquidate"]


def test_evaluation_is_deterministic() -> None:
    assert _evaluate() == _evaluate()


def test_actions_make_valid_terms() -> None:
    terms = terms_from_actions(
        [
            ("extend_term", {"months": 12.4, "schedule": "interest_only"}),
            ("grace_period", {"months": 3.0, "on": "interest"}),
            ("grace_period", {"months": 2.0, "on": "moratorium"}),
            ("reduce_position", {"fraction": 0.25, "which": "all_long"}),
            ("haircut_principal", {"amount": 10.005}),
            ("change_rate", {"rate": 0.0612345678}),
        ],
        HOLDINGS,
        default_term_months=12,
        quantum=Decimal("0.01"),
    )
    assert terms == {
        "term_months": 12,
        "kind": "interest_only",
        "moratorium_months": 2,
        "grace_interest_months": 3,
        "grace_principal_months": 3,
        "reduce": [[7, "0.2500"], [9, "0.2500"]],
        "principal_haircut": "10.00",  # half-even at the cent
        "rate_annual": "0.061235",
    }
    Terms.from_json(terms)  # valid as a proposal's terms
    # graces longer than the term stretch it so that one repayment month is left
    stretched = terms_from_actions(
        [("extend_term", {"months": 3.0}), ("grace_period", {"months": 6.0, "on": "principal"})],
        HOLDINGS,
        default_term_months=12,
        quantum=Decimal("0.01"),
    )
    assert stretched["term_months"] == 7
    largest = terms_from_actions(
        [("reduce_position", {"fraction": 0.5, "which": "largest"})],
        HOLDINGS,
        default_term_months=12,
        quantum=Decimal("0.01"),
    )
    assert largest["reduce"] == [[7, "0.5000"]]


def test_columns_carry_nulls_as_nan_for_numbers() -> None:
    columns = columns_from_rows(_rows(), FACT_TYPES)
    assert math.isnan(columns["equity"][3])
    assert np.isnan(columns["loan_rate"][2])
