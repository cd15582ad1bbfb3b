"""Rule expressions: the conditions and parameters credit officers write, checked against the fact schema when
they are saved and evaluated over many cases at once.

The language is rule-engine's grammar (parsed by rule-engine itself), restricted to what a rule needs:

- facts by name (`rules.schema`: number, string or boolean, each possibly null), literals (`0.1`, `'A'`, `true`,
  `false`, `inf`), and `null` only as an operand of `==` / `!=` (`recovery_p5 != null`: the fact is known);
- arithmetic `+ - * / // % **` and unary `-` on numbers; comparisons `< <= > >=` between two numbers or two
  strings, `== !=` between two values of the same type; `and`, `or`, `not` on true/false; `x in [...]` and
  `x not in [...]` with a list of literal numbers or strings; the conditional `condition ? a : b` (rule-engine
  has no `a if condition else b`); `a ?? b` (b where a is null), as in rule-engine.
- Everything else is refused with its position: attribute access (`credit_tier.as_lower`, `x.__class__`),
  function calls, indexing and slicing, comprehensions, mappings, regular expressions, bitwise operators,
  dates, durations, bytes, built-in symbols (`$now`), `nan`, and any name that is not a fact of the schema.
  Types are checked by this module over the syntax tree, so an error names the offending operand (`'+' needs
  numbers, but credit_tier is a string`) or operator (`'>' compares credit_tier (a string) with 1 (a number)`);
  rule-engine then builds the rule with the schema as its type resolver, and whatever it still refuses (a
  literal `1 / 0` it folds at build time) is reported at the node it failed on. Limits: 2,000 characters,
  100 levels of nesting (a chain `a or b or ...` counts a level per operator).
- Positions: rule-engine's AST nodes carry none, and its type errors neither. The text is parsed by a subclass
  of rule-engine's parser whose grammar actions are rule-engine's own, wrapped to record each node's span (ply's
  position tracking); the check and the compilation walk rule-engine's unbuilt nodes (`_DeferredAstNode`,
  private to rule-engine 5.1, pinned in pyproject.toml: a change there fails tests/rules/test_expressions.py).

Columns (the input of `Expression.evaluate`, built from rows by `columns_from_rows`): one 1-d array per fact,
all of length `size`. A number is float64 with NaN for null; a boolean is float64 with 1.0 / 0.0 and NaN for
null (a bool array is accepted too); a string is an object array with None for null.

Semantics: the vectorised result equals rule-engine's own evaluation of the same text on a plain dict row
(rule-engine's `Rule(text, context).evaluate(row)`) wherever rule-engine gives an answer; where it raises, the
result is defined here. In detail:
- Null in comparisons, as rule-engine: `a == b` is true when both sides are null, false when one is;
  `a != b` is its negation, so `x != 1` is true for a null x and `x != null` means "x is known". On two nulls
  `<=` and `>=` are true, `<` and `>` false. With one null side an ordered comparison is false (rule-engine
  raises). `x in [...]` is false for a null x, so `x not in [...]` is true.
- Null in logic, as rule-engine (truthiness): in `and`, `or`, `not` and as the condition of `? :` a null
  boolean counts as false, so `not is_isolated` is true for a null `is_isolated`, `is_isolated == false` is not.
- Null in arithmetic: null (rule-engine raises). `a ?? b` gives b where a is null, as rule-engine.
- Division: a number divided by zero with `/`, `//` or `%` is null (rule-engine raises "division by zero";
  `inf / 0` is inf in both). `//` truncates toward zero and `%` takes the sign of the dividend, as the Decimal
  arithmetic rule-engine computes in: `-7 // 2` is -3, `-7 % 4` is -3. `**` is float64's (`0 ** -1` is inf, as
  in rule-engine); an undefined power (`(-8) ** 0.5`) is null (rule-engine raises).
- A condition's result is a bool array, null counting as false (rule-engine returns None for a bare null
  boolean); a number's is float64, NaN for null (rule-engine: None).
- Numbers are float64 here and Decimal in rule-engine: results agree to float rounding (`x * 3 == 0.3` is true
  in Decimal and false in float64 for x = 0.1), and float64 overflows to inf where Decimal goes on (`10 ** 400`).
"""

from __future__ import annotations

import dataclasses
import operator
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Any

import numpy as np
import rule_engine
from rule_engine import ast as re_ast
from rule_engine import errors as re_errors
from rule_engine.parser import Parser, _DeferredAstNode
from rule_engine.parser.utilities import parse_float
from rule_engine.suggestions import jaro_winkler_distance, suggest_symbol

from rules.schema import FACT_TYPES, FactType

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Expression",
    "ExpressionError",
    "ResultKind",
    "columns_from_rows",
    "expression_compile",
]

