"""Notifications to clients through the outbox: enqueued with the transition, sent after commit by email and
signed webhook, retried with backoff, sent by the drain when the broker was down, never sent twice.

The client's webhook endpoint is the only thing outside the machine: a real HTTP server on 127.0.0.1 in a
thread, which records what it receives and can be told to fail or to hang. Email goes to Django's locmem
backend (`mailoutbox`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from babel.dates import format_datetime
from cryptography.fernet import Fernet
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Client, Instrument, MarginAccount, Price, WebhookEndpoint
from accounts.services.sweep import sweep_run
from core.encryption import secret_decrypt
from restructuring.models import (
    Case,
    CaseState,
    FeasibilityReport,
    MessageTemplate,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.liquidation import case_liquidate, liquidation_book
from restructuring.services.notifications import (
    NotificationTransactionError,
    notification_enqueue,
    notifications_drain,
    notifications_enqueue_for_cases,
    notifications_remind_deadlines,
    notifications_send,
)
from tests.accounts.test_sweep import _account, _btc
from tests.celery_worker import celery_worker
from tests.restructuring.helpers import broker_unreachable

SECRET = "whsec-test-0123456789abcdef"
OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


# ----------------------------------------------------------------------------------------- the client's endpoint


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Endpoint:
    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 204  # what it answers
    delay_s: float = 0.0  # how long it takes to answer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        endpoint = self.server.endpoint
        body = self.rfile.read(int(self.headers["Content-Length"]))
        endpoint.requests.append(Received(self.path, dict(self.headers.items()), body))
        time.sleep(endpoint.delay_s)
        self.send_response(endpoint.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"no" if endpoint.status >= 300 else b"ok")

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class _Server(ThreadingHTTPServer):
    endpoint: Endpoint


@pytest.fixture(autouse=True)
def _webhooks_may_reach_this_machine(settings: Any) -> None:
    """The test endpoint listens on 127.0.0.1, which production refuses (see the SSRF test below)."""
    settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.endpoint = Endpoint(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/workout")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.endpoint
    server.shutdown()
    server.server_close()
    thread.join()


# ----------------------------------------------------------------------------------------- the book


def webhook_endpoint(
    client_id: int, url: str, *, secret: str = SECRET, event_types: list[str] | None = None
) -> WebhookEndpoint:
    """An active endpoint of the client (as POST /api/v1/webhooks/ makes one, with a secret of the test's)."""
    now = timezone.now()
    return WebhookEndpoint.objects.create(
        client_id=client_id,
        url=url,
        secret=secret,
        event_types=event_types or ["*"],
        created_at=now,
        updated_at=now,
    )


def _contacts(account: MarginAccount, *, email: str = "", webhook_url: str = "") -> MarginAccount:
    """The client's email, and a webhook endpoint subscribed to every event (what a client's one webhook was
    before endpoints, and is after their migration)."""
    Client.objects.filter(pk=account.client_id).update(email=email)
    if webhook_url:
        webhook_endpoint(account.client_id, webhook_url)
    return account


def _called(code: str, btc: Instrument, *, email: str = "", webhook_url: str = "") -> MarginAccount:
    """10 BTC at 100 against a 750 loan: equity 250 below maintenance 300, a call for 500 - 250 = 250."""
    account = _account(code, btc, cash="0", btc_quantity="10", loan="750")
    return _contacts(account, email=email, webhook_url=webhook_url)


def _case(account: MarginAccount) -> Case:
    return Case.objects.get(account=account)


def _verifies(request: Received, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, request.headers["X-Workout-Signature"])


@contextmanager
def _broker_down() -> Iterator[None]:
    """Tasks go to a broker that refuses connections (and are not run in-process). The shared helper also
    overrides CELERY_BROKER_URL in the environment, which Celery reads before its settings."""
    with broker_unreachable():
        yield


# ----------------------------------------------------------------------------------------- enqueue and send


@pytest.mark.django_db
def test_a_margin_call_from_the_sweep_is_sent_by_email_and_signed_webhook(
    endpoint: Endpoint, mailoutbox: list[EmailMessage], django_capture_on_commit_callbacks: Any
) -> None:
    # given a client with both channels whose account falls below maintenance, and one in warning only
    btc = _btc()
    account = _called("CALL", btc, email="treasury@client.example", webhook_url=endpoint.url)
    warning = _contacts(
        _account("WARN", btc, cash="0", btc_quantity="10", loan="660"),
        email="w@client.example",
        webhook_url=endpoint.url,
    )
    sweep = sweep_run()

    # when the sweep's cases are moved and the transaction commits
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        cases_apply_risk(sweep_id=sweep.pk)

    # then one email and one webhook row tell of the call, both sent by the task queued on commit
    case = _case(account)
    # the notifications' send, the feasibility of the new margin call, and (once its report is stored) the rules
    assert [callback.task_name.rsplit(".", 1)[-1] for callback in callbacks] == [
        "notifications_send_task",
        "compute_feasibility",
        "propose_from_rules",
    ]
    assert FeasibilityReport.objects.filter(case=case, trigger="margin_call").count() == 1
    rows = {n.channel: n for n in Notification.objects.all()}
    assert set(rows) == {"email", "webhook"}
    assert rows["email"].recipient == "treasury@client.example"
    assert rows["webhook"].recipient == endpoint.url
    assert case.called_at is not None
    assert case.deadline is not None
    payload = {
        "account": "CALL",
        "call_amount": "250.00",
        "call_basis": "initial",
        "called_at": case.called_at.isoformat(),
        "case_id": case.pk,
        "currency": "USD",
        "deadline": case.deadline.isoformat(),
        "state": "margin_call",
    }
    for row in rows.values():
        assert (row.case_id, row.kind, row.status, row.attempts) == (case.pk, "margin_call", "sent", 1)
        assert row.payload == payload
        assert row.dedupe_key == case.called_at.isoformat()
        assert row.sent_at is not None
        assert row.last_error == ""
    assert not Notification.objects.filter(case=_case(warning)).exists()

    # the email
    (message,) = mailoutbox
    assert message.to == ["treasury@client.example"]
    # rendered from the English template in use when the call was enqueued, recorded on the row (issue 18)
    deadline = format_datetime(case.deadline, "long", tzinfo=UTC, locale="en")
    assert message.subject == f"Margin call on account CALL: $250.00 by {deadline}"
    assert f"Please deposit $250.00 or reduce your positions by {deadline}." in message.body
    email_row = rows["email"]
    assert (email_row.subject, email_row.body) == (message.subject, message.body)
    assert email_row.template == MessageTemplate.objects.get(
        kind="margin_call", channel="email", locale="en", status="published"
    )
    assert (email_row.locale, rows["webhook"].template, rows["webhook"].body) == ("en", None, "")
    assert message.extra_headers["Message-ID"] == f"<notification-{rows['email'].pk}@workout>"

    # the webhook: the canonical body, signed with the client's secret, the id as idempotency key
    (request,) = endpoint.requests
    assert request.path == "/hooks/workout"
    body = request.json()
    assert body == {
        "id": rows["webhook"].pk,
        "type": "margin_call",
        "timestamp": int(request.headers["X-Workout-Timestamp"]),
        "data": payload,
    }
    assert request.body == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Workout-Notification-Id"] == str(rows["webhook"].pk)
    assert request.headers["X-Workout-Event"] == "margin_call"
    assert abs(int(request.headers["X-Workout-Timestamp"]) - time.time()) < 60
    assert _verifies(request, SECRET)


@pytest.mark.django_db
def test_the_signature_verifies_only_with_the_clients_secret_and_body(
    endpoint: Endpoint, django_capture_on_commit_callbacks: Any
) -> None:
    _called("SIGNED", _btc(), webhook_url=endpoint.url)
    sweep = sweep_run()
    with django_capture_on_commit_callbacks(execute=True):
        cases_apply_risk(sweep_id=sweep.pk)

    (request,) = endpoint.requests
    assert _verifies(request, SECRET)
    assert not _verifies(request, SECRET + "x")
    tampered = Received(request.path, request.headers, request.body.replace(b'"250.00"', b'"25.00"'))
    assert tampered.body != request.body
    assert not _verifies(tampered, SECRET)


@pytest.mark.django_db
def test_the_secret_is_stored_encrypted_and_the_receiver_verifies_with_the_clear_one(
    endpoint: Endpoint, django_capture_on_commit_callbacks: Any
) -> None:
    # given a client whose secret was written through the ORM
    account = _called("ATREST", _btc(), webhook_url=endpoint.url)

    # then the column holds a token, not the secret, and the token decrypts to it
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM accounts_webhookendpoint WHERE client_id = %s", [account.client_id])
        (stored,) = cursor.fetchone()
    assert stored.startswith("gAAAAA")
    assert SECRET not in stored
    assert secret_decrypt(stored) == SECRET

    # when a margin call is told
    with django_capture_on_commit_callbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_run().pk)

    # then the receiver verifies the signature with the clear secret (never with what the database holds)
    (request,) = endpoint.requests
    assert _verifies(request, SECRET)
    assert not _verifies(request, stored)


