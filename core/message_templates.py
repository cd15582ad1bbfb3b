"""Message templates as data: Django's template language, in a sandbox.

Staff write the text of the messages clients receive (restructuring/services/message_templates.py). Their templates
are rendered here, by an `Engine` of our own that is not the site's:

- no loaders: a template is a string and can reach no other (no `include`, `extends`, `block`), nor any file;
- no tag libraries (`load` does not exist) and only the tags and filters below: nothing that prints the context
  (`debug`), reverses URLs, writes CSRF tokens, turns escaping off (`autoescape`, `safe`), or makes text grow
  beyond what the context holds (`lorem`, `center`, `ljust`, `stringformat`, `add`, `make_list`, `urlencode`);
  `join` joins lists only, with a short separator;
- the context holds plain values only (str, int, bool, None, and read-only mappings and tuples of them): the
  template language calls what it finds callable, so no model, no dict with `clear`, no list with `pop` goes in;
- HTML (a letter) is autoescaped, text (an email, an SMS) is not, since it is not HTML;
- a template is checked before it is saved (`template_check`): it must parse, name only the variables its kind
  declares (or that its own `for` and `with` bind), nest no loop in a loop, stay under `SOURCE_MAX_CHARS`, and its
  rendering with sample values must stay under the channel's length. A template that passes cannot run long nor
  grow without bound on real values either: loops are not nested and no filter amplifies its input.

Four filters format the plain values the way the reader's locale does, in the active language and time zone
(`render` sets both): `money:currency` ("250.00" USD is "$250.00" in English and "250,00 $" in German),
`percent` ("0.0825" is "8.25%"), `datetime` (an ISO 8601 instant as "December 8, 2026, 2:03:07 PM UTC") and
`date` ("December 8, 2026").

This module is the template library of its engine too (`register`): the engine's only builtins.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, ClassVar

from django.template import (
    Context,
    Engine,
    Library,
    Node,
    NodeList,
    Template,
    TemplateSyntaxError,
    defaultfilters,
    defaulttags,
)
from django.template.base import FilterExpression, Variable
from django.template.defaulttags import FilterNode, ForNode, TemplateLiteral, WithNode
from django.template.smartif import TokenBase
from django.utils import timezone, translation

SOURCE_MAX_CHARS = 10_000

# The tags and filters of the sandbox (module docstring); everything else does not exist in it.
TAGS = (
    "comment",
    "cycle",
    "filter",
    "firstof",
    "for",
    "if",
    "ifchanged",
    "now",
    "resetcycle",
    "spaceless",
    "templatetag",
    "verbatim",
    "with",
)
FILTERS = (
    "capfirst",
    "cut",
    "default",
    "default_if_none",
    "divisibleby",
    "first",
    "last",
    "length",
    "linebreaks",
    "linebreaksbr",
    "lower",
    "pluralize",
    "slice",
    "striptags",
    "title",
    "truncatechars",
    "truncatewords",
    "upper",
    "wordcount",
    "yesno",
)
_JOIN_SEPARATOR_MAX = 10

# The locale and time zone of the render under way (`render` sets them): the filters read them here, not through
# Django's translation and timezone state, whose every read goes through asgiref's Local (a few microseconds each,
# tens of thousands of times for a sweep's messages).
_RENDERING: contextvars.ContextVar[tuple[str, dt.tzinfo] | None] = contextvars.ContextVar("rendering", default=None)


def _reader() -> tuple[str, dt.tzinfo]:
    """(locale, time zone) of the reader: the render's, else the active ones (a filter used outside `render`)."""
    current = _RENDERING.get()
    if current is not None:
        return current
    return translation.to_locale(translation.get_language() or "en"), timezone.get_current_timezone()


register = Library()
for _name in TAGS:
    register.tags[_name] = defaulttags.register.tags[_name]
for _name in FILTERS:
    register.filters[_name] = defaultfilters.register.filters[_name]


class TemplateProblem(ValueError):
    """A template that may not be used, and why (the message names the line or the variable)."""


# ------------------------------------------------------------------------------------------------ filters


@register.filter(name="join", is_safe=True, needs_autoescape=True)
def join_filter(value: Any, separator: Any = ", ", autoescape: bool = True) -> Any:
    """A list's items with `separator` between them (at most 10 characters); a string is returned as it is (a
    string's characters joined would let a chain of joins grow without bound)."""
    if not isinstance(value, list | tuple):
        return value
    items = [item if isinstance(item, str) else str(item) for item in value]
    return defaultfilters.join(items, str(separator)[:_JOIN_SEPARATOR_MAX], autoescape=autoescape)