MAX_LENGTH = 2_000
"""Characters an expression may have."""
MAX_DEPTH = 100
"""Nesting an expression may have: operators inside operators, a chain `a or b or c` counting one level per
operator. Far above what a rule needs, and far below Python's recursion limit for the three recursive walks
(this module's check, rule-engine's build, the evaluation)."""
_SUGGESTION_SIMILARITY = 0.8  # Jaro-Winkler similarity under which "did you mean" would mislead
_EXCERPT_LENGTH = 40


class ExpressionError(ValueError):
    """An expression is refused: the message names the rule, the field ('condition' or the parameter's name), the
    0-based character position with a short excerpt of the text there, and what is wrong."""

    code = "rule_expression_invalid"

    def __init__(self, *, rule: str, field: str, position: int, excerpt: str, problem: str) -> None:
        where = f"at character {position} ({excerpt!r})" if excerpt else f"at character {position} (end of text)"
        super().__init__(f"rule {rule!r}, {field}, {where}: {problem}")
        self.rule = rule
        self.field = field
        self.position = position
        self.excerpt = excerpt
        self.problem = problem


class ResultKind(StrEnum):
    CONDITION = "condition"  # must be boolean
    NUMBER = "number"  # must be a number


class _Type(StrEnum):
    NUMBER = "a number"
    STRING = "a string"
    BOOLEAN = "true/false"
    NULL = "null"


_Env = dict[str, np.ndarray]
_Run = Callable[[_Env], Any]


@dataclass(frozen=True)
class Expression:
    """A compiled expression. `evaluate` reads from `columns` exactly the facts in `facts_read`, nothing else."""

    text: str
    kind: ResultKind
    facts_read: frozenset[str]  # exactly the fact names the expression reads
    _run: _Run = dataclasses.field(repr=False, compare=False)
    _fact_types: Mapping[str, FactType] = dataclasses.field(repr=False, compare=False)

    def evaluate(self, columns: Mapping[str, np.ndarray], size: int) -> np.ndarray:
        """One result per case: a bool array for a condition (null counts as false), float64 for a number (NaN
        for null). `columns` as in the module docstring; only the facts read are looked up."""
        env: _Env = {}
        for name in sorted(self.facts_read):
            try:
                column = columns[name]
            except KeyError:
                raise KeyError(f"no column for fact {name!r}, which the expression reads") from None
            env[name] = _column_coerce(name, self._fact_types[name], column, size)
        with np.errstate(all="ignore"):
            value = self._run(env)
        if self.kind is ResultKind.CONDITION:
            return np.broadcast_to(_truthy(value), (size,)).copy()
        return np.broadcast_to(np.asarray(value, dtype=np.float64), (size,)).copy()


def expression_compile(
    text: str, kind: ResultKind, *, rule: str, field: str, schema: Mapping[str, FactType] = FACT_TYPES
) -> Expression:
    """Check `text` against `schema` and compile it into numpy closures; ExpressionError if it is refused."""

    def refuse(position: int, end: int, problem: str) -> ExpressionError:
        return ExpressionError(
            rule=rule, field=field, position=position, excerpt=_excerpt(text, position, end), problem=problem
        )

    kind = ResultKind(kind)
    if not text.strip():
        raise refuse(0, 0, "the expression is empty")
    if len(text) > MAX_LENGTH:
        raise refuse(
            MAX_LENGTH, MAX_LENGTH + 10, f"the expression is {len(text):,} characters long; the limit is {MAX_LENGTH:,}"
        )
    context = rule_engine.Context(
        type_resolver=rule_engine.type_resolver_from_dict({name: _DATA_TYPES[type_] for name, type_ in schema.items()}),
        mapping_attribute_lookup=False,
    )
    statement, spans = _parser().parse_located(text, context, refuse)
    compiler = _Compiler(text, schema, spans, refuse)
    root = compiler.walk(statement.args[1], depth=0)
    wanted = _Type.BOOLEAN if kind is ResultKind.CONDITION else _Type.NUMBER
    if root.type is not wanted:
        what = "a condition must be true or false" if kind is ResultKind.CONDITION else "a parameter must be a number"
        raise refuse(root.start, root.end, f"{what}, but {compiler.what(root)}")
    _rule_engine_check(statement, spans, refuse)
    fact_types = {name: schema[name] for name in compiler.facts}
    return Expression(text=text, kind=kind, facts_read=frozenset(fact_types), _run=root.run, _fact_types=fact_types)