@pytest.mark.django_db
def test_a_secret_no_key_decrypts_fails_the_send_naming_the_client_and_the_transition_stands(
    endpoint: Endpoint, settings: Any, django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # given a client whose secret was encrypted under a key that is then replaced by another
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [OLD_KEY]
    account = _called("LOSTKEY", _btc(), email="a@client.example", webhook_url=endpoint.url)
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [NEW_KEY]

    # when the case moves to margin call and its notifications are sent on commit
    with django_capture_on_commit_callbacks(execute=True):
        moves = cases_apply_risk(sweep_id=sweep_run().pk)

    # then the transition committed, the email went, and the webhook was neither signed nor sent
    assert moves.margin_calls == 1
    assert _case(account).state == CaseState.MARGIN_CALL
    assert endpoint.requests == []
    webhook = Notification.objects.get(channel="webhook")
    assert Notification.objects.get(channel="email").status == NotificationStatus.SENT
    # pending, to be retried: the error names the client and says what is wrong
    assert (webhook.status, webhook.attempts) == (NotificationStatus.PENDING, 1)
    assert webhook.last_error == (
        "the webhook secret of client C-LOSTKEY cannot be decrypted: no key of WORKOUT_WEBHOOK_SECRET_KEYS decrypts "
        "it (encrypted under a key no longer configured, or altered); not sent"
    )
    assert [r.levelname for r in caplog.records if "C-LOSTKEY" in r.getMessage()] == ["ERROR"]

    # when the old key is put back (after the new one) and the retry is due
    settings.WORKOUT_WEBHOOK_SECRET_KEYS = [NEW_KEY, OLD_KEY]
    result = notifications_drain(now=timezone.now() + timedelta(hours=1))

    # then it is sent, signed with the right secret
    assert result.as_dict() == {"sent": 1, "retrying": 0, "failed": 0}
    (request,) = endpoint.requests
    assert _verifies(request, SECRET)


@pytest.mark.django_db
def test_a_client_without_email_or_webhook_gets_no_rows(django_capture_on_commit_callbacks: Any) -> None:
    # given a margin call for a client who set neither channel
    account = _called("SILENT", _btc())
    sweep = sweep_run()

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        cases_apply_risk(sweep_id=sweep.pk)

    # then the case moved, nothing is enqueued and no sending is queued (only the call's feasibility)
    assert _case(account).state == CaseState.MARGIN_CALL
    assert not Notification.objects.exists()
    assert [callback.task_name.rsplit(".", 1)[-1] for callback in callbacks] == [
        "compute_feasibility",
        "propose_from_rules",
    ]


@pytest.mark.django_db
def test_an_email_only_client_gets_one_email_row(mailoutbox: list[EmailMessage]) -> None:
    account = _called("MAIL", _btc(), email="ops@client.example")
    cases_apply_risk(sweep_id=sweep_run().pk)

    assert list(Notification.objects.values_list("channel", "recipient")) == [("email", "ops@client.example")]
    assert notifications_drain().as_dict() == {"sent": 1, "retrying": 0, "failed": 0}
    assert [m.to for m in mailoutbox] == [["ops@client.example"]]
    assert _case(account).state == CaseState.MARGIN_CALL


@pytest.mark.django_db
def test_enqueueing_the_same_event_twice_is_a_no_op(endpoint: Endpoint) -> None:
    account = _called("TWICE", _btc(), email="a@client.example", webhook_url=endpoint.url)
    cases_apply_risk(sweep_id=sweep_run().pk)
    case = _case(account)
    assert Notification.objects.count() == 2

    with transaction.atomic():
        again = notifications_enqueue_for_cases(cases=[case])

    assert again == []
    assert Notification.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_enqueueing_outside_a_transaction_is_refused(endpoint: Endpoint) -> None:
    account = _called("NOTX", _btc(), email="a@client.example")
    with transaction.atomic():
        cases_apply_risk(sweep_id=sweep_run().pk)
    Notification.objects.all().delete()

    with pytest.raises(NotificationTransactionError, match=r"inside transaction\.atomic\(\)"):
        notification_enqueue(case=_case(account), kind=NotificationKind.MARGIN_CALL, payload={})
    assert not Notification.objects.exists()


# ----------------------------------------------------------------------------------------- rollback and broker


@pytest.mark.django_db(transaction=True)
def test_a_rollback_leaves_no_notification_and_sends_nothing(
    endpoint: Endpoint, mailoutbox: list[EmailMessage], settings: Any
) -> None:
    # given a margin call to come for a client with both channels (the sweep does not move cases by itself here)
    settings.WORKOUT_AFTER_SWEEP_TASKS = []
    account = _called("ROLLBACK", _btc(), email="a@client.example", webhook_url=endpoint.url)
    sweep = sweep_run()

    enqueued = []

    def move_then_fail() -> None:
        with transaction.atomic():
            cases_apply_risk(sweep_id=sweep.pk)
            enqueued.append(Notification.objects.count())
            raise RuntimeError("the request fails after the move")

    # when the transaction the cases move in fails after they moved and enqueued
    with pytest.raises(RuntimeError, match="after the move"):
        move_then_fail()

    # then no case, no notification, nothing sent, not even by the drain
    assert enqueued == [2]
    assert not Case.objects.filter(account=account).exists()
    assert not Notification.objects.exists()
    assert notifications_drain().as_dict() == {"sent": 0, "retrying": 0, "failed": 0}
    assert endpoint.requests == []
    assert mailoutbox == []


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_at_commit_the_transition_commits_and_the_drain_sends_later(
    endpoint: Endpoint, mailoutbox: list[EmailMessage], settings: Any
) -> None:
    # given a margin call to come (the sweep does not move cases by itself here)
    settings.WORKOUT_AFTER_SWEEP_TASKS = []
    account = _called("NOREDIS", _btc(), email="a@client.example", webhook_url=endpoint.url)
    sweep = sweep_run()

    # when the cases move while Redis refuses connections
    started = time.monotonic()
    with _broker_down():
        moves = cases_apply_risk(sweep_id=sweep.pk)
    elapsed = time.monotonic() - started

    # then the transition committed without waiting on the broker, and its notifications are pending
    assert moves.margin_calls == 1
    assert _case(account).state == CaseState.MARGIN_CALL
    assert elapsed < 2.0  # one refused connection, no reconnect loop
    assert sorted(Notification.objects.values_list("channel", "status", "attempts")) == [
        ("email", "pending", 0),
        ("webhook", "pending", 0),
    ]
    assert endpoint.requests == []
    assert mailoutbox == []

    # when the broker is back and the beat's drain runs
    result = notifications_drain()

    # then both are sent, once
    assert result.as_dict() == {"sent": 2, "retrying": 0, "failed": 0}
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}
    assert len(endpoint.requests) == 1
    assert len(mailoutbox) == 1


