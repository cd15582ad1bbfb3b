"""The cascade page: both scenarios and their charts, for officers and compliance alike (it changes nothing)."""

from __future__ import annotations

import pytest

from rules.services import DEFAULT_RULES, ruleset_load
from tests.restructuring.helpers import account, btc, sweep_only
from tests.web.helpers import signed_in, staff_user


@pytest.mark.django_db
def test_the_cascade_page_shows_both_scenarios_with_their_charts() -> None:
    ruleset_load(DEFAULT_RULES, publish=True)
    instrument = btc()
    account("UNDER", instrument, band="critical")
    account("CALLED", instrument, band="warning")
    sweep_only()
    officer = signed_in(staff_user("alice", "credit_officer"))

    page = officer.get("/cascade/", {"symbol": "BTC", "drop": "0.3"})

    assert page.status_code == 200
    text = page.content.decode()
    assert "liquidate every breached account" in text
    assert "restructure by the published rules" in text
    assert text.count("<svg") == 2
    assert officer.get("/cascade/", {"symbol": "NOPE", "drop": "0.3"}).content.decode().count("no instrument") == 1
    assert signed_in(staff_user("carol", "compliance")).get("/cascade/").status_code == 200