@register.filter(name="money")
def money_filter(value: Any, currency: Any = "") -> str:
    """An amount (a string such as "250.00", as the payloads hold them) in `currency`, as the active locale writes
    it (core.money.money_text's text, made faster: `_money_formatter`); a value that is not an amount is shown as it
    is."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not amount.is_finite():
        return str(value)
    locale, _zone = _reader()
    if locale not in _FAST_MONEY_LOCALES:
        from core.money import money_text

        return money_text(amount, str(currency or ""), locale=locale)
    return _money_formatter(locale, str(currency or ""))(amount)


# The locales whose money `_money_formatter` writes (the site's languages, held to money_text by a test); any other
# goes through money_text itself.
_FAST_MONEY_LOCALES = frozenset({"en", "de"})


@functools.lru_cache(maxsize=256)
def _money_formatter(locale: str, currency: str) -> Callable[[Decimal], str]:
    """core.money.money_text for one locale and currency, as a function that formats with str operations: the
    locale's currency pattern (its symbol's place, its grouping), symbols and the currency's places are looked up
    once here. Babel's own formatting, which money_text calls, looks them all up again for every amount: a third
    of a millisecond, which a sweep's thousands of messages cannot afford. tests/core/test_message_templates.py
    holds the two to the same text."""
    from babel.numbers import get_currency_symbol, get_decimal_symbol, get_group_symbol, get_minus_sign_symbol

    from core.money import _pattern, currency_places

    places = currency_places(currency)
    _language, pattern = _pattern(locale, places)  # the pattern money_text applies
    symbol = get_currency_symbol(currency, locale)
    group, decimal, minus = get_group_symbol(locale), get_decimal_symbol(locale), get_minus_sign_symbol(locale)
    prefixes = tuple(p.replace("¤", symbol).replace("-", minus) for p in pattern.prefix)
    suffixes = tuple(p.replace("¤", symbol).replace("-", minus) for p in pattern.suffix)
    primary, secondary = pattern.grouping
    quantum = Decimal(1).scaleb(-places)

    def grouped(digits: str) -> str:
        if len(digits) <= primary:
            return digits
        head, tail = digits[:-primary], [digits[-primary:]]
        while len(head) > secondary:
            head, tail = head[:-secondary], [head[-secondary:], *tail]
        return group.join([head, *tail])

    def format_amount(amount: Decimal) -> str:
        value = amount.quantize(quantum)
        negative = value < 0
        whole, _, fraction = format(abs(value), "f").partition(".")
        number = grouped(whole) + (decimal + fraction if places else "")
        return prefixes[negative] + number + suffixes[negative]

    return format_amount


def _instant(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    return None


@register.filter(name="percent")
def percent_filter(value: Any) -> str:
    """A rate as a fraction ("0.0825", as the payloads hold them) as a percentage the way the active locale writes
    it ("8.25%", German "8,25 %"); a value that is not a number is shown as it is."""
    from babel.numbers import format_percent

    if value is None or value == "":
        return ""
    try:
        rate = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    locale, _zone = _reader()
    return str(format_percent(rate, locale=locale, decimal_quantization=False))


@register.filter(name="datetime")
def datetime_filter(value: Any) -> str:
    """An instant (ISO 8601, as the payloads hold them) in the active time zone and locale, with the zone named."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    locale, zone = _reader()
    return _datetime_text(value, zone, locale)


@functools.lru_cache(maxsize=4096)
def _datetime_text(value: str, zone: dt.tzinfo, locale: str) -> str:
    """Once per instant, zone and locale: a sweep's margin calls share their deadline."""
    from babel.dates import format_datetime

    moment = _instant(value)
    if moment is None:
        return value
    return str(format_datetime(moment.astimezone(zone), "long", tzinfo=zone, locale=locale))


@register.filter(name="date")
def date_filter(value: Any) -> str:
    """A date ("2026-12-08") or the date of an instant in the active time zone, as the active locale writes it."""
    from babel.dates import format_date

    locale, zone = _reader()
    moment = _instant(value)
    if moment is not None:
        return str(format_date(moment.astimezone(zone).date(), "long", locale=locale))
    if isinstance(value, str) and len(value) == 10:
        try:
            return str(format_date(dt.date.fromisoformat(value), "long", locale=locale))
        except ValueError:
            pass
    return "" if value is None else str(value)


# ------------------------------------------------------------------------------------------------ the engine


class _Sandbox(Engine):
    # Engine() puts Django's default tags and filters before the builtins it is given: the sandbox has only its own.
    default_builtins: ClassVar[list[str]] = []


_ENGINE = _Sandbox(
    dirs=[],
    app_dirs=False,
    loaders=[],
    libraries={},
    builtins=[__name__],
    debug=False,
    string_if_invalid="",
)


def compile_template(source: str) -> Template:
    """The template of `source`, parsed by the sandbox; TemplateProblem if it does not parse or is too long."""
    if len(source) > SOURCE_MAX_CHARS:
        raise TemplateProblem(f"the template is {len(source)} characters long: at most {SOURCE_MAX_CHARS}")
    try:
        return _ENGINE.from_string(source)
    except TemplateSyntaxError as error:
        raise TemplateProblem(_syntax_problem(source, error)) from None