@pytest.mark.django_db
def test_rows_whose_on_commit_dispatch_never_ran_are_sent_by_the_drain(
    endpoint: Endpoint, mailoutbox: list[EmailMessage], django_capture_on_commit_callbacks: Any
) -> None:
    # given the process dies right after commit: the dispatch callback never runs
    _called("LOST", _btc(), email="a@client.example", webhook_url=endpoint.url)
    sweep = sweep_run()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        cases_apply_risk(sweep_id=sweep.pk)
    assert [callback.task_name.rsplit(".", 1)[-1] for callback in callbacks] == [
        "notifications_send_task",
        "compute_feasibility",
    ]
    assert Notification.objects.filter(status=NotificationStatus.PENDING).count() == 2

    # when the drain runs
    result = notifications_drain()

    # then
    assert result.sent == 2
    assert len(endpoint.requests) == 1
    assert len(mailoutbox) == 1


# ----------------------------------------------------------------------------------------- retries


@pytest.mark.django_db
def test_a_failing_endpoint_is_retried_with_backoff_and_failed_after_the_last_attempt(
    endpoint: Endpoint, settings: Any
) -> None:
    # given a webhook-only client whose endpoint answers 500, three attempts allowed, one minute first wait
    settings.WORKOUT_NOTIFICATION_MAX_ATTEMPTS = 3
    settings.WORKOUT_NOTIFICATION_RETRY_SECONDS = 60
    endpoint.status = 500
    _called("FAILING", _btc(), webhook_url=endpoint.url)
    cases_apply_risk(sweep_id=sweep_run().pk)
    t0 = timezone.now()

    def row() -> Notification:
        return Notification.objects.get()

    # when the first attempt fails: retry in 1 minute
    assert notifications_drain(now=t0).as_dict() == {"sent": 0, "retrying": 1, "failed": 0}
    assert (row().status, row().attempts, row().next_attempt_at) == ("pending", 1, t0 + timedelta(minutes=1))
    assert row().last_error == "HTTP 500 Internal Server Error: no"

    # not due yet: nothing happens
    assert notifications_drain(now=t0 + timedelta(seconds=59)).as_dict() == {"sent": 0, "retrying": 0, "failed": 0}
    assert len(endpoint.requests) == 1

    # the second attempt fails: retry 2 minutes later
    t1 = t0 + timedelta(minutes=1)
    assert notifications_drain(now=t1).retrying == 1
    assert (row().attempts, row().next_attempt_at) == (2, t1 + timedelta(minutes=2))

    # the third and last fails: failed, with the error
    t2 = t1 + timedelta(minutes=2)
    assert notifications_drain(now=t2).as_dict() == {"sent": 0, "retrying": 0, "failed": 1}
    assert (row().status, row().attempts, row().sent_at) == ("failed", 3, None)
    assert row().last_error == "HTTP 500 Internal Server Error: no"

    # and it is never tried again
    assert notifications_drain(now=t2 + timedelta(days=1)).as_dict() == {"sent": 0, "retrying": 0, "failed": 0}
    assert len(endpoint.requests) == 3
    # the case was never touched by any of it
    assert Case.objects.get().state == CaseState.MARGIN_CALL


