"""Evaluating a rule set over many cases at once. Pure Python and numpy, no Django.

Rules run in priority order (then name). For every case, a rule fires when its condition holds and no rule
before it that fired for that case had `stop_processing`. Its parameters are evaluated for that case; a number
outside the action's bounds (or null) makes the firing invalid: it is reported, with the value, instead of
producing terms. Each firing records the facts its condition and parameters read, with their values: the
explanation a person reads. Conditions and parameters are evaluated vectorised, one numpy pass per expression
over all cases (rules/expressions.py), so a set of 20 rules over 10,000 cases costs milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rules.actions import ACTIONS, Parameter
from rules.expressions import Expression, ExpressionError, ResultKind, expression_compile
from rules.schema import FACT_TYPES, FactType


@dataclass(frozen=True)
class RuleSpec:
    """A rule as written (the model's fields, without Django)."""

    name: str
    priority: int
    condition: str
    action: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    package: str = ""
    stop_processing: bool = False
    description: str = ""


@dataclass(frozen=True)
class CompiledRule:
    spec: RuleSpec
    condition: Expression
    numbers: Mapping[str, Expression]  # number parameters
    choices: Mapping[str, str]  # choice parameters (defaults filled in)
    bounds: Mapping[str, Parameter]

    @property
    def facts_read(self) -> frozenset[str]:
        read = set(self.condition.facts_read)
        for expression in self.numbers.values():
            read |= expression.facts_read
        return frozenset(read)


class RuleError(ValueError):
    """A rule that cannot be saved: the message names the rule and what is wrong."""

    def __init__(self, rule: str, field_name: str, message: str) -> None:
        super().__init__(f"rule {rule!r}, {field_name}: {message}")
        self.rule = rule
        self.field = field_name


def rule_compile(spec: RuleSpec) -> CompiledRule:
    """Check a rule against the fact schema and its action's parameters; raise RuleError or ExpressionError."""
    if not spec.name.strip():
        raise RuleError(spec.name, "name", "a rule needs a name")
    if spec.action not in ACTIONS:
        raise RuleError(spec.name, "action", f"{spec.action!r} is not one of {', '.join(ACTIONS)}")
    condition = expression_compile(spec.condition, ResultKind.CONDITION, rule=spec.name, field="condition")
    parameters = dict(spec.parameters)
    declared = {p.name: p for p in ACTIONS[spec.action]}
    if unknown := sorted(set(parameters) - set(declared)):
        known = ", ".join(declared) or "none"
        raise RuleError(spec.name, unknown[0], f"{spec.action} takes no parameter {unknown[0]!r} (it takes: {known})")
    numbers: dict[str, Expression] = {}
    choices: dict[str, str] = {}
    for name, parameter in declared.items():
        value = parameters.get(name, parameter.default)
        if value is None:
            raise RuleError(spec.name, name, f"{spec.action} needs {name!r}: {parameter.description}")
        if parameter.choices:
            if value not in parameter.choices:
                raise RuleError(spec.name, name, f"{value!r} is not one of {', '.join(parameter.choices)}")
            choices[name] = str(value)
        else:
            text = str(value) if not isinstance(value, str) else value
            numbers[name] = expression_compile(text, ResultKind.NUMBER, rule=spec.name, field=name)
    return CompiledRule(spec=spec, condition=condition, numbers=numbers, choices=choices, bounds=declared)


def ruleset_compile(specs: Sequence[RuleSpec]) -> list[CompiledRule]:
    """Compile every rule, in the order they run; names must be unique."""
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise RuleError(spec.name, "name", "two rules have this name")
        seen.add(spec.name)
    return [rule_compile(s) for s in sorted(specs, key=lambda s: (s.priority, s.name))]


@dataclass(frozen=True)
class Firing:
    rule: str
    action: str
    package: str
    parameters: dict[str, Any]  # evaluated numbers and choices
    facts: dict[str, Any]  # the facts the rule read, with this case's values
    problem: str = ""  # a parameter out of bounds or null: the firing gives no terms


def evaluate(rules: Sequence[CompiledRule], columns: Mapping[str, np.ndarray], size: int) -> list[list[Firing]]:
    """For each of `size` cases (rows of `columns`), the rules that fired, in the order they ran."""
    stopped = np.zeros(size, dtype=np.bool_)
    fired_by_rule: list[tuple[CompiledRule, np.ndarray, dict[str, np.ndarray]]] = []
    for rule in rules:
        fired = rule.condition.evaluate(columns, size) & ~stopped
        if not fired.any():
            continue
        values = {name: expression.evaluate(columns, size) for name, expression in rule.numbers.items()}
        fired_by_rule.append((rule, fired, values))
        if rule.spec.stop_processing:
            stopped |= fired
    out: list[list[Firing]] = [[] for _ in range(size)]
    plain: dict[str, list[Any]] = {}  # each fact column read by a fired rule, as JSON values, converted once
    for rule, fired, values in fired_by_rule:
        read = sorted(rule.facts_read)
        for name in read:
            if name not in plain:
                plain[name] = [_plain(name, v) for v in columns[name].tolist()]
        listed = {name: v.tolist() for name, v in values.items()}
        for row in np.flatnonzero(fired).tolist():
            # Twelve significant digits: the float noise of an expression (0.08 * 0.9 = 0.07200000000000001) is
            # not what a person reading the explanation should see, and no bound or term is that fine.
            numbers = {name: float(f"{v[row]:.12g}") for name, v in listed.items()}
            out[row].append(
                Firing(
                    rule=rule.spec.name,
                    action=rule.spec.action,
                    package=rule.spec.package or rule.spec.name,
                    parameters={**numbers, **rule.choices},
                    facts={name: plain[name][row] for name in read},
                    problem=_bounds_problem(rule, numbers),
                )
            )
    return out


def _bounds_problem(rule: CompiledRule, numbers: Mapping[str, float]) -> str:
    for name, value in numbers.items():
        parameter = rule.bounds[name]
        if not math.isfinite(value):
            return f"{name} is null for this case"
        if parameter.lower is not None and value < parameter.lower:
            return f"{name} = {value:g} is below {parameter.lower:g}"
        if parameter.upper is not None and value > parameter.upper:
            return f"{name} = {value:g} is above {parameter.upper:g}"
    return ""


def _plain(name: str, value: Any) -> Any:
    """A fact's value as JSON can hold it: numbers as floats, strings, booleans (null when unknown)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if FACT_TYPES.get(name) == FactType.BOOLEAN and value is not None:
        return bool(value)
    return value


__all__ = ["CompiledRule", "ExpressionError", "Firing", "RuleError", "RuleSpec", "evaluate", "ruleset_compile"]