def _syntax_problem(source: str, error: TemplateSyntaxError) -> str:
    info = getattr(error, "template_debug", None)
    line = f"line {info['line']}: " if info else ""
    return f"{line}{error}"


def plain(value: Any) -> Any:
    """`value` as the sandbox's context holds it: read-only mappings and tuples of str, int, bool and None (Decimal
    and datetimes as text). Anything else is refused: a model or an object with methods never reaches a template."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return MappingProxyType({str(key): plain(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(plain(item) for item in value)
    raise TypeError(f"a {type(value).__name__} cannot go into a message template's context")


def render(
    template: Template,
    context: Mapping[str, Any],
    *,
    html: bool,
    locale: str = "en",
    time_zone: dt.tzinfo | None = None,
) -> str:
    """`template` rendered on `context` (plain values; see `plain`), in `locale` and `time_zone` (for the filters),
    autoescaped when `html`. Surrounding whitespace is dropped."""
    frozen = context if isinstance(context, MappingProxyType) else plain(context)
    zone = time_zone or dt.UTC
    reading = _RENDERING.set((translation.to_locale(locale), zone))
    try:
        with _language(locale), _zone(zone):
            # use_l10n off: numbers are the context's own text (a case number is not "4,711"); amounts, rates and
            # times are formatted by the filters for the reader
            return template.render(Context(dict(frozen), autoescape=html, use_l10n=False)).strip()
    finally:
        _RENDERING.reset(reading)


def _zone(zone: dt.tzinfo) -> Any:
    import contextlib

    return contextlib.nullcontext() if timezone.get_current_timezone() is zone else timezone.override(zone)


def _language(locale: str) -> Any:
    """translation.override(locale), or nothing when it is the active language already (a bulk render sets it once
    for its many messages)."""
    import contextlib

    return contextlib.nullcontext() if translation.get_language() == locale else translation.override(locale)


# ------------------------------------------------------------------------------------------------ the check


@dataclass(frozen=True)
class CheckedTemplate:
    template: Template
    variables: frozenset[str]  # the context's names it reads


def template_check(source: str, *, known: frozenset[str] | set[str]) -> CheckedTemplate:
    """Parse `source` and hold it to the sandbox's rules (module docstring): the variables it reads are among
    `known` or bound by its own tags, and no loop is nested in another. TemplateProblem says what is wrong."""
    template = compile_template(source)
    used: set[str] = set()
    bound: set[str] = {"forloop"}
    _walk(template.nodelist, used, bound, loop_depth=0)
    unknown = sorted(used - bound - set(known))
    if unknown:
        names = ", ".join(unknown)
        raise TemplateProblem(
            f"unknown variable{'s' if len(unknown) > 1 else ''} {names}: this message's variables are "
            + ", ".join(sorted(known))
        )
    return CheckedTemplate(template=template, variables=frozenset(used & set(known)))


def _walk(nodes: NodeList | list[Node], used: set[str], bound: set[str], *, loop_depth: int) -> None:
    for node in nodes:
        depth = loop_depth
        if isinstance(node, ForNode):
            if loop_depth:
                raise TemplateProblem(f"line {_line(node)}: a loop inside a loop is not allowed in a message")
            bound.update(node.loopvars)
            depth += 1
        if isinstance(node, WithNode):
            bound.update(node.extra_context)
        if isinstance(node, FilterNode):  # `{% filter f %}` filters the variable "var" it binds itself
            bound.add("var")
        for expression in _expressions(vars(node), set()):
            _names(expression, used)
        for attribute in node.child_nodelists:
            child = getattr(node, attribute, None)
            if child:  # an `if`'s "nodelist" holds the nodes of all its branches
                _walk(child, used, bound, loop_depth=depth)


def _line(node: Node) -> str:
    token = getattr(node, "token", None)
    return str(getattr(token, "lineno", "?"))


def _expressions(value: Any, seen: set[int]) -> Iterator[FilterExpression]:
    """Every FilterExpression held by a node's attributes (its variables, its conditions' operands, a `with`'s
    values), without descending into child nodes (walked separately)."""
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, FilterExpression):
        yield value
    elif isinstance(value, TemplateLiteral):
        expression = value.value
        if isinstance(expression, FilterExpression):
            yield expression
    elif isinstance(value, TokenBase):
        yield from _expressions(vars(value), seen)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _expressions(item, seen)
    elif isinstance(value, list | tuple) and not isinstance(value, NodeList):
        for item in value:
            yield from _expressions(item, seen)


def _names(expression: FilterExpression, used: set[str]) -> None:
    if isinstance(expression.var, Variable) and expression.var.lookups:
        used.add(expression.var.lookups[0])
    for _function, arguments in expression.filters:
        for is_lookup, argument in arguments:
            if is_lookup and isinstance(argument, Variable) and argument.lookups:
                used.add(argument.lookups[0])