@pytest.mark.django_db
def test_a_retry_delivers_once_the_endpoint_is_back(endpoint: Endpoint) -> None:
    endpoint.status = 503
    _called("FLAKY", _btc(), webhook_url=endpoint.url)
    cases_apply_risk(sweep_id=sweep_run().pk)
    t0 = timezone.now()
    notifications_drain(now=t0)

    endpoint.status = 200
    result = notifications_drain(now=t0 + timedelta(minutes=1))

    notification = Notification.objects.get()
    assert result.sent == 1
    assert (notification.status, notification.attempts, notification.last_error) == ("sent", 2, "")
    first, second = endpoint.requests
    assert first.json()["id"] == second.json()["id"] == notification.pk  # the receiver's idempotency key
    assert _verifies(second, SECRET)


@pytest.mark.django_db
def test_an_endpoint_that_hangs_or_refuses_is_an_error_within_the_timeout(endpoint: Endpoint, settings: Any) -> None:
    # given one endpoint that answers after 3 s with a 0.5 s timeout, and one where nothing listens
    settings.WORKOUT_WEBHOOK_TIMEOUT_SECONDS = 0.5
    endpoint.delay_s = 3.0
    btc = _btc()
    _called("SLOW", btc, webhook_url=endpoint.url)
    _called("NOBODY", btc, webhook_url="http://127.0.0.1:1/hook")
    cases_apply_risk(sweep_id=sweep_run().pk)

    # when
    started = time.monotonic()
    result = notifications_drain()

    # then both failed fast, to be retried
    assert time.monotonic() - started < 2.5
    assert result.as_dict() == {"sent": 0, "retrying": 2, "failed": 0}
    errors = dict(Notification.objects.values_list("case__account__code", "last_error"))
    assert "timed out" in errors["SLOW"]
    assert "Connection refused" in errors["NOBODY"]