def columns_from_rows(
    rows: Sequence[Mapping[str, object]], facts: Iterable[str], *, schema: Mapping[str, FactType] = FACT_TYPES
) -> dict[str, np.ndarray]:
    """Columns for `Expression.evaluate` from one mapping per case (None, or a missing key, for a null fact).
    Numbers may be int, float or Decimal; booleans bool; strings str. Anything else is a TypeError."""
    columns: dict[str, np.ndarray] = {}
    for name in facts:
        if name not in schema:
            raise ValueError(f"{name!r} is not a fact of the schema")
        type_ = schema[name]
        values = [row.get(name) for row in rows]
        if type_ is FactType.STRING:
            column = np.empty(len(values), dtype=object)
            column[:] = [_string_value(name, value) for value in values]
        elif type_ is FactType.BOOLEAN:
            column = np.array([_boolean_value(name, value) for value in values], dtype=np.float64)
        else:
            column = np.array([_number_value(name, value) for value in values], dtype=np.float64)
        columns[name] = column
    return columns


# ------------------------------------------------------------------------------------------------ values


_DATA_TYPES = {
    FactType.NUMBER: rule_engine.DataType.FLOAT,
    FactType.STRING: rule_engine.DataType.STRING,
    FactType.BOOLEAN: rule_engine.DataType.BOOLEAN,
}


def _number_value(name: str, value: object) -> float:
    if value is None:
        return np.nan
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | Decimal | np.number):
        raise TypeError(f"fact {name!r} is a number, not {value!r}")
    return float(value)


def _boolean_value(name: str, value: object) -> float:
    if value is None:
        return np.nan
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"fact {name!r} is true/false, not {value!r}")
    return 1.0 if value else 0.0


def _string_value(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"fact {name!r} is a string, not {value!r}")
    return value


def _column_coerce(name: str, type_: FactType, column: np.ndarray, size: int) -> np.ndarray:
    array = np.asarray(column)
    if array.shape != (size,):
        raise ValueError(f"column {name!r} has shape {array.shape}, expected ({size},)")
    if type_ is FactType.STRING:
        return array if array.dtype == object else array.astype(object)
    if type_ is FactType.BOOLEAN and array.dtype == np.bool_:
        return array
    return np.asarray(array, dtype=np.float64)


def _truthy(value: Any) -> np.ndarray:
    """A boolean value (bool, or float64 1.0 / 0.0 / NaN for null) as bool, null counting as false."""
    array = np.asarray(value)
    return array if array.dtype == np.bool_ else np.equal(array, 1.0)


def _as_float(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


_NONE = np.array(None, dtype=object)


def _is_none(values: Any) -> Any:
    return np.equal(values, _NONE)  # elementwise `is None` on object arrays: None == None, str != None


def _string_constant(value: str) -> np.ndarray:
    return np.array(value, dtype=object)  # 0-d object: mixes with object columns without becoming '<U'


# Numbers: float64, NaN for null. The division family follows Decimal (rule-engine's arithmetic) except that a
# finite number divided by zero gives null where rule-engine raises. Decimal divides an infinity by zero without
# complaint (inf / 0 is inf), and so do these.


def _true_divide(a: Any, b: Any) -> Any:
    return np.where(np.equal(b, 0) & np.isfinite(a), np.nan, np.true_divide(a, b))


def _truncating_divide(a: Any, b: Any) -> Any:
    # Decimal's // truncates toward zero; a - fmod(a, b) is the exact multiple of b, so the quotient rounds
    # to the integer it is instead of falling to the one below as trunc(a / b) can. inf // b is inf / b.
    truncated = np.round(np.true_divide(np.subtract(a, np.fmod(a, b)), b))
    infinite = np.isinf(a) & np.isfinite(b)
    return np.where(infinite, np.true_divide(a, b), np.where(np.equal(b, 0), np.nan, truncated))


def _remainder(a: Any, b: Any) -> Any:
    return np.where(np.equal(b, 0), np.nan, np.fmod(a, b))  # sign of the dividend, as Decimal's %


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "ADD": np.add,
    "SUB": np.subtract,
    "MUL": np.multiply,
    "TDIV": _true_divide,
    "FDIV": _truncating_divide,
    "MOD": _remainder,
    "POW": np.power,
}


def _is_null(type_: _Type) -> Callable[[Any], Any]:
    if type_ is _Type.STRING:
        return lambda value: _is_none(value)
    if type_ is _Type.BOOLEAN:
        return lambda value: np.isnan(_as_float(value))
    return np.isnan


def _equal(type_: _Type) -> Callable[[Any, Any], Any]:
    """rule-engine's ==: equal values, or both null."""
    if type_ is _Type.STRING:
        return np.equal  # elementwise Python ==, and None == None

    def equal(a: Any, b: Any) -> Any:
        a, b = _as_float(a), _as_float(b)
        return np.logical_or(np.equal(a, b), np.logical_and(np.isnan(a), np.isnan(b)))

    return equal


