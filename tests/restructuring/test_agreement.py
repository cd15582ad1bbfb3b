"""The restructuring agreement (issue 18): drawn as a PDF when an offer is sent, kept with the SHA-256 of the bytes
kept, named in the offer's audit event; it binds the client's accept (an earlier offer's agreement is refused) and
the execution records which one was accepted."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, transaction
from django.test import TestCase, override_settings
from django.utils import timezone

from accounts.models import Client, MarginAccount, Position
from core.models import AuditEvent
from core.money import money_text
from core.pdf import pdf_render
from restructuring.models import Agreement, Case, CaseState, Notification, Proposal, ProposalState
from restructuring.selectors.agreement_document import AGREEMENT_TEMPLATE, agreement_context
from restructuring.selectors.agreements import AgreementCorruptError, agreement_content
from restructuring.selectors.offers import offer_outlook
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.negotiation.common import AgreementMismatchError, NegotiationError
from restructuring.services.negotiation.execution import proposal_execute
from restructuring.services.negotiation.offers import offer_accept, offer_counter, offer_send
from restructuring.services.negotiation.proposals import proposal_approve, proposal_draft, proposal_submit
from tests.restructuring.helpers import account, btc, sweep_only
from tests.web.helpers import policy_in_force, staff_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_fast")]

OVERRIDE = "the client's other assets"  # the test book's client has no cash: the model flags every proposal
TERMS = {
    "term_months": 12,
    "rate_annual": "0.065",
    "moratorium_months": 1,
    "arrears_treatment": "carry_forward",
    "collateral_to_add": "50.00",
    "principal_haircut": "25.00",
}


@pytest.fixture
def _fast() -> object:
    with override_settings(WORKOUT_FEASIBILITY_PATHS=300, WORKOUT_LENDER_NAME="Northwind Margin Lending"):
        yield


def _case_in_margin_call() -> Case:
    """10 BTC at 100 on a 750 loan (no cash): in margin call, with its report and the rules' proposals."""
    policy_in_force()
    margin_account = account("CALL", btc(), band="margin_call")
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)
    return Case.objects.get(account=margin_account)


def _offered(case: Case, terms: dict[str, object], maker: User, approver: User) -> Proposal:
    """An officer's proposal on the case, approved by another and offered for 48 hours."""
    proposal = proposal_draft(case_id=case.pk, terms=terms, actor=maker)
    proposal_submit(proposal_id=proposal.pk, actor=maker)
    assert proposal_approve(proposal_id=proposal.pk, actor=approver, version=1, override_reason=OVERRIDE).approved
    return offer_send(proposal_id=proposal.pk, actor=approver, version=1, hours=48)


def _people() -> tuple[User, User]:
    return staff_user("mia", "credit_officer"), staff_user("olaf", "credit_officer")


def _client_id(proposal: Proposal) -> int:
    return MarginAccount.objects.get(pk=proposal.case.account_id).client_id


def test_sending_an_offer_draws_and_keeps_its_agreement_and_names_its_hash_in_the_offers_event() -> None:
    case = _case_in_margin_call()
    mia, olaf = _people()
    position = Position.objects.get(account_id=case.account_id)
    Client.objects.filter(pk=case.account.client_id).update(email="treasurer@call.example")

    offer = _offered(case, {**TERMS, "reduce": [[position.pk, "0.25"]]}, mia, olaf)

    agreement = Agreement.objects.get(proposal=offer)
    kept = default_storage.open(agreement.stored_name, "rb").read()
    assert kept.startswith(b"%PDF-")
    assert agreement.sha256 == hashlib.sha256(kept).hexdigest()  # the hash of the bytes kept
    assert (agreement.size, agreement.version, agreement.language) == (len(kept), 1, "en")
    assert agreement.terms_hash == offer.terms_hash
    assert Proposal.objects.get(pk=offer.pk).agreement_id == agreement.pk
    assert agreement.stored_name.startswith(f"agreements/case-{case.pk}/offer-{offer.pk}-v1-")
    event = AuditEvent.objects.get(action="proposal.offer", object_id=offer.pk)
    assert event.payload["agreement_sha256"] == agreement.sha256
    assert event.payload["agreement_id"] == agreement.pk
    [notice] = Notification.objects.filter(case=case, kind="offer")  # the client's email: it carries the hash too
    assert notice.payload["agreement_sha256"] == agreement.sha256
    assert agreement_content(agreement) == kept


