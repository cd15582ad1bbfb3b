"""Fuzzing every write route with hostile JSON (issue 14; RELIABILITY.md "fuzzing"): bodies nested thousands deep,
numbers of thousands of digits, numbers Python reads but the API must not (full-width and other Unicode digits,
underscores, spaces, exponents, NaN), strings past their limits, wrong types, invalid UTF-8; and import files
(book, prices) made the same way. Every generated request carries at least one hostile part, so each must be
refused: a 4xx in the API's one error shape, never a 5xx nor a success, and nothing changes (the audit chain's
head, the rows a write would touch, no success kept for replay).

`make test` runs a bounded, derandomized number of examples per route (WORKOUT_FUZZ_EXAMPLES, 25 by default);
a bigger, random run:

    WORKOUT_FUZZ_EXAMPLES=2000 WORKOUT_FUZZ_RANDOM=1 .venv/bin/pytest tests/api/test_fuzz_hostile_json.py

(Schema-driven fuzzing of every operation is tests/api/test_schemathesis.py.)"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
from django.core.cache import caches
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st

from accounts.models import Instrument, MarginAccount, Price, Sweep
from core.audit import audit_verify
from core.models import AuditEvent, IdempotencyRecord, Operation
from restructuring.models import Case, CollateralTopUp, Proposal
from tests.api.conftest import Api, World

EXAMPLES = int(os.environ.get("WORKOUT_FUZZ_EXAMPLES", "25"))
RANDOM = os.environ.get("WORKOUT_FUZZ_RANDOM", "") not in ("", "0")
BODY_LIMIT = 64 * 1024  # WORKOUT_API_MAX_BODY_BYTES: past it a body is a 413 before it is read (also a refusal)

# ------------------------------------------------------------------------------------------ JSON, as text
# Values are built as JSON text, not Python objects: json.dumps cannot write 20,000 levels, nor a number of
# 5,000 digits, nor NaN as the literal some clients send.


def _deep(depth: int, kind: str, inner: str) -> str:
    if kind == "array":
        return "[" * depth + inner + "]" * depth
    return '{"k":' * depth + inner + "}" * depth


deep_values = st.builds(
    _deep,
    st.integers(min_value=33, max_value=9_000),
    st.sampled_from(["array", "object"]),
    st.sampled_from(["1", '"5"', "null", "[]", "{}"]),
)
huge_numbers = st.builds(
    lambda digits, fraction, quoted: f'"{digits}{fraction}"' if quoted else f"{digits}{fraction}",
    st.integers(min_value=21, max_value=5_000).map(lambda n: "9" * n),
    st.sampled_from(["", ".5", "." + "1" * 40]),
    st.booleans(),
)
_UNICODE_DIGITS = st.characters(categories=["Nd"]).filter(lambda c: not ("0" <= c <= "9"))
odd_numbers = st.one_of(
    st.sampled_from(
        [
            "\uff11\uff12\uff13",  # full-width
            "\u0661\u0662\u0663",  # Arabic-Indic
            "1_000",
            " 12",
            "12 ",
            "\t5",
            "5\n",
            "1e3",
            "1E+21",
            "+5",
            "5.",
            ".5",
            "0x10",
            "1,5",
            "1 000",
            "NaN",
            "Infinity",
            "-Infinity",
            "sNaN",
            "",
            "-",
            "--5",
            "5-",
            "½",
        ]
    ),
    st.text(_UNICODE_DIGITS, min_size=1, max_size=8),
    st.builds(lambda a, b: f"{a}_{b}", st.integers(1, 999), st.integers(0, 999)),
    st.builds(lambda n, pad: f"{pad}{n}{pad}", st.integers(1, 10**6), st.sampled_from([" ", "\u00a0", "\u2003"])),
).map(lambda text: json.dumps(text))
json_literals = st.sampled_from(["NaN", "Infinity", "-Infinity", "true", "false", "null", "[]", "{}", '""'])
wrong_types = st.one_of(
    json_literals,
    st.floats(allow_nan=False, allow_infinity=False).map(repr),  # a JSON number where a string is due
    st.lists(st.integers(), max_size=3).map(json.dumps),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2).map(json.dumps),
)
long_strings = st.integers(min_value=2_001, max_value=60_000).map(lambda n: json.dumps("x" * n))
hostile_values = st.one_of(deep_values, huge_numbers, odd_numbers, wrong_types)
# For text fields: REST framework's CharField takes a JSON number as its text, so a number is no hostile text
# unless it is too long to parse at all.
hostile_texts = st.one_of(
    deep_values,
    long_strings,
    st.sampled_from(["true", "false", "null", "[]", "{}", '{"a": "b"}']),
    st.integers(min_value=101, max_value=5_000).map(lambda n: "9" * n),
)


def _object(fields: dict[str, str]) -> str:
    return "{" + ",".join(f"{json.dumps(name)}:{value}" for name, value in fields.items()) + "}"


@st.composite
def hostile_bodies(draw: Any, valid: dict[str, str], hostile: dict[str, st.SearchStrategy[str]]) -> str:
    """A body with the route's valid fields and at least one of them hostile; or a hostile body as a whole."""
    whole = st.one_of(
        deep_values,
        huge_numbers,
        odd_numbers,
        json_literals.filter(lambda text: text != "{}"),  # {} is a whole accept (as the offer stands)
        st.just('{"a": 1,'),  # cut short
        st.just("\ufeff{}"),  # a byte-order mark
    )
    if draw(st.integers(0, 4)) == 0:
        return draw(whole)
    names = sorted(hostile)
    spoiled = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    fields = dict(valid)
    for name in spoiled:
        fields[name] = draw(hostile[name])
    if draw(st.integers(0, 5)) == 0:
        fields[draw(st.sampled_from(["amount ", "Amount", "state", "id", "\u0000"]))] = '"x"'  # a field not named
    return _object(fields)


