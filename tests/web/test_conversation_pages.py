"""The case page's conversation and the schedule's allocation: an officer logs a call with the promise made in it,
adds a note, takes a promise (refused while one is open), records a partial payment; the page shows each, the
promise's status and, per installment, what payments covered by the waterfall."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from core.models import AuditEvent
from restructuring.models import Contact, Note, PromiseToPay
from restructuring.services.promises import promises_track
from tests.restructuring.restructured import restructured
from tests.web.helpers import signed_in

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_fast")]
TERMS = {"term_months": 3, "rate_annual": "0.12", "arrears_treatment": "carry_forward", "collateral_to_add": "0"}


@pytest.fixture
def _fast() -> Any:
    with override_settings(WORKOUT_FEASIBILITY_PATHS=300):
        yield


def _messages(response: Any) -> str:
    return html.unescape(" ".join(re.findall(r'<ul class="messages">(.*?)</ul>', response.content.decode(), re.S)))


def _post(web: Client, url: str, data: dict[str, Any]) -> Any:
    response = web.post(url, data, follow=True)
    assert response.status_code == 200
    return response


def test_an_officer_logs_a_call_with_a_promise_a_note_and_a_partial_payment() -> None:
    case, schedule, alice = restructured(TERMS, accrued=Decimal("30.00"))
    web = signed_in(alice)
    friday = (timezone.localdate() + timedelta(days=3)).isoformat()

    called = _post(
        web,
        f"/cases/{case.pk}/contacts/",
        {
            "channel": "call",
            "direction": "outbound",
            "outcome": "promise",
            "person": "J. Smith, treasurer",
            "summary": "will wire on Friday",
            "promise_amount": "300.00",
            "promise_due": friday,
            "promise_method": "bank_transfer",
        },
    )
    assert f"Call logged. Promise to pay $300.00 by {friday} taken." in _messages(called)
    promise = PromiseToPay.objects.get(case=case)
    assert promise.contact_id == Contact.objects.get(case=case).pk
    page = called.content.decode()
    assert "Open promise: $300.00 by " + friday in page
    assert "J. Smith, treasurer" in page

    # a second promise while one is open: refused, and the contact it came with is not logged either
    again = _post(
        web,
        f"/cases/{case.pk}/contacts/",
        {
            "channel": "email",
            "direction": "inbound",
            "outcome": "promise",
            "promise_amount": "5",
            "promise_due": friday,
            "promise_method": "card",
        },
    )
    assert "has an open promise" in _messages(again)
    assert Contact.objects.filter(case=case).count() == 1
    taken = _post(
        web, f"/cases/{case.pk}/promises/", {"promise_amount": "5", "promise_due": friday, "promise_method": "card"}
    )
    assert "has an open promise" in _messages(taken)

    noted = _post(web, f"/cases/{case.pk}/notes/", {"text": "treasurer sounded sure", "remind_on": friday})
    assert "Note" in _messages(noted)
    assert "treasurer sounded sure" in noted.content.decode()
    bad = _post(web, f"/cases/{case.pk}/notes/", {"text": "x", "remind_on": "2020-01-01"})
    assert "remind_on: 2020-01-01 is in the past" in _messages(bad)
    assert Note.objects.filter(case=case).count() == 1

    # 300.00: installment 1 paid (265.02), 34.98 into installment 2 (its fees, interest, 19.96 of principal)
    paid = _post(web, f"/installments/{schedule[0].pk}/repayment/", {"amount": "300.00"})
    assert "Payment of $300.00 recorded: installment 1 paid, installment 2 partly paid ($230.04 still due)." in (
        _messages(paid)
    )
    page = paid.content.decode()
    # the restructured case's schedule at full width (issue 17): installment 2 partly paid, 34.98 paid, 230.04 left
    second = page.split('data-installment="2" data-status="partly_paid"')[1].split("</tr>")[0]
    assert "$34.98" in second
    assert "$230.04" in second
    assert "$10.00 / $7.50 / $247.52" in page  # installment 1's allocation
    assert "$10.00 / $5.02 / $19.96" in page  # installment 2's
    assert 'name="amount" value="230.04"' in page  # the form offers what is still owed

    assert promises_track().kept == 1
    kept = web.get(f"/cases/{case.pk}/").content.decode()
    assert re.search(r"<td>Kept</td><td class=\"num\">\$300\.00</td>", kept)
    assert {"contact.log", "promise.make", "note.add", "repayment.record", "promise.kept"} <= set(
        AuditEvent.objects.values_list("action", flat=True)
    )


def test_compliance_finds_notes_and_contacts_in_the_audit_search() -> None:
    case, _schedule, alice = restructured(TERMS)
    web = signed_in(alice)
    _post(web, f"/cases/{case.pk}/notes/", {"text": "client moving abroad"})
    from tests.web.helpers import staff_user

    carol = signed_in(staff_user("carol", "compliance"))
    found = carol.get("/audit/", {"action": "note.add"}).content.decode()
    assert "client moving abroad" in html.unescape(found)
    assert carol.post(f"/cases/{case.pk}/notes/", {"text": "x"}).status_code == 403
