"""A case's documents and agreements on the case page (issue 18): an officer uploads a document (judged by content:
a refused one is the page's error and nothing is kept) and downloads it; the agreement an offer was sent with is the
same document, byte for byte, as the client's download; what belongs to another case is not found under this one."""

from __future__ import annotations

import hashlib
import html
import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

from accounts.services.api_tokens import api_token_create
from core.models import AuditEvent
from core.roles import COMPLIANCE, CREDIT_OFFICER
from restructuring.models import Agreement, Document, Proposal
from restructuring.services.negotiation.offers import offer_accept
from tests.api.conftest import Api, offered_case
from tests.documents import DOCX, PDF, PNG
from tests.web.helpers import signed_in, staff_user
from tests.web.test_officer_pages import proposed_case, text

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_fast")]


@pytest.fixture
def _fast() -> Any:
    with override_settings(WORKOUT_FEASIBILITY_PATHS=300):
        yield


def _messages(response: Any) -> str:
    return html.unescape(" ".join(re.findall(r'<ul class="messages">(.*?)</ul>', response.content.decode(), re.S)))


def _upload(web: Client, case_id: int, name: str, content: bytes, kind: str = "proof_of_funds") -> Any:
    return web.post(
        f"/cases/{case_id}/documents/", {"kind": kind, "file": SimpleUploadedFile(name, content)}, follow=True
    )


def test_an_officer_uploads_a_document_on_the_case_and_downloads_it() -> None:
    case = proposed_case()
    alice = staff_user("alice", CREDIT_OFFICER)
    web = signed_in(alice)

    page = _upload(web, case.pk, "bank statement.pdf", PDF)

    document = Document.objects.get()
    sha256 = hashlib.sha256(PDF).hexdigest()
    assert f"Document bank_statement.pdf added (SHA-256 {sha256})." in _messages(page)
    assert (document.case_id, document.client_id) == (case.pk, case.account.client_id)
    assert (document.source, document.uploaded_by_id, document.kind) == ("officer", alice.pk, "proof_of_funds")
    listed = text(page).split("Documents", 1)[1]
    assert f"{document.pk} " in listed
    assert "Proof of funds bank_statement.pdf application/pdf" in listed
    assert "alice" in listed
    assert f'href="/cases/{case.pk}/documents/{document.pk}/"' in page.content.decode()
    event = AuditEvent.objects.get(action="document.upload")
    assert (event.actor_id, event.object_id, event.payload["sha256"]) == (alice.pk, document.pk, sha256)

    download = web.get(f"/cases/{case.pk}/documents/{document.pk}/")

    assert download.status_code == 200
    assert download["Content-Type"] == "application/pdf"
    assert b"".join(download.streaming_content) == PDF  # type: ignore[attr-defined]  # a FileResponse
    assert download["Content-Disposition"] == 'attachment; filename="bank_statement.pdf"'


def test_a_refused_file_is_the_pages_error_and_nothing_is_kept() -> None:
    case = proposed_case()
    web = signed_in(staff_user("alice", CREDIT_OFFICER))
    events = AuditEvent.objects.count()

    page = _upload(web, case.pk, "statement.pdf", DOCX)
    empty = _upload(web, case.pk, "statement.pdf", b"")

    assert "statement.pdf is an archive (docx): archives are refused" in _messages(page)
    assert "statement.pdf is empty (0 bytes)" in _messages(empty)
    assert not Document.objects.exists()
    assert AuditEvent.objects.count() == events


def test_another_cases_document_is_not_found_here_and_compliance_reads_but_does_not_upload() -> None:
    case = proposed_case("ONE")
    other = proposed_case("TWO")
    web = signed_in(staff_user("alice", CREDIT_OFFICER))
    _upload(web, other.pk, "id.png", PNG, kind="identification")
    document = Document.objects.get()
    cora = signed_in(staff_user("cora", COMPLIANCE))

    assert web.get(f"/cases/{case.pk}/documents/{document.pk}/").status_code == 404
    assert cora.get(f"/cases/{other.pk}/documents/{document.pk}/").status_code == 200
    assert 'aria-label="upload a document"' not in cora.get(f"/cases/{other.pk}/").content.decode()
    refused = cora.post(f"/cases/{other.pk}/documents/", {"kind": "other", "file": SimpleUploadedFile("a.pdf", PDF)})
    assert refused.status_code == 403
    assert Document.objects.count() == 1


def test_the_officer_downloads_the_agreement_the_client_downloads() -> None:
    offer = offered_case()
    agreement = Agreement.objects.get(proposal=offer)
    web = signed_in(staff_user("olaf", CREDIT_OFFICER))
    client_token = api_token_create(client_id=offer.case.account.client_id).secret

    page = web.get(f"/cases/{offer.case_id}/").content.decode()
    officers = web.get(f"/cases/{offer.case_id}/agreements/{agreement.pk}/")
    clients = Api(client_token).get(f"/api/v1/offers/{offer.pk}/agreement/")

    assert f'href="/cases/{offer.case_id}/agreements/{agreement.pk}/"' in page
    assert officers.status_code == 200
    assert officers["Content-Type"] == "application/pdf"
    assert officers.content == clients.content
    assert officers["X-Agreement-SHA256"] == hashlib.sha256(officers.content).hexdigest() == agreement.sha256
    # not under another case's address
    other = proposed_case("OTHER")
    assert web.get(f"/cases/{other.pk}/agreements/{agreement.pk}/").status_code == 404
    # accepted: the page says so
    offer_accept(proposal_id=offer.pk, client_id=offer.case.account.client_id, agreement_sha256=agreement.sha256)
    assert "PDF · accepted by the client" in text(web.get(f"/cases/{offer.case_id}/"))
    assert Proposal.objects.get(pk=offer.pk).accepted_agreement_id == agreement.pk