def _not_equal(type_: _Type) -> Callable[[Any, Any], Any]:
    equal = _equal(type_)
    return lambda a, b: np.logical_not(equal(a, b))


def _ordered(type_: _Type, compare: Callable[[Any, Any], Any], inclusive: bool) -> Callable[[Any, Any], Any]:
    """rule-engine's < <= > >=: on two nulls <= and >= are true, < and > false; one null side (rule-engine
    raises) is false."""
    if type_ is _Type.NUMBER:

        def ordered_number(a: Any, b: Any) -> Any:
            result = compare(a, b)  # false where either side is NaN
            if inclusive:
                result = np.logical_or(result, np.logical_and(np.isnan(a), np.isnan(b)))
            return result

        return ordered_number

    def ordered_string(a: Any, b: Any) -> Any:
        a, b = np.broadcast_arrays(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
        a_null, b_null = _is_none(a), _is_none(b)
        known = ~(a_null | b_null)
        result = np.zeros(a.shape, dtype=np.bool_)
        result[known] = compare(a[known], b[known])  # None does not order against str: compare the known only
        if inclusive:
            result |= a_null & b_null
        return result

    return ordered_string


def _coalesce(type_: _Type) -> Callable[[Any, Any], Any]:
    if type_ is _Type.BOOLEAN:

        def coalesce_boolean(a: Any, b: Any) -> Any:
            a = _as_float(a)
            return np.where(np.isnan(a), _as_float(b), a)

        return coalesce_boolean
    is_null = _is_null(type_)
    return lambda a, b: np.where(is_null(a), b, a)


def _member(type_: _Type, values: tuple[Any, ...]) -> Callable[[Any], Any]:
    if type_ is _Type.NUMBER:
        listed = np.array(values, dtype=np.float64)
        return lambda member: np.isin(member, listed)

    def member_string(member: Any) -> Any:
        result = np.equal(member, values[0])
        for value in values[1:]:
            result = np.logical_or(result, np.equal(member, value))
        return result

    return member_string


def _ternary(condition: Any, case_true: Any, case_false: Any) -> Any:
    return np.where(_truthy(condition), case_true, case_false)


# ------------------------------------------------------------------------------------------------ parsing


@dataclass(frozen=True)
class _Span:
    start: int  # the node's first character
    end: int  # one past its last
    op_start: int  # its operator (or, for a literal or a name, the token itself)
    op_end: int


_Refuse = Callable[[int, int, str], ExpressionError]


class _Located(Exception):
    """A rule-engine error with the span of the node it was raised at; never leaves this module."""

    def __init__(self, span: _Span, error: BaseException) -> None:
        super().__init__(str(error))
        self.span = span
        self.error = error


def _recording(original: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """A grammar action that runs rule-engine's own and records where the node it built sits in the text."""

    def action(self: _LocatingParser, p: Any) -> None:
        try:
            original(self, p)
        except re_errors.EngineError as error:
            raise _Located(self.production_span(p), error) from None
        self.note(p)

    action.__doc__ = original.__doc__  # the production: ply reads the grammar from docstrings
    action.__name__ = original.__name__
    action.co_firstlineno = original.__code__.co_firstlineno  # type: ignore[attr-defined]  # ply's rule order
    return action


class _LocatingParser(Parser):
    """rule-engine's parser (same grammar, same actions) that also records each node's span in the text:
    rule-engine's AST nodes carry no position. Parses into rule-engine's deferred (not yet built) nodes."""

    _terminals = frozenset(Parser.tokens)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: dict[int, _Span] = {}
        self._ends: dict[int, int] = {}
        super().__init__()

    def parse_located(self, text: str, context: Any, refuse: _Refuse) -> tuple[Any, dict[int, _Span]]:
        with self._lock:
            self._spans, self._ends = {}, {}
            self.context = context
            try:
                self._lex(text, refuse)
                try:
                    statement = self._parser.parse(text, lexer=self._lexer, tracking=True)
                except re_errors.RuleSyntaxError as error:
                    raise self._syntax_error(text, error.token, refuse) from None
                except _Located as located:
                    span = located.span
                    message = getattr(located.error, "message", str(located.error))
                    raise refuse(span.start, span.end, message) from None
                return statement, self._spans
            finally:
                self.context = None

    def _lex(self, text: str, refuse: _Refuse) -> None:
        """Tokenise the whole text first: token ends for the spans, and lexical errors with their position."""
        lexer = self._lexer
        lexer.input(text)
        while True:
            try:
                token = lexer.token()
            except re_errors.RuleSyntaxError as error:
                if error.token is not None:  # an illegal character
                    position = error.token.lexpos
                    character = text[position]
                    hint = _CHARACTER_HINTS.get(character, "")
                    raise refuse(position, position + 1, f"unexpected character {character!r}{hint}") from None
                start, end = lexer.lexmatch.start(), lexer.lexmatch.end()  # a reserved word: elif, else, while
                word = text[start:end]
                hint = _CONDITIONAL_HINT if word in ("if", "elif", "else") else ""
                raise refuse(start, end, f"{word!r} is not part of the language{hint}") from None
            if token is None:
                return
            self._ends[token.lexpos] = lexer.lexpos

    def _syntax_error(self, text: str, token: Any, refuse: _Refuse) -> ExpressionError:
        if token is None:
            end = len(text.rstrip())
            return refuse(end, end, "the expression ends too early (an operand or a closing bracket is missing)")
        start = token.lexpos
        end = self._ends.get(start, start + 1)
        hint = _CONDITIONAL_HINT if token.type == "IF" else ""
        return refuse(start, end, f"syntax error: {text[start:end]!r} is not expected here{hint}")

    def production_span(self, p: Any) -> _Span:
        start = p.lexspan(1)[0]
        last_start = p.lexspan(len(p) - 1)[1]
        end = self._ends.get(last_start, last_start + 1)
        op_start, op_end = start, end
        for index in range(1, len(p)):
            if p.slice[index].type in self._terminals:
                op_start = p.lexpos(index)
                op_end = self._ends.get(op_start, op_start + 1)
                if p.slice[index].type == "NOT" and index + 1 < len(p) and p.slice[index + 1].type == "IN":
                    op_end = self._ends.get(p.lexpos(index + 1), op_end)  # 'not in'
                break
        return _Span(start, end, op_start, op_end)

    def note(self, p: Any) -> None:
        node = p[0]
        if not isinstance(node, _DeferredAstNode) or id(node) in self._spans:
            return  # a parenthesised expression: its node was noted when built, without the brackets
        span = self.production_span(p)
        self._spans[id(node)] = span
        for argument in node.args:  # 'not in' builds the containment and the negation in one production
            if isinstance(argument, _DeferredAstNode) and id(argument) not in self._spans:
                self._spans[id(argument)] = span


for _name in dir(Parser):
    if _name.startswith("p_") and _name != "p_error":
        setattr(_LocatingParser, _name, _recording(getattr(Parser, _name)))
del _name


@cache
def _parser() -> _LocatingParser:
    return _LocatingParser()  # builds ply's tables: a quarter of a second, once per process


_CONDITIONAL_HINT = ": write a conditional as `condition ? value_if_true : value_if_false`"
_CHARACTER_HINTS = {
    "=": ": compare with '=='",
    "!": ": negate with 'not'",
    "'": ": a string that is not closed",
    '"': ": a string that is not closed",
}


def _excerpt(text: str, start: int, end: int) -> str:
    excerpt = " ".join(text[start:end].split())
    return excerpt if len(excerpt) <= _EXCERPT_LENGTH else excerpt[: _EXCERPT_LENGTH - 3] + "..."


# ------------------------------------------------------------------------------------------------ checking


@dataclass(frozen=True)
class _Typed:
    type: _Type
    run: _Run
    start: int
    end: int
    constant: bool  # reads no fact: computed once, at compile time


_UNSUPPORTED: dict[type, tuple[str, str]] = {
    # node class: (what to point at: the node, its operator, or its operator to its end, the problem)
    re_ast.GetAttributeExpression: ("tail", "attribute access is not allowed: a rule sees the case's facts only"),
    re_ast.GetItemExpression: ("tail", "indexing is not allowed"),
    re_ast.GetSliceExpression: ("tail", "slicing is not allowed"),
    re_ast.FunctionCallExpression: ("node", "function calls are not allowed"),
    re_ast.ComprehensionExpression: ("node", "comprehensions are not allowed"),
    re_ast.MappingExpression: ("node", "mappings are not allowed"),
    re_ast.ArrayExpression: ("node", "a list is only allowed after 'in': credit_tier in ['A', 'B']"),
    re_ast.SetExpression: ("node", "a set is only allowed after 'in': credit_tier in ['A', 'B']"),
    re_ast.BytesExpression: ("node", "bytes are not allowed"),
    re_ast.DatetimeExpression: ("node", "dates are not allowed"),
    re_ast.TimedeltaExpression: ("node", "durations are not allowed"),
    re_ast.FuzzyComparisonExpression: ("operator", "regular expressions are not allowed"),
    re_ast.BitwiseExpression: ("operator", "bitwise operators are not allowed (use 'and', 'or')"),
    re_ast.BitwiseShiftExpression: ("operator", "bitwise operators are not allowed"),
}

_ORDERED = {"LT": operator.lt, "LE": operator.le, "GT": operator.gt, "GE": operator.ge}


class _Compiler:
    """One walk over rule-engine's syntax tree: checks every node and builds its numpy closure."""

    def __init__(self, text: str, schema: Mapping[str, FactType], spans: dict[int, _Span], refuse: _Refuse) -> None:
        self.text = text
        self.schema = schema
        self.spans = spans
        self.refuse = refuse
        self.facts: set[str] = set()
        self.handlers: dict[type, Callable[[Any, _Span, int], _Typed]] = {
            re_ast.SymbolExpression: self._symbol,
            re_ast.FloatExpression: self._number_literal,
            re_ast.StringExpression: self._string_literal,
            re_ast.BooleanExpression: self._boolean_literal,
            re_ast.NullExpression: self._null_literal,
            re_ast.AddExpression: self._arithmetic,
            re_ast.SubtractExpression: self._arithmetic,
            re_ast.ArithmeticExpression: self._arithmetic,
            re_ast.ComparisonExpression: self._equality,
            re_ast.ArithmeticComparisonExpression: self._ordering,
            re_ast.LogicExpression: self._logic,
            re_ast.UnaryExpression: self._unary,
            re_ast.ContainsExpression: self._contains,
            re_ast.TernaryExpression: self._ternary,
            re_ast.CoalesceExpression: self._coalesce,
        }

    def walk(self, node: Any, depth: int) -> _Typed:
        span = self.spans[id(node)]
        if depth > MAX_DEPTH:
            raise self.refuse(span.start, span.end, f"the expression is nested more than {MAX_DEPTH} levels deep")
        handler = self.handlers.get(node.cls)
        if handler is not None:
            return handler(node, span, depth + 1)
        where, problem = _UNSUPPORTED.get(node.cls, ("node", f"{node.cls.__name__} is not supported"))
        if where == "operator":
            raise self.refuse(span.op_start, span.op_end, problem)
        if where == "tail":
            raise self.refuse(span.op_start, span.end, problem)
        raise self.refuse(span.start, span.end, problem)

    # -------------------------------------------------------------------------------------------- helpers

    def excerpt(self, typed: _Typed) -> str:
        return _excerpt(self.text, typed.start, typed.end)

    def what(self, typed: _Typed) -> str:
        if typed.type is _Type.NULL:
            return "null is null"
        return f"{self.excerpt(typed)} is {typed.type}"

    def operator(self, span: _Span) -> str:
        return " ".join(self.text[span.op_start : span.op_end].split())

    def expect(self, typed: _Typed, types: tuple[_Type, ...], problem: str) -> None:
        if typed.type in types:
            return
        if typed.type is _Type.NULL:
            problem = "null can only be compared with '==' or '!=' (recovery_p5 != null: the fact is known)"
        raise self.refuse(typed.start, typed.end, problem)

    def same_type(self, span: _Span, left: _Typed, right: _Typed, problem: str) -> None:
        if left.type is not right.type:
            problem = problem.format(
                left=f"{self.excerpt(left)} ({left.type})", right=f"{self.excerpt(right)} ({right.type})"
            )
            raise self.refuse(span.op_start, span.op_end, problem)

    @staticmethod
    def combine(type_: _Type, function: Callable[..., Any], span: _Span, *operands: _Typed) -> _Typed:
        runs = [operand.run for operand in operands]
        if all(operand.constant for operand in operands):
            with np.errstate(all="ignore"):
                value = function(*(run({}) for run in runs))
            return _Typed(type_, lambda env: value, span.start, span.end, constant=True)
        if len(runs) == 1:
            (first,) = runs

            def run(env: _Env) -> Any:
                return function(first(env))

        elif len(runs) == 2:
            first, second = runs

            def run(env: _Env) -> Any:
                return function(first(env), second(env))

        else:

            def run(env: _Env) -> Any:
                return function(*(each(env) for each in runs))

        return _Typed(type_, run, span.start, span.end, constant=False)

    @staticmethod
    def constant(type_: _Type, value: Any, span: _Span) -> _Typed:
        return _Typed(type_, lambda env: value, span.op_start, span.op_end, constant=True)

    # -------------------------------------------------------------------------------------------- leaves

    def _symbol(self, node: Any, span: _Span, depth: int) -> _Typed:
        name = node.args[1]
        if node.kwargs.get("scope") is not None:
            raise self.refuse(
                span.op_start, span.op_end, f"built-in symbols (${name}) are not allowed: a rule sees the case's facts"
            )
        if name not in self.schema:
            suggestion = suggest_symbol(name, self.schema.keys())
            hint = ""
            if suggestion is not None and jaro_winkler_distance(name, suggestion) >= _SUGGESTION_SIMILARITY:
                hint = f" (did you mean {suggestion!r}?)"
            raise self.refuse(span.op_start, span.op_end, f"unknown fact {name!r}{hint}")
        self.facts.add(name)
        type_ = {FactType.NUMBER: _Type.NUMBER, FactType.STRING: _Type.STRING, FactType.BOOLEAN: _Type.BOOLEAN}[
            self.schema[name]
        ]
        return _Typed(type_, operator.itemgetter(name), span.op_start, span.op_end, constant=False)

    def _number_literal(self, node: Any, span: _Span, depth: int) -> _Typed:
        try:
            number = parse_float(node.args[1])
        except re_errors.FloatSyntaxError as error:
            raise self.refuse(span.op_start, span.op_end, error.message) from None
        if number.is_nan():
            raise self.refuse(span.op_start, span.op_end, "nan is not allowed (a null fact is tested with '== null')")
        value = np.float64(number)
        if np.isinf(value) and not number.is_infinite():
            raise self.refuse(span.op_start, span.op_end, "the number is too large")
        return self.constant(_Type.NUMBER, value, span)

    def _string_literal(self, node: Any, span: _Span, depth: int) -> _Typed:
        return self.constant(_Type.STRING, _string_constant(node.args[1]), span)

    def _boolean_literal(self, node: Any, span: _Span, depth: int) -> _Typed:
        return self.constant(_Type.BOOLEAN, np.bool_(node.args[1]), span)

    def _null_literal(self, node: Any, span: _Span, depth: int) -> _Typed:
        return self.constant(_Type.NULL, None, span)

    # -------------------------------------------------------------------------------------------- operators

    def _arithmetic(self, node: Any, span: _Span, depth: int) -> _Typed:
        _, op_name, left_node, right_node = node.args
        left, right = self.walk(left_node, depth), self.walk(right_node, depth)
        symbol = self.operator(span)
        for operand in (left, right):
            self.expect(operand, (_Type.NUMBER,), f"'{symbol}' needs numbers, but {self.what(operand)}")
        return self.combine(_Type.NUMBER, _ARITHMETIC[op_name], span, left, right)

    def _equality(self, node: Any, span: _Span, depth: int) -> _Typed:
        _, op_name, left_node, right_node = node.args
        left, right = self.walk(left_node, depth), self.walk(right_node, depth)
        if _Type.NULL in (left.type, right.type):  # a null test: rule-engine's x == null
            if left.type is right.type:
                return self.constant(_Type.BOOLEAN, np.bool_(op_name == "EQ"), span)
            tested = right if left.type is _Type.NULL else left
            is_null = _is_null(tested.type)
            test = is_null if op_name == "EQ" else (lambda value: np.logical_not(is_null(value)))
            return self.combine(_Type.BOOLEAN, test, span, tested)
        symbol = self.operator(span)
        self.same_type(span, left, right, f"'{symbol}' compares {{left}} with {{right}}: they are never equal")
        function = _equal(left.type) if op_name == "EQ" else _not_equal(left.type)
        return self.combine(_Type.BOOLEAN, function, span, left, right)

    def _ordering(self, node: Any, span: _Span, depth: int) -> _Typed:
        _, op_name, left_node, right_node = node.args
        left, right = self.walk(left_node, depth), self.walk(right_node, depth)
        symbol = self.operator(span)
        for operand in (left, right):
            problem = f"'{symbol}' orders numbers or strings, but {self.what(operand)}"
            self.expect(operand, (_Type.NUMBER, _Type.STRING), problem)
        self.same_type(span, left, right, f"'{symbol}' compares {{left}} with {{right}}")
        function = _ordered(left.type, _ORDERED[op_name], inclusive=op_name in ("LE", "GE"))
        return self.combine(_Type.BOOLEAN, function, span, left, right)

    def _logic(self, node: Any, span: _Span, depth: int) -> _Typed:
        _, op_name, left_node, right_node = node.args
        left, right = self.walk(left_node, depth), self.walk(right_node, depth)
        symbol = self.operator(span)
        for operand in (left, right):
            problem = f"'{symbol}' needs true/false on both sides, but {self.what(operand)}"
            self.expect(operand, (_Type.BOOLEAN,), problem)
        logic = np.logical_and if op_name == "AND" else np.logical_or
        return self.combine(_Type.BOOLEAN, lambda a, b: logic(_truthy(a), _truthy(b)), span, left, right)

    def _unary(self, node: Any, span: _Span, depth: int) -> _Typed:
        _, op_name, operand_node = node.args
        operand = self.walk(operand_node, depth)
        if op_name == "NOT":
            self.expect(operand, (_Type.BOOLEAN,), f"'not' needs true/false, but {self.what(operand)}")
            return self.combine(_Type.BOOLEAN, lambda value: np.logical_not(_truthy(value)), span, operand)
        self.expect(operand, (_Type.NUMBER,), f"'-' needs a number, but {self.what(operand)}")
        return self.combine(_Type.NUMBER, np.negative, span, operand)

    def _contains(self, node: Any, span: _Span, depth: int) -> _Typed:
        _, container_node, member_node = node.args
        member = self.walk(member_node, depth)
        symbol = self.operator(span)
        self.expect(
            member, (_Type.NUMBER, _Type.STRING), f"'{symbol}' tests a number or a string, but {self.what(member)}"
        )
        container_span = self.spans[id(container_node)]
        if container_node.cls not in (re_ast.ArrayExpression, re_ast.SetExpression):
            raise self.refuse(
                container_span.start,
                container_span.end,
                f"'{symbol}' needs a list of values written out: credit_tier in ['A', 'B']",
            )
        items = [self.walk(item, depth) for item in container_node.args[1]]
        if not items:
            raise self.refuse(container_span.start, container_span.end, f"the list after '{symbol}' is empty")
        values = []
        for item in items:
            if not item.constant:
                raise self.refuse(item.start, item.end, f"the list after '{symbol}' may hold values only, not facts")
            if item.type is not member.type:
                problem = f"the list after '{symbol}' holds {item.type} where {self.excerpt(member)} is {member.type}"
                raise self.refuse(item.start, item.end, problem)
            value = np.asarray(item.run({}))
            values.append(value.item() if member.type is _Type.NUMBER else value[()])
        return self.combine(_Type.BOOLEAN, _member(member.type, tuple(values)), span, member)

    def _ternary(self, node: Any, span: _Span, depth: int) -> _Typed:
        _, condition_node, true_node, false_node = node.args
        condition = self.walk(condition_node, depth)
        self.expect(
            condition, (_Type.BOOLEAN,), f"the condition before '?' must be true/false, but {self.what(condition)}"
        )
        case_true, case_false = self.walk(true_node, depth), self.walk(false_node, depth)
        for case in (case_true, case_false):
            self.expect(case, (_Type.NUMBER, _Type.STRING, _Type.BOOLEAN), "")
        self.same_type(span, case_true, case_false, "the two cases of '? :' differ: {left} and {right}")
        return self.combine(case_true.type, _ternary, span, condition, case_true, case_false)

    def _coalesce(self, node: Any, span: _Span, depth: int) -> _Typed:
        _, left_node, right_node = node.args
        left, right = self.walk(left_node, depth), self.walk(right_node, depth)
        for operand in (left, right):
            self.expect(operand, (_Type.NUMBER, _Type.STRING, _Type.BOOLEAN), "")
        self.same_type(span, left, right, "'??' replaces a null by a value of the same type, not {left} by {right}")
        return self.combine(left.type, _coalesce(left.type), span, left, right)


# ------------------------------------------------------------------------------------------------ rule-engine


class _LocatedBuild:
    """Stands for a deferred node while rule-engine builds the tree: an error raised building this node (and
    not one of its children) is tagged with the node's span."""

    __slots__ = ("node", "span")

    def __init__(self, node: Any, span: _Span | None) -> None:
        self.node = node
        self.span = span

    def build(self) -> Any:
        try:
            return self.node.build()
        except _Located:
            raise
        except Exception as error:
            if self.span is None:
                raise
            raise _Located(self.span, error) from error


def _located(value: Any, spans: dict[int, _Span]) -> Any:
    if isinstance(value, _DeferredAstNode):
        value.args = tuple(_located(argument, spans) for argument in value.args)
        return _LocatedBuild(value, spans.get(id(value)))
    if isinstance(value, tuple | list):
        return type(value)(_located(item, spans) for item in value)
    return value


def _rule_engine_check(statement: Any, spans: dict[int, _Span], refuse: _Refuse) -> None:
    """Build the rule with rule-engine itself, the schema as its type resolver: what rule-engine refuses (a
    literal division by zero it folds, say) is refused too, at the node it failed on."""
    try:
        _located(statement, spans).build()
    except _Located as located:
        message = getattr(located.error, "message", None) or str(located.error)
        raise refuse(located.span.op_start, located.span.end, f"rule-engine refuses it: {message}") from None
    except Exception as error:
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        raise refuse(0, MAX_LENGTH, f"rule-engine refuses it: {message}") from None