# --------------------------------------------------------------------------------------------- the routes


def _routes(world: World) -> list[tuple[str, str, str, st.SearchStrategy[str]]]:
    """(name, role, path, bodies) for every JSON write route."""
    offer = world.a_offer.pk
    account = str(world.a_account.pk)
    amount = st.one_of(hostile_values, st.sampled_from(['"12.345"', '"0"', '"-5"', '"0.000000001"']))
    return [
        (
            "accept",
            "client_a",
            f"/api/v1/offers/{offer}/accept/",
            hostile_bodies(
                {"terms_hash": json.dumps("0" * 64)}, {"terms_hash": st.one_of(hostile_values, hostile_texts)}
            ),
        ),
        (
            "decline",
            "client_a",
            f"/api/v1/offers/{offer}/decline/",
            hostile_bodies(
                {"reason": '"too dear"'},
                {"reason": st.one_of(hostile_texts, st.just('"  "'))},
            ),
        ),
        (
            "counter",
            "client_a",
            f"/api/v1/offers/{offer}/counter/",
            hostile_bodies(
                {"term_months": "13", "rate_annual": '"0.07"', "collateral_to_add": '"300"'},
                {
                    "term_months": st.one_of(
                        hostile_values, st.sampled_from(["0", "601", "1.5", "13.0", '"13"', '"\uff11\uff13"', "-1"])
                    ),
                    "rate_annual": st.one_of(hostile_values, st.sampled_from(['"1.5"', '"-0.01"'])),
                    "collateral_to_add": amount,
                },
            ),
        ),
        (
            "top-up",
            "client_a",
            "/api/v1/top-ups/",
            hostile_bodies(
                {"account": account, "amount": '"75.00"', "reference": '"wire"'},
                {
                    "account": st.one_of(
                        hostile_values,
                        st.sampled_from([f'"{account}"', f"{account}.0", "0", "-1", str(world.b_account.pk)]),
                    ),
                    "amount": amount,
                    "reference": hostile_texts,
                },
            ),
        ),
        (
            "sweep",
            "operator",
            "/api/v1/operations/sweeps/",
            hostile_bodies(
                {"shards": "1"},
                {"shards": st.one_of(hostile_values, st.sampled_from(["0", "65", "1.5", "2.0", '"2"', "true"]))},
            ),
        ),
    ]


