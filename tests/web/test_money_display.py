"""Issue 17: money everywhere in the account's currency, by the locale machinery (Babel's CLDR patterns, the
currency's places from the settings), and a timeline that reads: labels not action codes, names not ids, money not
`700000.00000000`, the raw payload one click away."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import Client

from core.money import NO_AMOUNT, money_text
from core.roles import CREDIT_OFFICER
from restructuring.models import Proposal
from tests.web.helpers import signed_in, staff_user
from tests.web.test_officer_pages import proposed_case, text

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def web() -> Client:
    return signed_in(staff_user("alice", CREDIT_OFFICER))


TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "shown"),
    [
        ("700000.00000000", "USD", "en_US", "$700,000.00"),
        ("700000.00000000", "USD", "de_DE", "700.000,00\xa0$"),
        ("1.5", "BTC", "en_US", "BTC1.50000000"),
        ("-1234.5", "USDT", "de_DE", "-1.234,50\xa0USDT"),
        ("0.005", "EUR", "en_US", "€0.00"),  # the currency's quantum, half to even
        (None, "USD", "en_US", NO_AMOUNT),
    ],
)
def test_money_is_written_in_its_currency_by_the_readers_locale(
    amount: str | None, currency: str, locale: str, shown: str
) -> None:
    assert money_text(amount, currency, locale=locale) == shown


def test_no_template_formats_money_by_hand() -> None:
    """Amounts go through the `money` filter; floatformat with a thousands separator ("2g") was the hand-made way."""
    hand_made = [
        (str(p.relative_to(TEMPLATES)), m)
        for p in TEMPLATES.rglob("*.html")
        for m in re.findall(r'\{\{[^}]*floatformat:"\d+g"[^}]*\}\}', p.read_text())
    ]
    assert hand_made == []


def test_the_timeline_reads_labels_names_and_money_with_the_raw_payload_a_click_away(web: Client) -> None:
    case = proposed_case()
    proposal = Proposal.objects.get(case=case)

    response = web.get(f"/cases/{case.pk}/")

    body = response.content.decode()
    timeline = body.split('id="timeline"')[1].split("</section>")[0]
    rows = re.findall(r'<tr data-action="([a-z_.]+)">(.*?)</tr>', timeline, re.S)
    shown = {action: _visible(row) for action, row in rows}
    assert {"case.open", "case.margin_call", "feasibility.report", "case.propose"} <= set(shown)
    # labels, not action codes; names, not ids; money in dollars, not the stored 8 places
    assert "Margin call" in shown["case.margin_call"]
    assert re.search(r"margin call \$[\d,]+\.\d\d(?!\d)", shown["case.margin_call"]), shown["case.margin_call"]
    assert re.search(r"shortfall to maintenance \$[\d,]+\.\d\d(?!\d)", shown["case.open"]), shown["case.open"]
    assert f"proposals {proposal.name} (${proposal.expected_pv:,.2f})" in shown["case.propose"]
    assert "Feasibility report" in shown["feasibility.report"]
    for action, visible in shown.items():
        assert not re.search(r"\d\.\d{8}\b", visible), (action, visible)  # no 700000.00000000
        assert "{" not in visible, (action, visible)  # no JSON
        assert "sweep_id" not in visible, (action, visible)
    # the raw payload, for compliance: inside a <details>, as stored
    raw = re.search(r'<tr data-action="case.margin_call">.*?<details class="raw">(.*?)</details>', timeline, re.S)
    assert raw is not None
    assert '"call_amount": "' in raw.group(1).replace("&quot;", '"')


def _visible(row: str) -> str:
    """A timeline row's text with its raw-payload <details> taken out."""
    row = re.sub(r'<details class="raw">.*?</details>', " ", row, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", row).replace("&#x27;", "'").split())


def test_the_case_page_writes_every_amount_in_the_accounts_currency(web: Client) -> None:
    case = proposed_case()

    page = text(web.get(f"/cases/{case.pk}/"))

    assert "Debt $750.00" in page
    assert not re.search(r"\d\.\d{8}\b", page.split("Timeline")[0])
    assert Decimal(case.call_amount or 0) > 0
    assert f"margin call {money_text(case.call_amount, 'USD', locale='en_US')}" in page