@pytest.mark.django_db
def test_a_webhook_url_that_is_not_http_fails_at_once_without_a_request(endpoint: Endpoint) -> None:
    account = _called("FILE", _btc(), webhook_url=endpoint.url)
    cases_apply_risk(sweep_id=sweep_run().pk)
    Notification.objects.filter(case__account=account).update(recipient="file:///etc/passwd")

    assert notifications_drain().as_dict() == {"sent": 0, "retrying": 0, "failed": 1}
    assert Notification.objects.get().last_error == "not an http(s) URL: file:///etc/passwd"
    assert endpoint.requests == []


@pytest.mark.django_db
def test_a_redirect_is_not_followed(endpoint: Endpoint) -> None:
    endpoint.status = 307
    _called("REDIRECT", _btc(), webhook_url=endpoint.url)
    cases_apply_risk(sweep_id=sweep_run().pk)

    assert notifications_drain().retrying == 1
    assert Notification.objects.get().last_error.startswith("HTTP 307")
    assert len(endpoint.requests) == 1


# ----------------------------------------------------------------------------------------- sending once


@pytest.mark.django_db
def test_the_task_delivered_twice_and_the_drain_send_each_row_once(
    endpoint: Endpoint, mailoutbox: list[EmailMessage]
) -> None:
    _called("ONCE", _btc(), email="a@client.example", webhook_url=endpoint.url)
    cases_apply_risk(sweep_id=sweep_run().pk)
    ids = list(Notification.objects.values_list("pk", flat=True))

    first = notifications_send(notification_ids=ids)
    second = notifications_send(notification_ids=ids)  # the same task message redelivered
    drained = notifications_drain(now=timezone.now() + timedelta(days=1))  # and the beat, much later

    assert (first.sent, second.sent, drained.sent) == (2, 0, 0)
    assert len(endpoint.requests) == 1
    assert len(mailoutbox) == 1
    assert list(Notification.objects.values_list("attempts", flat=True)) == [1, 1]


