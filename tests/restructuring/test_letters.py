"""Letters (restructuring/services/messages.py): the message's HTML in the letter's layout, drawn as a PDF by
WeasyPrint (core/pdf.py), stored through Django's storage API with its SHA-256, which the message's audit event
records; staff download the stored bytes, checked against that hash. A letter fetches nothing from anywhere."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.test import override_settings

from accounts.models import Client, MessagePreferences
from core.models import AuditEvent
from core.roles import COMPLIANCE, CREDIT_OFFICER
from restructuring.models import Case, MessageTemplate, Notification
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.notifications import notifications_send
from tests.restructuring.helpers import account, btc, sweep_only
from tests.web.helpers import signed_in, staff_user

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _media(tmp_path: Any) -> Iterator[None]:
    with override_settings(MEDIA_ROOT=str(tmp_path / "media"), SECURE_SSL_REDIRECT=False):
        yield


def _letter_case(code: str = "POST") -> Case:
    """A client in Berlin taking letters only, in margin call."""
    margin_account = account(code, btc(), band="margin_call")
    Client.objects.filter(pk=margin_account.client_id).update(name="Grete Schmidt")
    MessagePreferences.objects.create(
        client=margin_account.client,
        postal_address="Hauptstraße 1\n10115 Berlin",
        locale="de",
        by_email=False,
        by_letter=True,
    )
    cases_apply_risk(sweep_id=sweep_only().pk)
    return Case.objects.get(account=margin_account)


def test_a_letter_is_drawn_as_a_pdf_and_stored_with_its_hash_on_the_record() -> None:
    # given a German client's margin call by letter
    case = _letter_case()
    letter = Notification.objects.get(case=case, channel="letter")
    assert letter.recipient == "Grete Schmidt\nHauptstraße 1\n10115 Berlin"
    assert letter.body.startswith("<p>Guten Tag Grete Schmidt,</p>")

    # when the outbox sends it
    assert notifications_send(notification_ids=[letter.pk]).sent == 1

    # then the PDF is stored under the case's letters, and its SHA-256 is the stored bytes'
    letter.refresh_from_db()
    assert str(letter.letter_pdf.name).startswith(f"letters/{case.pk}/notification-{letter.pk}-")
    with default_storage.open(str(letter.letter_pdf.name), "rb") as stored:
        pdf = stored.read()
    assert pdf.startswith(b"%PDF-")
    assert hashlib.sha256(pdf).hexdigest() == letter.letter_sha256
    # and the audit event of its sending binds that hash and the text it was drawn from
    event = AuditEvent.objects.get(action="message.sent", object_id=letter.pk)
    assert event.payload["letter_sha256"] == letter.letter_sha256
    assert event.payload["subject"] == letter.subject
    assert (event.payload["channel"], event.payload["locale"], event.payload["template_version"]) == ("letter", "de", 1)


def test_staff_download_the_stored_letter_and_a_changed_file_is_refused() -> None:
    case = _letter_case()
    letter = Notification.objects.get(case=case, channel="letter")
    notifications_send(notification_ids=[letter.pk])
    letter.refresh_from_db()
    officer = signed_in(staff_user("alice", CREDIT_OFFICER))

    # the officer (and compliance) download the bytes stored, with their hash
    response = officer.get(f"/messages/{letter.pk}/letter.pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["X-Letter-SHA256"] == letter.letter_sha256
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert hashlib.sha256(body).hexdigest() == letter.letter_sha256
    assert signed_in(staff_user("cora", COMPLIANCE)).get(f"/messages/{letter.pk}/letter.pdf").status_code == 200

    # a stored file that no longer matches its recorded hash is not served as the letter
    path = default_storage.path(str(letter.letter_pdf.name))
    with open(path, "ab") as stored:
        stored.write(b"% changed")
    refused = officer.get(f"/messages/{letter.pk}/letter.pdf")
    assert refused.status_code == 409
    assert b"does not match the SHA-256 recorded when it was sent" in refused.content
    # an email is no letter; a letter not yet drawn has no PDF
    assert officer.get("/messages/999999/letter.pdf").status_code == 404


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_letter_template_naming_a_resource_fetches_nothing() -> None:
    # given a server on this machine, and a published letter template that names an image and a stylesheet on it
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        MessageTemplate.objects.filter(kind="margin_call", channel="letter", locale="de").update(
            body=f'<link rel="stylesheet" href="{url}/x.css"><img src="{url}/pixel.png"><p>{{{{ account }}}}</p>'
        )
        case = _letter_case("FETCH")
        letter = Notification.objects.get(case=case, channel="letter")

        # when it is drawn
        assert notifications_send(notification_ids=[letter.pk]).sent == 1

        # then the PDF was made without a single request
        assert _Recorder.hits == []
        letter.refresh_from_db()
        assert letter.letter_sha256
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