def test_the_agreement_sets_out_the_parties_the_terms_the_schedule_collateral_default_and_expiry() -> None:
    case = _case_in_margin_call()
    mia, olaf = _people()
    position = Position.objects.get(account_id=case.account_id)
    offer = _offered(case, {**TERMS, "reduce": [[position.pk, "0.25"]]}, mia, olaf)
    agreement = Agreement.objects.get(proposal=offer)
    offer = Proposal.objects.select_related("case__account__client").get(pk=offer.pk)

    # drawn again from the same offer on the same day: the same bytes, so what is read here is what was kept
    context = agreement_context(offer, language="en", now=agreement.created_at)
    rendered = pdf_render(AGREEMENT_TEMPLATE, context, language="en")
    assert rendered.sha256 == agreement.sha256
    html = rendered.html

    # the parties
    assert "Northwind Margin Lending" in html
    assert "CALL" in html
    assert "C-CALL" in html
    assert case.account.code in html
    # the loan as it stands, and the new terms, in the account's currency as the project writes money
    assert money_text(Decimal("750"), "USD", locale="en") in html  # $750.00
    assert "6.50\u00a0%" in html
    assert "12 months" in html
    assert "spread over the installments, without interest" in html
    assert f'Principal forgiven</th><td class="num">{money_text(Decimal("25"), "USD", locale="en")}' in html
    # the full schedule, as the client's API shows the offer: every installment's date and total
    outlook = offer_outlook(offer)
    assert outlook.basis == "preview"
    assert len(outlook.installments) == 12
    for row in outlook.installments:
        assert f"<td>{row.number}</td><td>{row.due:%Y-%m-%d}</td>" in html
        assert money_text(row.total, "USD", locale="en") in html
    # collateral and the reduction
    assert f"adds collateral of {money_text(Decimal('50'), 'USD', locale='en')}" in html
    assert "within 7 days of the execution" in html
    assert f'<td>BTC (#{position.pk})</td><td class="num">10</td><td class="num">25.00\u00a0%</td>' in html
    assert '<td class="num">2.5</td>' in html  # 25% of 10 BTC sold
    # the conditions of default and the expiry
    assert "not paid in full 5 days after its due date" in html
    assert f"until {offer.expires_at:%Y-%m-%d %H:%M} UTC" in html
    assert offer.terms_hash in html


def test_the_agreement_speaks_german_with_german_money() -> None:
    case = _case_in_margin_call()
    mia, olaf = _people()
    offer = _offered(case, TERMS, mia, olaf)
    offer = Proposal.objects.select_related("case__account__client").get(pk=offer.pk)

    rendered = pdf_render(
        AGREEMENT_TEMPLATE, agreement_context(offer, language="de", now=timezone.now()), language="de"
    )

    assert rendered.pdf.startswith(b"%PDF-")
    assert "Restrukturierungsvereinbarung" in rendered.html
    assert "Verzugsbedingungen" in rendered.html
    assert "750,00\u00a0$" in rendered.html
    assert "12 Monate" in rendered.html


def test_the_accept_binds_the_agreement_and_the_execution_records_it() -> None:
    case = _case_in_margin_call()
    mia, olaf = _people()
    offer = _offered(case, TERMS, mia, olaf)
    agreement = Agreement.objects.get(proposal=offer)

    accepted = offer_accept(proposal_id=offer.pk, client_id=_client_id(offer), agreement_sha256=agreement.sha256)

    assert accepted.state == ProposalState.ACCEPTED
    assert Proposal.objects.get(pk=offer.pk).accepted_agreement_id == agreement.pk
    event = AuditEvent.objects.get(action="proposal.accept", object_id=offer.pk)
    assert event.payload == {"agreement_id": agreement.pk, "agreement_sha256": agreement.sha256}

    proposal_execute(proposal_id=offer.pk, actor=olaf, version=1)

    executed = AuditEvent.objects.get(action="proposal.execute", object_id=offer.pk)
    assert executed.payload["agreement_sha256"] == agreement.sha256
    assert executed.payload["agreement_id"] == agreement.pk