@pytest.mark.django_db
def test_the_task_sends_its_fresh_rows_even_with_a_clock_behind_the_enqueuers(endpoint: Endpoint) -> None:
    _called("SKEW", _btc(), webhook_url=endpoint.url)
    cases_apply_risk(sweep_id=sweep_run().pk)
    ids = list(Notification.objects.values_list("pk", flat=True))
    behind = timezone.now() - timedelta(seconds=30)

    assert notifications_drain(now=behind).sent == 0  # the beat waits for the row's time
    assert notifications_send(notification_ids=ids, now=behind).sent == 1  # the task it was queued for does not
    assert len(endpoint.requests) == 1


@pytest.mark.django_db
def test_a_row_claimed_by_a_sender_is_left_alone_until_its_lease_runs_out(endpoint: Endpoint) -> None:
    # given a sender that claimed the row and died before sending (its lease is in the future)
    _called("LEASED", _btc(), webhook_url=endpoint.url)
    cases_apply_risk(sweep_id=sweep_run().pk)
    leased_until = timezone.now() + timedelta(minutes=5)
    Notification.objects.update(attempts=1, next_attempt_at=leased_until)

    # then no other sender takes it before the lease ends, and one does after
    assert notifications_drain().sent == 0
    assert notifications_drain(now=leased_until).sent == 1
    assert Notification.objects.get().attempts == 2
    assert len(endpoint.requests) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_drains_send_each_row_once(endpoint: Endpoint, settings: Any) -> None:
    # given 12 margin calls with a webhook each, and an endpoint slow enough for the drains to overlap
    settings.WORKOUT_AFTER_SWEEP_TASKS = []
    endpoint.delay_s = 0.05
    btc = _btc()
    for i in range(12):
        _called(f"RACE{i:02}", btc, webhook_url=endpoint.url)
    sweep = sweep_run()
    with _broker_down():  # nothing sent on commit: all wait for the drains
        cases_apply_risk(sweep_id=sweep.pk)
    barrier = threading.Barrier(3)
    results: list[int] = []

    def drain() -> None:
        try:
            barrier.wait()
            results.append(notifications_drain().sent)
        finally:
            connection.close()

    # when three drains run at once
    threads = [threading.Thread(target=drain) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then every row was sent by exactly one of them
    assert sum(results) == 12
    ids = [request.json()["id"] for request in endpoint.requests]
    assert sorted(ids) == sorted(Notification.objects.values_list("pk", flat=True))
    assert set(Notification.objects.values_list("status", "attempts")) == {("sent", 1)}


# ----------------------------------------------------------------------------------------- reminders


@pytest.mark.django_db
def test_the_deadline_reminder_is_enqueued_once(endpoint: Endpoint, settings: Any) -> None:
    # given margin calls due in 3 h, 5 h and already past (reminders 4 h before)
    settings.WORKOUT_REMINDER_BEFORE_HOURS = 4
    btc = _btc()
    soon = _called("SOON", btc, email="soon@client.example", webhook_url=endpoint.url)
    later = _called("LATER", btc, email="later@client.example")
    past = _called("PAST", btc, email="past@client.example")
    cases_apply_risk(sweep_id=sweep_run().pk)
    Notification.objects.all().delete()
    now = timezone.now()
    for account, hours in ((soon, 3), (later, 5), (past, -1)):
        Case.objects.filter(account=account).update(deadline=now + timedelta(hours=hours))

    # when the beat looks for reminders twice, and again an hour later
    first = notifications_remind_deadlines(now=now)
    second = notifications_remind_deadlines(now=now)

    # then the call due in 3 h is reminded once, on both channels
    case = _case(soon)
    assert case.deadline is not None
    assert (first, second) == (1, 0)
    reminders = Notification.objects.filter(kind=NotificationKind.DEADLINE_REMINDER)
    assert sorted(reminders.values_list("case_id", "channel")) == [(case.pk, "email"), (case.pk, "webhook")]
    assert set(reminders.values_list("dedupe_key", flat=True)) == {case.deadline.isoformat()}
    assert reminders.first().payload["deadline"] == case.deadline.isoformat()  # type: ignore[union-attr]

    # an hour later the 5 h call is within 4 h: reminded; the first is not reminded again, even once sent
    notifications_drain(now=now)
    assert notifications_remind_deadlines(now=now + timedelta(hours=1, minutes=1)) == 1
    assert sorted(reminders.values_list("case__account__code", flat=True)) == ["LATER", "SOON", "SOON"]


@pytest.mark.django_db
def test_a_cured_call_is_not_reminded_and_tells_of_its_cure(endpoint: Endpoint, mailoutbox: list[EmailMessage]) -> None:
    # given a margin call that the client meets (BTC back to 120: equity 450 >= 1.25 x 360)
    btc = _btc()
    account = _called("CURED", btc, email="a@client.example", webhook_url=endpoint.url)
    cases_apply_risk(sweep_id=sweep_run().pk)
    Price.objects.create(instrument=btc, time=timezone.now(), price=Decimal(120))

    # when
    cases_apply_risk(sweep_id=sweep_run().pk)
    notifications_drain()

    # then the cure is told; no reminder for a closed call
    case = _case(account)
    assert case.state == CaseState.CURED
    assert case.closed_at is not None
    cured = Notification.objects.get(kind=NotificationKind.CURED, channel="webhook")
    assert cured.payload == {
        "account": "CURED",
        "case_id": case.pk,
        "closed_at": case.closed_at.isoformat(),
        "currency": "USD",
        "state": "cured",
    }
    assert notifications_remind_deadlines(now=timezone.now() + timedelta(hours=23)) == 0
    assert [r.json()["type"] for r in endpoint.requests] == ["margin_call", "cured"]
    assert [m.subject for m in mailoutbox][-1] == "Account CURED is back within its margin requirement"


# ----------------------------------------------------------------------------------------- the liquidation path


@pytest.mark.django_db
def test_liquidation_and_its_written_off_outcome_are_told(endpoint: Endpoint, mailoutbox: list[EmailMessage]) -> None:
    # given 10 BTC at 100 (1,000 a day traded) against a 1,100 loan: a call, past its deadline
    btc = Instrument.objects.create(
        symbol="BTC",
        kind="spot",
        initial_rate=Decimal("0.5"),
        maintenance_rate=Decimal("0.3"),
        scenario_class="crypto",
        daily_volatility=Decimal("0.04"),
        average_daily_volume=Decimal("1000"),
    )
    Price.objects.create(instrument=btc, time=timezone.now() - timedelta(minutes=1), price=Decimal(100))
    account = _contacts(
        _account("SHORT", btc, cash="0", btc_quantity="10", loan="1100"),
        email="a@client.example",
        webhook_url=endpoint.url,
    )
    cases_apply_risk(sweep_id=sweep_run().pk)
    case = _case(account)

    # when the case is liquidated and the fills are booked (997.20 against 1,100)
    plan = case_liquidate(case_id=case.pk, reason="margin call deadline passed")
    liquidation_book(plan_id=plan.pk)
    notifications_drain()

    # then the client heard of the call, the liquidation and the written-off outcome, once each
    assert [r.json()["type"] for r in endpoint.requests] == ["margin_call", "liquidation", "written_off"]
    liquidation = Notification.objects.get(kind=NotificationKind.LIQUIDATION, channel="webhook")
    assert liquidation.payload["reason"] == "margin call deadline passed"
    assert liquidation.payload["days"] == 1
    assert liquidation.payload["state"] == "liquidating"
    outcome = Notification.objects.get(kind=NotificationKind.WRITTEN_OFF, channel="webhook").payload
    assert (outcome["state"], outcome["cash_realised"], outcome["debt_repaid"], outcome["shortfall"]) == (
        "written_off",
        "997.20",
        "997.20",
        "102.80",
    )
    assert mailoutbox[-1].subject == "Liquidation of account SHORT is complete: $102.80 shortfall"
    assert "a shortfall of $102.80 remained and has been written off" in mailoutbox[-1].body
    assert all(_verifies(r, SECRET) for r in endpoint.requests)


# ----------------------------------------------------------------------------------------- bulk


@pytest.mark.django_db
def test_the_sweeps_bulk_enqueue_takes_a_fixed_number_of_queries(endpoint: Endpoint) -> None:
    # given 3 margin calls for clients with both channels, then 28
    btc = _btc()
    for i in range(3):
        _called(f"FEW{i}", btc, email=f"few{i}@client.example", webhook_url=endpoint.url)
    sweep = sweep_run()
    with CaptureQueriesContext(connection) as few:
        cases_apply_risk(sweep_id=sweep.pk)
    assert Notification.objects.count() == 6
    Notification.objects.all().delete()
    Case.objects.all().delete()
    for i in range(25):
        _called(f"MANY{i:02}", btc, email=f"many{i}@client.example", webhook_url=endpoint.url)
    sweep = sweep_run()

    # when
    with CaptureQueriesContext(connection) as many:
        moves = cases_apply_risk(sweep_id=sweep.pk)

    # then no query per case: the same statements move and enqueue 3 or 28 (batches stay under SQLite's cap)
    assert moves.margin_calls == 28
    assert Notification.objects.count() == 56
    notification_queries = [q for q in many.captured_queries if "restructuring_notification" in q["sql"]]
    # a staging table made afresh (dropped if a call before in this transaction left it), filled by COPY (not a
    # query), then one insert that skips the events already there and returns the new ids (core/bulk.py)
    assert [q["sql"].split(" ", 3)[:3] for q in notification_queries] == [
        ["DROP", "TABLE", "IF"],
        ["CREATE", "TEMPORARY", "TABLE"],
        ["INSERT", "INTO", '"restructuring_notification"'],
    ]
    assert len(many.captured_queries) == len(few.captured_queries)


# ----------------------------------------------------------------------------------------- a real worker


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_the_task_queued_on_commit_is_sent_by_a_real_worker(endpoint: Endpoint, settings: Any) -> None:
    # given a webhook-only client (the worker's email backend is not the test's) and a margin call to come
    settings.WORKOUT_AFTER_SWEEP_TASKS = []
    account = _called("WORKER", _btc(), webhook_url=endpoint.url)
    sweep = sweep_run()

    # when the case moves and commits with a worker on Redis (allowed, like this process, to call this machine)
    with celery_worker(env={"WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}):
        cases_apply_risk(sweep_id=sweep.pk)
        deadline = time.monotonic() + 60
        while not Notification.objects.filter(status=NotificationStatus.SENT).exists():
            assert time.monotonic() < deadline, "the worker did not send the notification in time"
            time.sleep(0.1)

    # then the worker posted it, signed, once
    (request,) = endpoint.requests
    assert request.json()["data"]["case_id"] == _case(account).pk
    assert _verifies(request, SECRET)


@pytest.mark.django_db
def test_a_webhook_that_resolves_inside_the_house_is_refused_and_never_called(
    endpoint: Endpoint, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given production's setting, and a client whose webhook points at this machine
    settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    account = _called("INSIDE", _btc(), webhook_url=endpoint.url)
    sweep = sweep_run()

    with django_capture_on_commit_callbacks(execute=True):
        cases_apply_risk(sweep_id=sweep.pk)

    # then the row failed for good at once, saying why, and the endpoint heard nothing
    row = Notification.objects.get(case=_case(account), channel="webhook")
    assert row.status == NotificationStatus.FAILED
    assert row.last_error == "127.0.0.1 resolves to a non-public address (127.0.0.1): refused"
    assert endpoint.requests == []
