"""Text messages (core/sms.py): the console backend for development, and Twilio's Messages API behind a setting.

The provider is the only thing outside the machine: a real HTTP server on 127.0.0.1 in a thread stands in for Twilio's
API (it records what it receives and answers as told, as Twilio answers), and the delivery reports are posted to our
endpoint signed as Twilio signs them.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from django.db import transaction
from django.test import Client as WebClient

from accounts.models import Client, MessagePreferences
from core.models import AuditEvent
from core.sms import ConsoleSmsBackend, SmsFailed, SmsMessage, SmsRejected, TwilioSmsBackend, twilio_signature
from restructuring.models import Case, Notification, NotificationKind, NotificationStatus
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.notifications import notification_enqueue, notifications_send
from tests.restructuring.helpers import account, btc, sweep_only

pytestmark = [pytest.mark.django_db]

SID, TOKEN = "AC00000000000000000000000000000001", "twilio-auth-token"
CALLBACK = "https://workout.example/hooks/sms/twilio/"


@dataclass
class Provider:
    url: str
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    status: int = 201
    answer: dict[str, Any] = field(
        default_factory=lambda: {"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}
    )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        provider = self.server.provider
        body = self.rfile.read(int(self.headers["Content-Length"]))
        provider.requests.append((self.path, dict(self.headers.items()), body))
        data = json.dumps(provider.answer).encode()
        self.send_response(provider.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    provider: Provider


@pytest.fixture
def twilio(settings: Any) -> Iterator[Provider]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.provider = Provider(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.WORKOUT_SMS_BACKEND = "core.sms.TwilioSmsBackend"
    settings.WORKOUT_TWILIO_API_URL = server.provider.url
    settings.WORKOUT_TWILIO_ACCOUNT_SID = SID
    settings.WORKOUT_TWILIO_AUTH_TOKEN = TOKEN
    settings.WORKOUT_TWILIO_FROM = "+15005550006"
    settings.WORKOUT_TWILIO_STATUS_CALLBACK_URL = CALLBACK
    yield server.provider
    server.shutdown()
    server.server_close()
    thread.join()


def _sms_case() -> Case:
    """A client taking SMS only (no email), in margin call: one SMS row, not yet sent."""
    margin_account = account("SMS", btc(), band="margin_call")
    MessagePreferences.objects.create(client=margin_account.client, phone="+4915112345678", locale="de")
    Client.objects.filter(pk=margin_account.client_id).update(name="Grete Schmidt")
    cases_apply_risk(sweep_id=sweep_only().pk)
    return Case.objects.get(account=margin_account)


def _sms(case: Case) -> Notification:
    return Notification.objects.get(case=case, channel="sms")


# ----------------------------------------------------------------------------------------------- the console


def test_the_console_backend_prints_the_message_and_names_it(settings: Any, capsys: Any, tmp_path: Any) -> None:
    # given a German client's margin call by SMS, and the console backend writing files too (the demo)
    settings.WORKOUT_SMS_FILE_PATH = str(tmp_path)
    case = _sms_case()
    sms = _sms(case)

    # when the outbox sends it
    assert notifications_send(notification_ids=[sms.pk]).sent == 1

    # then the text is on standard output and in a file of its own, as the client would read it
    printed = capsys.readouterr().out
    sms.refresh_from_db()
    assert f"To: +4915112345678\nReference: {sms.pk}\n" in printed
    assert sms.body in printed
    assert sms.body.startswith("Workout Lending: Nachschussforderung für Konto SMS. Zahlen Sie 250,00\xa0$ ein")
    (written,) = tmp_path.iterdir()
    assert written.name.endswith(f"-sms-{sms.pk}.txt")
    assert sms.body in written.read_text()
    assert (sms.status, sms.provider_id, sms.attempts) == ("sent", f"console-{sms.pk}", 1)
    event = AuditEvent.objects.get(action="message.sent", object_id=sms.pk)
    assert (event.payload["channel"], event.payload["recipient"], event.payload["provider_id"]) == (
        "sms",
        "+4915112345678",
        f"console-{sms.pk}",
    )


def test_the_console_backend_writes_to_the_stream_it_is_given() -> None:
    stream = io.StringIO()
    assert ConsoleSmsBackend(stream).send(SmsMessage(to="+14155550100", body="hello", reference="7")) == "console-7"
    assert "To: +14155550100\nReference: 7\n" in stream.getvalue()


# ----------------------------------------------------------------------------------------------- Twilio


def test_twilio_is_asked_to_send_the_text_and_its_message_sid_is_kept(twilio: Provider) -> None:
    case = _sms_case()
    sms = _sms(case)

    assert notifications_send(notification_ids=[sms.pk]).sent == 1

    # the request: Twilio's Messages resource of the account, form-encoded, HTTP Basic with the SID and token
    ((path, headers, body),) = twilio.requests
    assert path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
    assert form == {"To": "+4915112345678", "From": "+15005550006", "Body": sms.body, "StatusCallback": CALLBACK}
    sms.refresh_from_db()
    assert (sms.status, sms.provider_id) == ("sent", "SM0123456789abcdef0123456789abcdef")


def test_a_number_twilio_refuses_fails_the_message_at_once_and_an_outage_is_retried(twilio: Provider) -> None:
    case = _sms_case()
    sms = _sms(case)

    # Twilio's own error document for a number that is not one: failed for good, on the record
    twilio.status = 400
    twilio.answer = {
        "code": 21211,
        "message": "The 'To' number +4915112345678 is not a valid phone number.",
        "status": 400,
    }
    assert notifications_send(notification_ids=[sms.pk]).failed == 1
    sms.refresh_from_db()
    assert sms.status == NotificationStatus.FAILED
    assert sms.last_error == (
        "Twilio: HTTP 400 Bad Request: 21211 The 'To' number +4915112345678 is not a valid phone number."
    )
    failed = AuditEvent.objects.get(action="message.failed", object_id=sms.pk)
    assert failed.payload["error"] == sms.last_error

    # a 503 is retried (the row stays pending with its error)
    with transaction.atomic():
        (retry_id,) = notification_enqueue(case=case, kind=NotificationKind.CURED, payload={})
    twilio.status = 503
    twilio.answer = {"code": 20500, "message": "Service unavailable"}
    assert notifications_send(notification_ids=[retry_id]).retrying == 1
    retry = Notification.objects.get(pk=retry_id)
    assert (retry.status, retry.attempts) == ("pending", 1)
    assert retry.last_error.startswith("Twilio: HTTP 503")


def test_an_incomplete_twilio_configuration_is_an_error_retried_not_a_crash(settings: Any) -> None:
    settings.WORKOUT_TWILIO_ACCOUNT_SID = ""
    with pytest.raises(SmsFailed, match="Twilio is not configured"):
        TwilioSmsBackend()
    assert issubclass(SmsRejected, Exception)


# ----------------------------------------------------------------------------------------------- delivery reports


def _report(params: dict[str, str], *, token: str = TOKEN) -> Any:
    signature = twilio_signature(auth_token=token, url=CALLBACK, params=params)
    return WebClient().post("/hooks/sms/twilio/", params, HTTP_X_TWILIO_SIGNATURE=signature, secure=True)


def test_a_signed_report_of_an_undelivered_sms_bounces_it_on_the_record(twilio: Provider) -> None:
    # given an SMS Twilio took
    case = _sms_case()
    sms = _sms(case)
    notifications_send(notification_ids=[sms.pk])
    sms.refresh_from_db()

    # when Twilio reports it delivered, then undelivered (twice: it retries)
    assert _report({"MessageSid": sms.provider_id, "MessageStatus": "delivered", "AccountSid": SID}).status_code == 204
    assert Notification.objects.get(pk=sms.pk).status == "sent"
    report = {"MessageSid": sms.provider_id, "MessageStatus": "undelivered", "ErrorCode": "30003", "AccountSid": SID}
    assert _report(report).status_code == 204
    assert _report(report).status_code == 204

    # then it bounced, once, with the report on the row and in its event
    sms.refresh_from_db()
    assert (sms.status, sms.last_error) == ("bounced", "twilio: undelivered (error 30003)")
    assert sms.bounced_at is not None
    (bounced,) = AuditEvent.objects.filter(action="message.bounced", object_id=sms.pk)
    assert (bounced.from_state, bounced.to_state, bounced.payload["error"]) == (
        "sent",
        "bounced",
        "twilio: undelivered (error 30003)",
    )


def test_an_unsigned_or_wrongly_signed_report_is_refused_and_changes_nothing(twilio: Provider) -> None:
    case = _sms_case()
    sms = _sms(case)
    notifications_send(notification_ids=[sms.pk])
    sms.refresh_from_db()
    report = {"MessageSid": sms.provider_id, "MessageStatus": "failed"}
    events = AuditEvent.objects.count()

    assert WebClient().post("/hooks/sms/twilio/", report, secure=True).status_code == 403
    assert _report(report, token="someone-else").status_code == 403
    assert WebClient().get("/hooks/sms/twilio/", secure=True).status_code == 405
    assert Notification.objects.get(pk=sms.pk).status == "sent"
    assert AuditEvent.objects.count() == events
    # a signed report of a message that is not ours is acknowledged, and changes nothing
    assert _report({"MessageSid": "SMnotours", "MessageStatus": "failed"}).status_code == 204
    assert AuditEvent.objects.count() == events


def test_without_twilio_configured_the_endpoint_does_not_exist(settings: Any) -> None:
    settings.WORKOUT_TWILIO_AUTH_TOKEN = ""
    assert WebClient().post("/hooks/sms/twilio/", {"MessageStatus": "failed"}, secure=True).status_code == 404


def test_the_signature_is_twilios_documented_one() -> None:
    # Twilio's documentation's example (https://www.twilio.com/docs/usage/security#validating-requests)
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature(auth_token="12345", url=url, params=params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