def test_an_accept_without_the_hash_accepts_the_offers_agreement() -> None:
    case = _case_in_margin_call()
    mia, olaf = _people()
    offer = _offered(case, TERMS, mia, olaf)

    offer_accept(proposal_id=offer.pk, client_id=_client_id(offer))

    assert Proposal.objects.get(pk=offer.pk).accepted_agreement == Agreement.objects.get(proposal=offer)


def test_changed_terms_make_a_new_agreement_and_the_old_one_is_never_accepted() -> None:
    case = _case_in_margin_call()
    mia, olaf = _people()
    first = _offered(case, TERMS, mia, olaf)
    old = Agreement.objects.get(proposal=first)
    client_id = _client_id(first)
    with TestCase.captureOnCommitCallbacks(execute=True):
        counter = offer_counter(proposal_id=first.pk, client_id=client_id, terms={"term_months": 18})
    assert proposal_approve(proposal_id=counter.pk, actor=olaf, version=1, override_reason=OVERRIDE).approved
    second = offer_send(proposal_id=counter.pk, actor=olaf, version=1)
    new = Agreement.objects.get(proposal=second)
    assert new.sha256 != old.sha256
    assert Agreement.objects.count() == 2  # one per offer: the first stays as it was
    events = AuditEvent.objects.count()

    # the new offer, accepted naming the old agreement: refused, nothing recorded
    with pytest.raises(AgreementMismatchError) as refused:
        offer_accept(proposal_id=second.pk, client_id=client_id, agreement_sha256=old.sha256)
    assert refused.value.code == "agreement_mismatch"
    message = refused.value.message
    assert f"is the agreement of offer {first.pk}" in message
    assert "can no longer be accepted" in message
    assert new.sha256 in message
    with pytest.raises(AgreementMismatchError, match="is not this offer's agreement"):
        offer_accept(proposal_id=second.pk, client_id=client_id, agreement_sha256="0" * 64)
    # the old offer itself is no longer open
    with pytest.raises(NegotiationError, match="countered"):
        offer_accept(proposal_id=first.pk, client_id=client_id, agreement_sha256=old.sha256)
    assert AuditEvent.objects.count() == events
    again = Proposal.objects.get(pk=second.pk)
    assert (again.state, again.accepted_agreement_id) == (ProposalState.OFFERED, None)
    assert Case.objects.get(pk=case.pk).state == CaseState.OFFERED

    offer_accept(proposal_id=second.pk, client_id=client_id, agreement_sha256=new.sha256)
    assert Proposal.objects.get(pk=second.pk).accepted_agreement_id == new.pk


def test_agreements_are_never_changed_nor_deleted() -> None:
    case = _case_in_margin_call()
    mia, olaf = _people()
    offer = _offered(case, TERMS, mia, olaf)
    agreement = Agreement.objects.get(proposal=offer)

    for change in (
        lambda: Agreement.objects.filter(pk=agreement.pk).update(sha256="f" * 64),
        lambda: Agreement.objects.filter(pk=agreement.pk).delete(),
    ):
        with pytest.raises(DatabaseError), transaction.atomic():
            change()
    assert Agreement.objects.get(pk=agreement.pk).sha256 == agreement.sha256


def test_a_kept_file_that_no_longer_matches_its_hash_is_served_to_nobody_and_not_executed() -> None:
    case = _case_in_margin_call()
    mia, olaf = _people()
    offer = _offered(case, TERMS, mia, olaf)
    agreement = Agreement.objects.get(proposal=offer)
    offer_accept(proposal_id=offer.pk, client_id=_client_id(offer), agreement_sha256=agreement.sha256)
    # someone with access to the storage changes the file
    default_storage.delete(agreement.stored_name)
    default_storage.save(agreement.stored_name, ContentFile(b"%PDF-1.7 other terms"))

    with pytest.raises(AgreementCorruptError):
        agreement_content(agreement)
    with pytest.raises(AgreementCorruptError):
        proposal_execute(proposal_id=offer.pk, actor=olaf, version=1)
    assert Proposal.objects.get(pk=offer.pk).state == ProposalState.ACCEPTED
    assert not AuditEvent.objects.filter(action="proposal.execute").exists()