def _fingerprint() -> tuple[Any, ...]:
    """What any write would change: the audit chain's head and the rows of what the routes write."""
    head = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
    return (
        head,
        CollateralTopUp.objects.count(),
        sorted(Proposal.objects.values_list("pk", "state", "version")),
        sorted(Case.objects.values_list("pk", "state")),
        Sweep.objects.count(),
        Operation.objects.count(),
        # The idempotency layer keeps the answer of a request the service refused (a retry gets the same answer):
        # a cache of the response, not a change; a kept success would be one.
        IdempotencyRecord.objects.filter(response_status__lt=400).count(),
        Price.objects.count(),
        MarginAccount.objects.count(),
        Instrument.objects.count(),
    )


def _settings(examples: int) -> Callable[[Any], Any]:
    return hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure prints the body as generated
        suppress_health_check=list(HealthCheck),
    )


def _refused(response: Any, sent: str | bytes) -> None:
    shown = sent[:200]
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300], shown)
    error = response.json()["error"]
    assert isinstance(error["code"], str), shown
    assert isinstance(error["message"], str), shown
    assert len(response.content) < 4_000, shown  # a refusal does not echo a huge value back


def _fuzz(api: Api, path: str, bodies: st.SearchStrategy[str], before: tuple[Any, ...]) -> set[int]:
    """Send the route `EXAMPLES` hostile bodies; the statuses it answered."""
    statuses: set[int] = set()

    @_settings(EXAMPLES)
    @hypothesis.given(body=bodies, invalid_utf8=st.integers(0, 19))
    def send(body: str, invalid_utf8: int) -> None:
        data: str | bytes = body
        if invalid_utf8 == 0:  # a byte that is no UTF-8
            data = body.encode()[:100] + b"\xff" + body.encode()[100:]
        caches["default"].clear()  # the per-token throttle counts: a long run is not throttled
        response = api.post(path, data, key=str(uuid.uuid4()))
        _refused(response, data)
        statuses.add(response.status_code)
        assert _fingerprint() == before, data[:200]

    send()
    return statuses


@pytest.mark.django_db
def test_hostile_json_to_every_write_route_is_refused_and_changes_nothing(world: World) -> None:
    before = _fingerprint()
    assert audit_verify().ok

    seen = {name: _fuzz(world.api(role), path, bodies, before) for name, role, path, bodies in _routes(world)}

    assert audit_verify().ok
    assert set(seen) == {"accept", "decline", "counter", "top-up", "sweep"}
    assert all(codes <= {400, 404, 409, 413, 415, 422} for codes in seen.values()), seen


# ------------------------------------------------------------------------------------------------ uploads


def _book(positions: str, cash: str) -> str:
    return (
        '{"groups": [], "clients": [{"code": "FZ", "name": "Fuzz"}], "instruments": [], '
        f'"accounts": [{{"code": "FZ-1", "client": "FZ", "cash": {cash}, "positions": {positions}}}]}}'
    )


@st.composite
def hostile_files(draw: Any) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["book", "prices", "whole"]))
    if kind == "whole":
        text = draw(st.one_of(deep_values, huge_numbers, json_literals.filter(lambda t: t not in ("[]", "{}"))))
        return draw(st.sampled_from(["book.json", "prices.json"])), text.encode()
    # (a JSON float is a number in a file, and null takes the default: neither is hostile here)
    value = draw(st.one_of(deep_values, huge_numbers, odd_numbers, st.sampled_from(["true", "[]", "{}", '"abc"'])))
    if kind == "book":
        position = f'[{{"instrument": "BTC", "quantity": {value}}}]'
        text = draw(st.sampled_from([_book(position, '"5"'), _book("[]", value)]))
        return "book.json", text.encode()
    price = f'[{{"instrument": "BTC", "time": "2026-03-02T21:00:00Z", "price": {value}}}]'
    return "prices.json", price.encode()


@pytest.mark.django_db
def test_hostile_import_files_are_refused_and_import_nothing(world: World) -> None:
    before = _fingerprint()
    api = world.api("operator")

    @_settings(max(EXAMPLES, 10))
    @hypothesis.given(upload=hostile_files())
    def send(upload: tuple[str, bytes]) -> None:
        name, content = upload
        route = "/api/v1/operations/prices/" if name.startswith("prices") else "/api/v1/operations/book/"
        caches["default"].clear()
        response = api.upload(route, name, content)
        _refused(response, content)
        assert _fingerprint() == before, content[:200]

    send()
    assert audit_verify().ok
