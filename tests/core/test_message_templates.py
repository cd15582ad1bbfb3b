"""The sandbox that renders staff-written message templates (core/message_templates.py): what it refuses, what it
cannot reach, and how it formats for the reader's locale. No database."""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest

from core.message_templates import (
    SOURCE_MAX_CHARS,
    TemplateProblem,
    compile_template,
    plain,
    render,
    template_check,
)

KNOWN = frozenset({"name", "amount", "currency", "when", "day", "rate", "items", "terms"})


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{% load static %}", "Invalid block tag on line 1: 'load'"),
        ("{% include 'base.html' %}", "'include'"),
        ("{% extends 'base.html' %}", "'extends'"),
        ("{% debug %}", "'debug'"),
        ("{% url 'login' %}", "'url'"),
        ("{% csrf_token %}", "'csrf_token'"),
        ("{% lorem 1000000 w %}", "'lorem'"),
        ("{% autoescape off %}{{ name }}{% endautoescape %}", "'autoescape'"),
        ("{{ name|safe }}", "Invalid filter: 'safe'"),
        ("{{ name|center:'999999999' }}", "Invalid filter: 'center'"),
        ("{{ name|stringformat:'999999999s' }}", "Invalid filter: 'stringformat'"),
        ("{{ name|add:name }}", "Invalid filter: 'add'"),
        ("{{ name|make_list }}", "Invalid filter: 'make_list'"),
        ("{{ name|urlencode }}", "Invalid filter: 'urlencode'"),
        ("{{ name.__class__ }}", "may not begin with underscores"),
        ("{{ password }}", "unknown variable password: this message's variables are amount, currency, day"),
        ("{{ amount|money:secret }}", "unknown variable secret"),
        ("{% if secret %}x{% endif %}", "unknown variable secret"),
        ("{% for i in items %}{% for j in items %}{% endfor %}{% endfor %}", "line 1: a loop inside a loop"),
        ("{% if %}", "Unexpected end of expression in if tag"),
        ("x" * (SOURCE_MAX_CHARS + 1), f"at most {SOURCE_MAX_CHARS}"),
    ],
)
def test_the_sandbox_refuses_what_a_message_may_not_do(source: str, problem: str) -> None:
    with pytest.raises(TemplateProblem) as refused:
        template_check(source, known=KNOWN)
    assert problem in str(refused.value)


def test_variables_bound_by_the_templates_own_tags_are_known() -> None:
    checked = template_check(
        "{% for item in items %}{{ forloop.counter }} {{ item }}{% endfor %}"
        "{% with total=amount %}{{ total|money:currency }}{% endwith %}{% filter upper %}{{ name }}{% endfilter %}"
        "{{ terms.term_months }}",
        known=KNOWN,
    )
    assert checked.variables == {"items", "amount", "currency", "name", "terms"}


def test_the_context_is_plain_values_a_template_cannot_change_nor_call_into() -> None:
    # given a context with a mapping and a list (whose clear and pop the template language would call)
    data = {"terms": {"term_months": 12}, "items": [1, 2], "amount": "1.50"}
    template = compile_template("{{ terms.clear }}{{ items.pop }}{{ terms.term_months }}-{{ items|length }}")

    # when rendered
    out = render(template, data, html=False)

    # then nothing was called on the caller's objects, and they are as they were
    assert out == "12-2"
    assert data == {"terms": {"term_months": 12}, "items": [1, 2], "amount": "1.50"}
    frozen = plain(data)
    assert isinstance(frozen, MappingProxyType)
    assert isinstance(frozen["items"], tuple)
    with pytest.raises(TypeError, match="a object cannot go into a message template's context"):
        plain({"model": object()})


def test_html_is_autoescaped_and_text_is_not() -> None:
    template = compile_template("<p>{{ name }}</p>")
    assert render(template, {"name": "<b>Smith & Co</b>"}, html=True) == "<p>&lt;b&gt;Smith &amp; Co&lt;/b&gt;</p>"
    assert render(template, {"name": "<b>Smith & Co</b>"}, html=False) == "<p><b>Smith & Co</b></p>"


def test_amounts_rates_and_times_are_written_the_way_the_readers_locale_and_time_zone_write_them() -> None:
    template = compile_template(
        "{{ amount|money:currency }} | {{ rate|percent }} | {{ when|datetime }} | {{ day|date }} | "
        "{{ items|join:', ' }}"
    )
    context = {
        "amount": "1234.50",
        "currency": "USD",
        "rate": "0.0825",
        "when": "2026-12-08T14:03:07+00:00",
        "day": "2026-12-09",
        "items": [3, 4],
    }
    berlin = ZoneInfo("Europe/Berlin")
    assert render(template, context, html=False, locale="de", time_zone=berlin) == (
        "1.234,50\xa0$ | 8,25\xa0% | 8. Dezember 2026, 15:03:07 MEZ | 9. Dezember 2026 | 3, 4"
    )
    assert render(template, context, html=False, locale="en", time_zone=dt.UTC) == (
        "$1,234.50 | 8.25% | December 8, 2026, 2:03:07\u202fPM UTC | December 9, 2026 | 3, 4"
    )
    # a value that is not of the kind the filter formats is shown as it is
    shown = render(
        compile_template("{{ amount|money:currency }}|{{ when|datetime }}|{{ missing }}"),
        {"amount": "n/a", "currency": "USD", "when": "soon"},
        html=False,
    )
    assert shown == "n/a|soon|"


def test_join_joins_lists_only_with_a_short_separator() -> None:
    template = compile_template("{{ name|join:'--------------------' }}|{{ items|join:'0123456789ABCDEF' }}")
    assert render(template, {"name": "abc", "items": ["x", "y"]}, html=False) == "abc|x0123456789y"


@pytest.mark.parametrize("locale", ["en", "de"])
@pytest.mark.parametrize("currency", ["USD", "EUR", "BTC", "JPY", "USDT"])
def test_the_money_filter_writes_exactly_what_money_text_writes(locale: str, currency: str) -> None:
    """The filter's formatter (looked up once per locale and currency) against Babel's formatting through
    core.money.money_text, on amounts from a cent to billions, negative, rounding at the currency's places."""
    import random
    from decimal import Decimal

    from core.message_templates import _money_formatter
    from core.money import money_text

    rng = random.Random(f"{locale}{currency}")
    amounts = [
        Decimal(0),
        Decimal("0.01"),
        Decimal("-0.01"),
        Decimal("999.995"),
        Decimal("1000"),
        Decimal("-1234567.891"),
    ]
    amounts += [Decimal(rng.randint(-(10**12), 10**12)).scaleb(-rng.randint(0, 8)) for _ in range(300)]
    formatter = _money_formatter(locale, currency)
    for amount in amounts:
        assert formatter(amount) == money_text(amount, currency, locale=locale), (amount, locale, currency)


def test_a_locale_beyond_the_sites_languages_is_written_by_money_text_itself() -> None:
    template = compile_template("{{ amount|money:currency }}")
    shown = render(template, {"amount": "-1234.5", "currency": "USD"}, html=False, locale="de-ch")
    assert shown == "-$\xa01'234.50"
