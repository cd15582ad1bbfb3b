"""Bad input gets a 400 naming what and where, never a 500, and changes nothing (issue 14): JSON nested 20,000
deep, a 5,000-digit number, number formats Python reads but the API must not (full-width digits, underscores,
spaces, exponents), amounts with more places than their currency; and money comes back with its currency's
places."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from accounts.models import MarginAccount, Price
from core.models import AuditEvent
from restructuring.models import CollateralTopUp, Proposal, ProposalState
from tests.api.conftest import Api, World

DEEP = "[" * 20_000 + "]" * 20_000
DEEP_OBJECT = '{"":' * 12_000 + "1" + "}" * 12_000  # 12,000 levels: 20,000 would pass the 64 KiB body limit


def _writes(world: World) -> list[tuple[str, str]]:
    """Every JSON write route of the API, with the role that may call it."""
    offer = world.a_offer.pk
    return [
        ("client_a", f"/api/v1/offers/{offer}/accept/"),
        ("client_a", f"/api/v1/offers/{offer}/decline/"),
        ("client_a", f"/api/v1/offers/{offer}/counter/"),
        ("client_a", "/api/v1/top-ups/"),
        ("operator", "/api/v1/operations/sweeps/"),
    ]


def _state() -> tuple[int, int, list[str]]:
    return (
        AuditEvent.objects.count(),
        CollateralTopUp.objects.count(),
        list(Proposal.objects.order_by("pk").values_list("state", flat=True)),
    )


def _raw(api: Api, path: str, body: str) -> Any:
    return api.post(path, body)  # a str is sent as it is


@pytest.mark.django_db
@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["arrays", "objects"])
def test_json_nested_20000_deep_is_a_400_on_every_write_route_and_changes_nothing(world: World, body: str) -> None:
    before = _state()
    for role, path in _writes(world):
        response = _raw(world.api(role), path, body)

        assert response.status_code == 400, path
        error = response.json()["error"]
        assert error["code"] == "json_too_deep", path
        assert "more than 32 levels deep" in error["message"]
    assert _state() == before


@pytest.mark.django_db
def test_json_within_the_depth_limit_is_read(world: World) -> None:
    nested = {"amount": "5", "account": world.a_account.pk, "reference": "x"}
    response = world.api("client_a").post("/api/v1/top-ups/", json.dumps(nested))

    assert response.status_code == 201
    # 32 levels are parsed (then refused as a body that is not the expected object), 33 are not
    at_limit = world.api("client_a").post("/api/v1/top-ups/", "[" * 32 + "]" * 32)
    past = world.api("client_a").post("/api/v1/top-ups/", "[" * 33 + "]" * 33)
    assert (at_limit.status_code, at_limit.json()["error"]["code"]) == (400, "invalid")
    assert (past.status_code, past.json()["error"]["code"]) == (400, "json_too_deep")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"account": %(account)s, "amount": 9%(digits)s}', "json_number_too_long"),  # a JSON number
        ('{"account": %(account)s, "amount": "9%(digits)s"}', "max_whole_digits"),  # a string
        ('{"account": 9%(digits)s, "amount": "5"}', "json_number_too_long"),
    ],
    ids=["number", "string", "id"],
)
def test_a_5000_digit_number_is_a_400_and_not_echoed_whole(world: World, body: str, code: str) -> None:
    before = _state()
    text = body % {"account": world.a_account.pk, "digits": "9" * 4999}

    response = world.api("client_a").post("/api/v1/top-ups/", text)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert len(response.content) < 500
    assert _state() == before


@pytest.mark.django_db
def test_a_5000_digit_counter_is_a_400(world: World) -> None:
    before = _state()
    path = f"/api/v1/offers/{world.a_offer.pk}/counter/"

    for body in ({"collateral_to_add": "9" * 5000}, {"rate_annual": "0." + "1" * 5000}):
        response = world.api("client_a").post(path, body)

        assert response.status_code == 400
        assert response.json()["error"]["field"] in body
    assert _state() == before


# Each of these Python's Decimal reads as a number (123, 1000, 12, 1000, 5, 123, 12): the API does not.
ODD_NUMBERS = [
    pytest.param("\uff11\uff12\uff13", id="full-width-digits"),
    pytest.param("\u0661\u0662\u0663", id="arabic-indic-digits"),
    pytest.param("1_000", id="underscores"),
    pytest.param(" 12", id="leading-space"),
    pytest.param("12 ", id="trailing-space"),
    pytest.param("12\n", id="trailing-newline"),
    pytest.param("1e3", id="exponent"),
    pytest.param("+5", id="plus-sign"),
    pytest.param("5.", id="bare-point"),
    pytest.param(".5", id="no-whole-part"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ODD_NUMBERS)
def test_number_formats_python_reads_are_refused_as_amounts(world: World, amount: str) -> None:
    before = _state()

    top_up = world.api("client_a").post("/api/v1/top-ups/", {"account": world.a_account.pk, "amount": amount})
    counter = world.api("client_a").post(f"/api/v1/offers/{world.a_offer.pk}/counter/", {"collateral_to_add": amount})

    for response, field in ((top_up, "amount"), (counter, "collateral_to_add")):
        assert response.status_code == 400
        assert response.json()["error"] == {
            "code": "invalid",
            "message": f"{amount!r} is not a plain decimal number (ASCII digits, optionally a point and more digits; "
            "no spaces, underscores, exponent or other digits)",
            "field": field,
        }
    assert _state() == before


@pytest.mark.django_db
def test_an_amount_has_at_most_its_currency_places(world: World) -> None:
    api = world.api("client_a")
    before = _state()

    cents = api.post("/api/v1/top-ups/", {"account": world.a_account.pk, "amount": "12.345"})
    counter = api.post(f"/api/v1/offers/{world.a_offer.pk}/counter/", {"collateral_to_add": "300.001"})

    assert cents.status_code == 400
    assert cents.json()["error"] == {
        "code": "invalid",
        "message": "amount: 12.345 has more than 2 decimal places, the places of USD",
        "field": "amount",
    }
    assert counter.status_code == 400
    assert counter.json()["error"]["field"] == "collateral_to_add"
    assert "more than 2 decimal places, the places of USD" in counter.json()["error"]["message"]
    assert _state() == before
    # trailing zeros are no extra places; a BTC account takes 8
    assert api.post("/api/v1/top-ups/", {"account": world.a_account.pk, "amount": "12.3400"}).status_code == 201
    MarginAccount.objects.filter(pk=world.a_account.pk).update(base_currency="BTC")
    satoshi = api.post("/api/v1/top-ups/", {"account": world.a_account.pk, "amount": "0.00000001"})
    assert (satoshi.status_code, satoshi.json()["amount"]) == (201, "0.00000001")


_MONEY = re.compile(r"^-?[0-9]+\.[0-9]{2}$")  # USD: two places, no more


def _money_fields(document: Any, names: set[str], path: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key in names and not isinstance(value, dict | list) and value is not None:
                found.append((f"{path}.{key}", value))
            found += _money_fields(value, names, f"{path}.{key}")
    elif isinstance(document, list):
        for index, item in enumerate(document):
            found += _money_fields(item, names, f"{path}[{index}]")
    return found


MONEY_NAMES = {
    "cash",
    "equity",
    "market_value",
    "collateral_value",
    "initial_requirement",
    "maintenance_requirement",
    "shortfall_maintenance",
    "shortfall_initial",
    "call_amount",
    "collateral_to_add",
    "principal_haircut",
    "min_collateral",
    "principal",
    "interest",
    "arrears",
    "total",
    "balance",
    "paid_amount",
    "accrued_interest",
    "level_payment",
    "total_interest",
    "total_paid",
    "amount",
    "isolated_margin",
}


@pytest.mark.django_db
def test_money_in_responses_carries_the_currency_places(world: World) -> None:
    api = world.api("client_a")
    declared = api.post("/api/v1/top-ups/", {"account": world.a_account.pk, "amount": "19500"})
    assert declared.json()["amount"] == "19500.00"

    reads = [
        f"/api/v1/accounts/{world.a_account.pk}/",
        "/api/v1/accounts/",
        f"/api/v1/accounts/{world.a_account.pk}/positions/",
        f"/api/v1/accounts/{world.a_account.pk}/loan/",
        "/api/v1/cases/",
        f"/api/v1/cases/{world.a_case.pk}/",
        "/api/v1/offers/",
        f"/api/v1/offers/{world.a_offer.pk}/",
        "/api/v1/top-ups/",
        f"/api/v1/top-ups/{declared.json()['id']}/",
    ]
    seen: dict[str, Any] = {}
    for path in reads:
        response = api.get(path)
        assert response.status_code == 200, path
        for where, value in _money_fields(response.json(), MONEY_NAMES):
            seen[f"{path}{where}"] = value
    wrong = {where: value for where, value in seen.items() if not _MONEY.match(str(value))}
    assert wrong == {}
    # every kind of amount was seen at least once (the offer's schedule, its changes, the risk figures, ...)
    assert {where.rsplit(".", 1)[1].split("[")[0] for where in seen} >= MONEY_NAMES - {"isolated_margin"}
    offer = api.get(f"/api/v1/offers/{world.a_offer.pk}/").json()
    assert offer["terms"]["collateral_to_add"] == "300.00"
    assert offer["terms"]["reduce"][0]["fraction"] == "0.50000000"  # a fraction, not money: 8 places
    assert offer["counter_bounds"]["min_rate"] == "0.06000000"  # a rate, not money


# ---------------------------------------------------------------------------------------------- imports


def _counts() -> tuple[int, int, int]:
    return AuditEvent.objects.count(), Price.objects.count(), MarginAccount.objects.count()


@pytest.mark.django_db
@pytest.mark.parametrize("route", ["/api/v1/operations/book/", "/api/v1/operations/prices/"])
def test_an_upload_nested_20000_deep_is_a_400(world: World, route: str) -> None:
    before = _counts()

    response = world.api("operator").upload(route, "book.json", DEEP.encode())

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("import_file_invalid", "file")
    assert error["message"] == (
        "book.json: the JSON nests arrays and objects more than 32 levels deep at line 1 column 33"
    )
    assert _counts() == before


@pytest.mark.django_db
def test_a_5000_digit_integer_price_is_a_400_naming_row_and_field(world: World) -> None:
    before = _counts()
    prices = '[{"instrument": "BTC", "time": "2026-03-02T21:00:00Z", "price": %s}]'

    number = world.api("operator").upload("/api/v1/operations/prices/", "p.json", (prices % ("9" * 5000)).encode())
    text = world.api("operator").upload("/api/v1/operations/prices/", "p.json", (prices % f'"{"9" * 5000}"').encode())
    cell = world.api("operator").upload(
        "/api/v1/operations/prices/",
        "p.csv",
        f"instrument,time,price,implied_volatility\nBTC,2026-03-02T21:00:00Z,{'9' * 5000},\n".encode(),
    )

    assert number.status_code == 400
    assert number.json()["error"]["message"] == "p.json: a number of 5000 characters: at most 100"
    for response in (text, cell):
        assert response.status_code == 400
        lines = response.json()["error"]["message"].splitlines()
        assert re.fullmatch(
            r"p\.(json|csv): row (\[0\]|2): field 'price': 9{40}\.\.\. \(5000 characters\) is too large: "
            r"at most 20 digits before the decimal point",
            lines[1],
        ), lines
    assert _counts() == before


@pytest.mark.django_db
def test_import_book_refuses_a_deep_file_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "book.json"
    path.write_text(DEEP)

    with pytest.raises(CommandError, match="more than 32 levels deep"):
        call_command("import_book", str(path))

    assert AuditEvent.objects.count() == 0


@pytest.mark.django_db
def test_import_refuses_json_numbers_in_exponent_notation(world: World) -> None:
    prices = b'[{"instrument": "BTC", "time": "2026-03-02T21:00:00Z", "price": 1e3}]'

    response = world.api("operator").upload("/api/v1/operations/prices/", "p.json", prices)

    assert response.status_code == 400
    assert "row [0]: field 'price': '1e3' is not a plain decimal number" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_a_top_up_kept_exactly_at_its_currency_places(world: World) -> None:
    response = world.api("client_a").post(
        "/api/v1/top-ups/", {"account": world.a_account.pk, "amount": "12345678901234567890.12"}
    )

    assert response.status_code == 201
    assert response.json()["amount"] == "12345678901234567890.12"
    assert CollateralTopUp.objects.get(pk=response.json()["id"]).amount == Decimal("12345678901234567890.12")
    assert Proposal.objects.get(pk=world.a_offer.pk).state == ProposalState.OFFERED
