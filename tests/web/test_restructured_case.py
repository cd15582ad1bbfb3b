"""Issue 17: a restructured case shows its schedule at full width, each installment paid, partly paid, due or
overdue, with a "record payment" action on each one not paid; and no stale margin-call deadline."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from core.roles import SENIOR_CREDIT_OFFICER
from restructuring.models import Case, CaseState, Installment, Proposal
from restructuring.services.negotiation.execution import proposal_execute
from restructuring.services.negotiation.offers import offer_accept, offer_send
from restructuring.services.negotiation.proposals import proposal_approve
from tests.web.helpers import signed_in, staff_user
from tests.web.test_officer_pages import proposed_case, text

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def sam() -> User:
    return staff_user("sam", SENIOR_CREDIT_OFFICER)


def _restructured(sam: User) -> Case:
    case = proposed_case()
    proposal = Proposal.objects.get(case=case)
    proposal_approve(proposal_id=proposal.pk, actor=sam, version=1, override_reason="other assets")
    offer_send(proposal_id=proposal.pk, actor=sam, version=1)
    offer_accept(proposal_id=proposal.pk, client_id=case.account.client_id)
    proposal_execute(proposal_id=proposal.pk, actor=sam, version=1)
    case.refresh_from_db()
    assert case.state == CaseState.RESTRUCTURED
    return case


def test_the_restructured_case_shows_its_schedule_at_full_width_with_each_installments_standing(sam: User) -> None:
    case = _restructured(sam)
    installments = list(Installment.objects.filter(proposal__case=case).order_by("number"))
    first, second, third = installments[:3]
    # the first paid, the second past its date unpaid, the rest to come; and the stale margin call still on the row
    Installment.objects.filter(pk=first.pk).update(status="paid", paid_amount=first.total)
    Installment.objects.filter(pk=second.pk).update(due=timezone.localdate() - timedelta(days=2))
    Case.objects.filter(pk=case.pk).update(deadline=timezone.now() - timedelta(days=30))
    web: Client = signed_in(sam)

    response = web.get(f"/cases/{case.pk}/")

    body = response.content.decode()
    section = body.split('id="schedule"')[1].split("</section>")[0]
    statuses = dict(re.findall(r'data-installment="(\d+)" data-status="(\w+)"', section))
    assert len(statuses) == len(installments)
    assert (statuses["1"], statuses["2"], statuses["3"]) == ("paid", "overdue", "due")
    forms = re.findall(r'action="/installments/(\d+)/repayment/"', section)
    assert [int(i) for i in forms] == [i.pk for i in installments[1:]]  # every row not paid, and only there
    assert f"${third.total:,.2f}" in " ".join(section.split())
    # the section is outside the proposals' grid: the page's width
    assert body.index('id="schedule"') < body.index('class="proposals"')
    lede = text(response).split("Account")[0]
    assert "deadline" not in lede
    assert "overdue" not in lede
    assert "margin call" not in lede


def test_a_partly_paid_installment_says_so(sam: User) -> None:
    case = _restructured(sam)
    first = Installment.objects.filter(proposal__case=case).order_by("number").first()
    assert first is not None
    Installment.objects.filter(pk=first.pk).update(paid_amount=first.total / 2)

    body = signed_in(sam).get(f"/cases/{case.pk}/").content.decode()

    assert 'data-installment="1" data-status="partly_paid"' in body
