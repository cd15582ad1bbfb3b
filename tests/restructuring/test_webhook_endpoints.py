"""Webhook endpoints (issue 18) on the real stack: a client makes its endpoints through the API, each gets only the
events it subscribes to, signed with its own secret; a rotation changes the key (with its overlap); an endpoint
that keeps failing is disabled and its client told by email; an officer has a notification delivered again, with
the same id; another client's endpoint does not exist for the caller.

The client's servers are the only thing outside the machine: real HTTP servers on 127.0.0.1 in threads
(tests/restructuring/test_notifications.py's), which record what they receive and can be told to fail.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.mail import EmailMessage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from jsonschema import Draft202012Validator

from accounts.models import Client, Price, WebhookEndpoint
from accounts.services.api_tokens import api_token_create
from accounts.services.sweep import sweep_run
from core.models import AuditEvent, IdempotencyRecord
from core.roles import COMPLIANCE, CREDIT_OFFICER
from restructuring.events import envelope_schema, event_type, json_schema
from restructuring.models import Case, Notification, NotificationKind, NotificationStatus, WebhookDelivery
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.notifications import notifications_drain
from restructuring.services.webhooks import notification_redeliver, webhook_endpoint_create
from tests.accounts.test_sweep import _btc
from tests.api.conftest import Api
from tests.celery_worker import celery_worker
from tests.restructuring.helpers import wait_until
from tests.restructuring.test_notifications import Endpoint, Received, _called, _Handler, _Server
from tests.web.helpers import signed_in, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _webhooks_may_reach_this_machine(settings: Any) -> None:
    """The test servers listen on 127.0.0.1, which production refuses (tests/restructuring/test_webhook_edges.py).
    The officers' pages as tests/web/conftest.py serves them: plain HTTP, no static manifest, a fast hasher."""
    settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.SECURE_SSL_REDIRECT = False
    settings.STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def servers() -> Iterator[Callable[[], Endpoint]]:
    """Start a client's server per call; all stopped after the test."""
    started: list[tuple[_Server, threading.Thread]] = []

    def start() -> Endpoint:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.endpoint = Endpoint(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/{len(started)}")
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        return server.endpoint

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join()


def _api(client_id: int) -> Api:
    return Api(api_token_create(client_id=client_id).secret)


def _create(api: Api, url: str, event_types: list[str]) -> dict[str, Any]:
    response = api.post("/api/v1/webhooks/", {"url": url, "event_types": event_types})
    assert response.status_code == 201, response.json()
    return dict(response.json())


def _signatures(request: Received) -> list[str]:
    return request.headers["X-Workout-Signature"].split(",")


def _signed_with(request: Received, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, signature) for signature in _signatures(request))


def _conforms(request: Received) -> None:
    """The body is as the catalogue publishes it: the envelope of its type, its data by the type's schema."""
    body = request.json()
    schema = json_schema(envelope_schema(event_type(body["type"])))
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(body)
    assert request.headers["X-Workout-Event"] == body["type"]
    assert request.headers["X-Workout-Notification-Id"] == str(body["id"])


def _margin_call() -> None:
    cases_apply_risk(sweep_id=sweep_run().pk)
    notifications_drain()


def _cure(code: str) -> None:
    """BTC back to 120: equity 450 >= 1.25 x 360, the call is met."""
    Price.objects.create(instrument=_btc_of(code), time=timezone.now(), price=Decimal(120))
    cases_apply_risk(sweep_id=sweep_run().pk)
    notifications_drain()


def _btc_of(code: str) -> Any:
    return Case.objects.get(account__code=code).account.positions.get().instrument


# ----------------------------------------------------------------------------------------- subscriptions


def test_an_endpoint_gets_only_its_subscribed_events_signed_with_its_own_secret(
    servers: Callable[[], Endpoint],
) -> None:
    # given a client with three endpoints: margin calls only, cures only, and everything
    account = _called("SUBS", _btc())
    api = _api(account.client_id)
    calls, cures, everything = servers(), servers(), servers()
    made = {
        "calls": _create(api, calls.url, ["margin_call"]),
        "cures": _create(api, cures.url, ["cured"]),
        "everything": _create(api, everything.url, ["*"]),
    }
    secrets = {name: endpoint["secret"] for name, endpoint in made.items()}
    assert len(set(secrets.values())) == 3
    assert all(secret.startswith("whsec_") for secret in secrets.values())

    # when the account falls into a margin call, then the call is met
    _margin_call()
    _cure("SUBS")

    # then each endpoint got the events it subscribes to, and only those
    assert [r.json()["type"] for r in calls.requests] == ["margin_call"]
    assert [r.json()["type"] for r in cures.requests] == ["cured"]
    assert [r.json()["type"] for r in everything.requests] == ["margin_call", "cured"]
    # signed with its own secret, and with no other endpoint's
    for name, server in (("calls", calls), ("cures", cures), ("everything", everything)):
        for request in server.requests:
            assert [_signed_with(request, secret) for secret in secrets.values()] == [
                other == name for other in secrets
            ]
            assert len(_signatures(request)) == 1
            _conforms(request)
    # one notification per endpoint and event, each naming its endpoint: the margin call's two have their own ids
    rows = Notification.objects.filter(channel="webhook").order_by("pk")
    assert sorted((row.webhook_endpoint_id, row.kind, row.status) for row in rows) == sorted(
        [
            (made["calls"]["id"], "margin_call", "sent"),
            (made["everything"]["id"], "margin_call", "sent"),
            (made["cures"]["id"], "cured", "sent"),
            (made["everything"]["id"], "cured", "sent"),
        ]
    )
    assert calls.requests[0].json()["id"] != everything.requests[0].json()["id"]

    # and each endpoint's delivery log, as its client reads it, holds its attempts
    log = api.get(f"/api/v1/webhooks/{made['everything']['id']}/deliveries/").json()["results"]
    assert [(d["event_type"], d["status_code"], d["succeeded"], d["error"]) for d in log] == [
        ("cured", 204, True, ""),
        ("margin_call", 204, True, ""),
    ]
    assert {d["event_id"] for d in log} == {r.json()["id"] for r in everything.requests}
    assert all(d["duration_ms"] >= 0 for d in log)
    # the secret was shown once: never in a read
    shown = api.get(f"/api/v1/webhooks/{made['calls']['id']}/").json()
    assert "secret" not in shown
    assert (shown["state"], shown["consecutive_failures"], shown["event_types"]) == ("active", 0, ["margin_call"])


def test_a_disabled_endpoint_gets_nothing_and_its_pending_deliveries_are_dropped(
    servers: Callable[[], Endpoint],
) -> None:
    # given an endpoint, and a margin call told to it that is still pending (not yet sent)
    account = _called("OFF", _btc())
    api = _api(account.client_id)
    server = servers()
    made = _create(api, server.url, ["*"])
    cases_apply_risk(sweep_id=sweep_run().pk)
    pending = Notification.objects.get(channel="webhook")
    assert pending.status == NotificationStatus.PENDING

    # when its client disables it (twice: the second changes nothing)
    events = AuditEvent.objects.count()
    first = api.post(f"/api/v1/webhooks/{made['id']}/disable/", {})
    second = api.post(f"/api/v1/webhooks/{made['id']}/disable/", {})
    assert AuditEvent.objects.count() == events + 1
    notifications_drain()
    _cure("OFF")

    # then nothing was posted, the pending delivery failed saying why, and the cure was not enqueued for it
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json()["state"], first.json()["disabled_reason"]) == ("disabled", "client")
    assert server.requests == []
    pending.refresh_from_db()
    assert (pending.status, pending.last_error) == ("failed", "not delivered: the endpoint was disabled by the client")
    assert not Notification.objects.filter(channel="webhook", kind="cured").exists()
    (event,) = AuditEvent.objects.filter(action="webhook_endpoint.disable")
    assert (event.system_actor, event.object_id, event.reason, event.payload["pending_dropped"]) == (
        "client:C-OFF",
        made["id"],
        "disabled by the client",
        1,
    )


# ----------------------------------------------------------------------------------------- rotation


def test_a_rotation_changes_the_signing_key_and_its_overlap_signs_with_both(servers: Callable[[], Endpoint]) -> None:
    # given an endpoint and its first secret
    account = _called("ROT", _btc())
    api = _api(account.client_id)
    server = servers()
    made = _create(api, server.url, ["*"])
    first = made["secret"]

    # when the secret is rotated without an overlap, and the account falls into a margin call
    rotated = api.post(f"/api/v1/webhooks/{made['id']}/rotate/", {"previous_valid_hours": 0})
    second = rotated.json()["secret"]
    _margin_call()

    # then the body is signed with the new secret alone
    assert rotated.status_code == 200
    assert second not in (first, "")
    assert second.startswith("whsec_")
    assert rotated.json()["previous_secret_valid_until"] is None
    (call,) = server.requests
    assert _signatures(call) == [_signatures(call)[0]]
    assert _signed_with(call, second)
    assert not _signed_with(call, first)

    # when it is rotated again with a day's overlap, and the call is met
    overlapping = api.post(f"/api/v1/webhooks/{made['id']}/rotate/", {})
    third = overlapping.json()["secret"]
    _cure("ROT")

    # then the cure carries two signatures: the new secret's first, the previous one's next
    assert overlapping.json()["previous_secret_valid_until"] is not None
    cure = server.requests[-1]
    new, old = _signatures(cure)
    assert _signed_with(Received(cure.path, {**cure.headers, "X-Workout-Signature": new}, cure.body), third)
    assert _signed_with(Received(cure.path, {**cure.headers, "X-Workout-Signature": old}, cure.body), second)
    assert not _signed_with(cure, first)
    # each rotation is on the record, without a secret
    rotations = AuditEvent.objects.filter(action="webhook_endpoint.rotate", object_id=made["id"]).order_by("sequence")
    assert [e.payload["previous_valid_until"] is None for e in rotations] == [True, False]
    assert all(secret not in str(e.payload) for e in rotations for secret in (first, second, third))


def test_an_overlap_that_has_run_out_signs_with_the_new_secret_alone(servers: Callable[[], Endpoint]) -> None:
    account = _called("LAPSED", _btc())
    api = _api(account.client_id)
    server = servers()
    made = _create(api, server.url, ["*"])
    new = api.post(f"/api/v1/webhooks/{made['id']}/rotate/", {"previous_valid_hours": 1}).json()["secret"]
    WebhookEndpoint.objects.filter(pk=made["id"]).update(previous_secret_expires_at=timezone.now())

    _margin_call()

    (call,) = server.requests
    assert len(_signatures(call)) == 1
    assert _signed_with(call, new)
    assert not _signed_with(call, made["secret"])


# ----------------------------------------------------------------------------------------- failures


def test_an_endpoint_is_disabled_after_its_failures_and_its_client_is_told(
    servers: Callable[[], Endpoint], settings: Any, mailoutbox: list[EmailMessage]
) -> None:
    # given an endpoint that answers 500, disabled after 3 failures in a row, retried up to 8 times
    settings.WORKOUT_WEBHOOK_DISABLE_AFTER_FAILURES = 3
    settings.WORKOUT_NOTIFICATION_MAX_ATTEMPTS = 8
    account = _called("FAILS", _btc())
    Client.objects.filter(pk=account.client_id).update(email="ops@client.example")
    api = _api(account.client_id)
    server = servers()
    server.status = 500
    made = _create(api, server.url, ["*"])

    # when the margin call is tried three times (the retries come due)
    _margin_call()
    assert api.get(f"/api/v1/webhooks/{made['id']}/").json()["consecutive_failures"] == 1
    notifications_drain(now=timezone.now() + timedelta(hours=1))
    assert WebhookEndpoint.objects.get(pk=made["id"]).state == "active"
    notifications_drain(now=timezone.now() + timedelta(hours=3))

    # then the endpoint is disabled, after exactly three attempts, each in its log
    shown = api.get(f"/api/v1/webhooks/{made['id']}/").json()
    assert (shown["state"], shown["disabled_reason"], shown["consecutive_failures"]) == ("disabled", "failures", 3)
    assert len(server.requests) == 3
    log = WebhookDelivery.objects.filter(endpoint_id=made["id"]).order_by("attempted_at")
    assert [(d.status_code, d.succeeded) for d in log] == [(500, False)] * 3
    assert all(d.error.startswith("HTTP 500") for d in log)
    # its notification failed, saying why; no further attempt is made
    webhook = Notification.objects.get(channel="webhook")
    assert (webhook.status, webhook.last_error) == (
        "failed",
        "not delivered: the endpoint was disabled after consecutive failed deliveries",
    )
    notifications_drain(now=timezone.now() + timedelta(days=1))
    assert len(server.requests) == 3
    # on the record, by the system
    (event,) = AuditEvent.objects.filter(action="webhook_endpoint.disable", object_id=made["id"])
    assert (event.system_actor, event.from_state, event.to_state) == ("webhooks", "active", "disabled")
    assert event.payload["consecutive_failures"] == 3
    assert event.payload["last_error"].startswith("HTTP 500")
    # and the client was told by email, once, on the case whose delivery failed
    notice = Notification.objects.get(kind=NotificationKind.WEBHOOK_DISABLED)
    assert (notice.channel, notice.recipient, notice.status, notice.case_id) == (
        "email",
        "ops@client.example",
        "sent",
        webhook.case_id,
    )
    Draft202012Validator(json_schema(event_type("webhook_disabled").data_schema())).validate(notice.payload)
    (mail,) = [m for m in mailoutbox if "webhook" in m.subject]
    assert mail.subject == f"Your webhook endpoint {made['id']} has been disabled"
    assert "failed 3 deliveries in a row" in mail.body
    assert f"/api/v1/webhooks/{made['id']}/enable/" in mail.body

    # when the client's server is fixed and the client enables the endpoint
    server.status = 204
    enabled = api.post(f"/api/v1/webhooks/{made['id']}/enable/", {})
    _cure("FAILS")

    # then it is active again, from no failures, and receives the next event
    assert (enabled.status_code, enabled.json()["state"], enabled.json()["consecutive_failures"]) == (200, "active", 0)
    assert [r.json()["type"] for r in server.requests] == ["margin_call"] * 3 + ["cured"]
    assert AuditEvent.objects.filter(action="webhook_endpoint.enable", object_id=made["id"]).count() == 1


def test_a_success_resets_the_count_of_failures(servers: Callable[[], Endpoint], settings: Any) -> None:
    settings.WORKOUT_WEBHOOK_DISABLE_AFTER_FAILURES = 2
    account = _called("FLAKY", _btc())
    api = _api(account.client_id)
    server = servers()
    server.status = 503
    made = _create(api, server.url, ["*"])

    _margin_call()  # one failure
    server.status = 200
    notifications_drain(now=timezone.now() + timedelta(hours=1))  # delivered
    server.status = 503
    _cure("FLAKY")  # one failure again: not two in a row

    endpoint = WebhookEndpoint.objects.get(pk=made["id"])
    assert (endpoint.state, endpoint.consecutive_failures) == ("active", 1)
    log = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("attempted_at")
    assert [d.status_code for d in log] == [503, 200, 503]


# ----------------------------------------------------------------------------------------- redelivery


def test_an_officer_has_a_notification_delivered_again_with_the_same_id(servers: Callable[[], Endpoint]) -> None:
    # given a margin call delivered to the client's endpoint
    account = _called("AGAIN", _btc())
    api = _api(account.client_id)
    server = servers()
    made = _create(api, server.url, ["*"])
    _margin_call()
    notification = Notification.objects.get(channel="webhook")
    assert notification.status == "sent"
    officer = staff_user("olga", CREDIT_OFFICER)
    web = signed_in(officer)  # once: an authenticator's code is good for one sign-in

    # when an officer has it delivered again from the case's webhook page
    page = web.get(f"/cases/{notification.case_id}/webhooks/")
    response = web.post(f"/notifications/{notification.pk}/redeliver/")
    notifications_drain()

    # then the endpoint got it twice, with the same id and data, each signed
    assert page.status_code == 200
    assert f"/notifications/{notification.pk}/redeliver/" in page.content.decode()
    assert response.status_code == 302
    assert response["Location"] == f"/cases/{notification.case_id}/webhooks/"
    first, second = server.requests
    assert first.json()["id"] == second.json()["id"] == notification.pk
    assert first.json()["data"] == second.json()["data"]
    assert second.headers["X-Workout-Notification-Id"] == str(notification.pk)
    assert _signed_with(second, made["secret"])
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 1)
    assert WebhookDelivery.objects.filter(notification=notification, succeeded=True).count() == 2
    # on the record, by the officer, on the case's account
    (event,) = AuditEvent.objects.filter(action="notification.redeliver")
    assert (event.actor_id, event.object_id, event.account_id, event.from_state, event.to_state) == (
        officer.pk,
        notification.pk,
        account.pk,
        "sent",
        "pending",
    )
    # and the page shows both attempts
    shown = web.get(f"/cases/{notification.case_id}/webhooks/").content.decode()
    assert shown.count('data-succeeded="true"') == 2


def test_a_redelivery_is_refused_while_pending_or_to_a_disabled_endpoint_and_by_compliance(
    servers: Callable[[], Endpoint],
) -> None:
    account = _called("NOPE", _btc())
    api = _api(account.client_id)
    made = _create(api, servers().url, ["*"])
    cases_apply_risk(sweep_id=sweep_run().pk)  # not sent yet: pending
    notification = Notification.objects.get(channel="webhook")
    officer = signed_in(staff_user("olga", CREDIT_OFFICER))
    events = AuditEvent.objects.count()

    pending = officer.post(f"/notifications/{notification.pk}/redeliver/", follow=True)
    assert "is still being delivered" in pending.content.decode()
    api.post(f"/api/v1/webhooks/{made['id']}/disable/", {})  # fails the pending row
    events = AuditEvent.objects.count()
    disabled = officer.post(f"/notifications/{notification.pk}/redeliver/", follow=True)
    assert "its webhook endpoint is disabled" in disabled.content.decode()
    forbidden = signed_in(staff_user("cora", COMPLIANCE)).post(f"/notifications/{notification.pk}/redeliver/")
    assert forbidden.status_code == 403
    assert AuditEvent.objects.count() == events
    assert Notification.objects.get(pk=notification.pk).status == "failed"


# ----------------------------------------------------------------------------------------- ownership, input


def test_another_clients_endpoint_is_not_found_and_left_alone(servers: Callable[[], Endpoint]) -> None:
    # given two clients, B with an endpoint
    a = _called("OWN-A", _btc())
    b = _called("OWN-B", Price.objects.get().instrument)
    api_a, api_b = _api(a.client_id), _api(b.client_id)
    theirs = _create(api_b, servers().url, ["*"])
    events = AuditEvent.objects.count()
    stored = WebhookEndpoint.objects.get(pk=theirs["id"])

    # when A reads or acts on it
    answers = [
        api_a.get(f"/api/v1/webhooks/{theirs['id']}/"),
        api_a.get(f"/api/v1/webhooks/{theirs['id']}/deliveries/"),
        api_a.post(f"/api/v1/webhooks/{theirs['id']}/rotate/", {}),
        api_a.post(f"/api/v1/webhooks/{theirs['id']}/disable/", {}),
        api_a.post(f"/api/v1/webhooks/{theirs['id']}/enable/", {}),
    ]

    # then it does not exist for A, and nothing changed
    assert [(r.status_code, r.json()["error"]["code"]) for r in answers] == [(404, "not_found")] * 5
    assert api_a.get("/api/v1/webhooks/").json()["results"] == []
    after = WebhookEndpoint.objects.get(pk=theirs["id"])
    assert (after.state, after.secret, after.updated_at) == ("active", stored.secret, stored.updated_at)
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"url": "not a url", "event_types": ["margin_call"]}, "url", "not an http(s) URL"),
        ({"url": "ftp://hooks.example.com/x", "event_types": ["margin_call"]}, "url", "not an http(s) URL"),
        ({"url": "http://10.1.2.3/hook", "event_types": ["margin_call"]}, "url", "non-public address"),
        ({"url": "http://localhost:8000/hook", "event_types": ["*"]}, "url", "this machine"),
        ({"url": "https://hooks.example.com/x", "event_types": ["margin_calls"]}, "event_types[0]", "valid choice"),
        ({"url": "https://hooks.example.com/x", "event_types": ["cured", "sla_breach"]}, "event_types[1]", "choice"),
        ({"url": "https://hooks.example.com/x", "event_types": []}, "event_types", "empty"),
        ({"url": "https://hooks.example.com/x"}, "event_types", "required"),
        ({"url": "https://hooks.example.com/x", "event_types": ["*"], "secret": "mine"}, "secret", "unknown field"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_makes_nothing(
    body: dict[str, Any], field: str, says: str, settings: Any
) -> None:
    settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    api = _api(_called("BAD", _btc()).client_id)
    events = AuditEvent.objects.count()

    response = api.post("/api/v1/webhooks/", body)

    assert response.status_code == 400, response.json()
    assert response.json()["error"]["field"] == field
    assert says in response.json()["error"]["message"]
    assert not WebhookEndpoint.objects.exists()
    assert AuditEvent.objects.count() == events


def test_a_rotation_with_a_bad_overlap_is_refused(servers: Callable[[], Endpoint]) -> None:
    account = _called("OVER", _btc())
    api = _api(account.client_id)
    made = _create(api, servers().url, ["*"])
    stored = WebhookEndpoint.objects.get(pk=made["id"]).secret

    for hours in (-1, 73, "24", 1.5):
        response = api.post(f"/api/v1/webhooks/{made['id']}/rotate/", {"previous_valid_hours": hours})
        assert (response.status_code, response.json()["error"]["field"]) == (400, "previous_valid_hours"), hours
    assert WebhookEndpoint.objects.get(pk=made["id"]).secret == stored


def test_a_create_is_done_once_per_key_and_its_secret_is_not_kept_in_clear(servers: Callable[[], Endpoint]) -> None:
    # given a create sent twice with one Idempotency-Key
    account = _called("ONCE", _btc())
    api = _api(account.client_id)
    body = {"url": servers().url, "event_types": ["offer"], "description": "treasury"}
    first = api.post("/api/v1/webhooks/", body, key="create-1")
    again = api.post("/api/v1/webhooks/", body, key="create-1")

    # then one endpoint, the same answer (its secret included) replayed
    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert WebhookEndpoint.objects.count() == 1
    assert AuditEvent.objects.filter(action="webhook_endpoint.create").count() == 1
    # and the record of the request holds the answer encrypted: the secret is nowhere in clear
    (record,) = IdempotencyRecord.objects.filter(key="create-1")
    assert first.json()["secret"] not in record.response_body
    assert record.response_body.startswith("gAAAAA")


def test_the_number_of_active_endpoints_is_limited(servers: Callable[[], Endpoint], settings: Any) -> None:
    settings.WORKOUT_WEBHOOK_MAX_ENDPOINTS = 2
    account = _called("LIMIT", _btc())
    api = _api(account.client_id)
    first = _create(api, servers().url, ["*"])
    _create(api, servers().url, ["*"])

    third = api.post("/api/v1/webhooks/", {"url": servers().url, "event_types": ["*"]})
    api.post(f"/api/v1/webhooks/{first['id']}/disable/", {})
    fourth = api.post("/api/v1/webhooks/", {"url": servers().url, "event_types": ["*"]})

    assert (third.status_code, third.json()["error"]["code"]) == (409, "webhook_endpoints_limit")
    assert fourth.status_code == 201
    refused = api.post(f"/api/v1/webhooks/{first['id']}/enable/", {})
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "webhook_endpoints_limit")


def test_the_sweeps_enqueue_for_many_endpoints_takes_a_fixed_number_of_queries(servers: Callable[[], Endpoint]) -> None:
    """Endpoints are read once for all the clients of a sweep's moves, whatever their number."""
    btc = _btc()
    url = servers().url

    def calls(prefix: str, count: int) -> int:
        for i in range(count):
            account = _called(f"{prefix}{i:02}", btc)
            for types in (["*"], ["margin_call"], ["cured"]):
                now = timezone.now()
                WebhookEndpoint.objects.create(
                    client_id=account.client_id, url=url, event_types=types, secret="s", created_at=now, updated_at=now
                )
        sweep = sweep_run()
        with CaptureQueriesContext(connection) as queries:
            cases_apply_risk(sweep_id=sweep.pk)
        return len(queries)

    few = calls("FEW", 2)
    assert Notification.objects.filter(channel="webhook").count() == 4  # two of each client's three endpoints
    Notification.objects.all().delete()
    Case.objects.all().delete()
    many = calls("MANY", 12)
    assert Notification.objects.filter(channel="webhook").count() == 28  # the first two's again, and twelve more
    assert many == few


def test_the_lists_of_endpoints_and_deliveries_take_a_fixed_number_of_queries(servers: Callable[[], Endpoint]) -> None:
    account = _called("READS", _btc())
    api = _api(account.client_id)
    made = _create(api, servers().url, ["*"])
    cases_apply_risk(sweep_id=sweep_run().pk)
    notification = Notification.objects.get(channel="webhook")

    def counted(path: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api.get(path).status_code == 200
        return len(queries)

    def attempts(count: int) -> None:
        WebhookDelivery.objects.bulk_create(
            WebhookDelivery(
                endpoint_id=made["id"],
                notification=notification,
                attempted_at=timezone.now(),
                duration_ms=5,
                status_code=500,
                succeeded=False,
                error="HTTP 500",
            )
            for _ in range(count)
        )

    attempts(1)
    one = (counted("/api/v1/webhooks/"), counted(f"/api/v1/webhooks/{made['id']}/deliveries/"))
    attempts(30)
    _create(api, servers().url, ["offer"])
    many = (counted("/api/v1/webhooks/"), counted(f"/api/v1/webhooks/{made['id']}/deliveries/"))

    assert many == one


# ----------------------------------------------------------------------------------------- a real worker


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_redelivery_is_sent_by_a_real_worker(servers: Callable[[], Endpoint], settings: Any) -> None:
    # given a client's endpoint and a margin call to come, with a worker on Redis (allowed, like this process, to
    # call this machine)
    settings.WORKOUT_AFTER_SWEEP_TASKS = []
    account = _called("WORKER", _btc())
    server = servers()
    issued = webhook_endpoint_create(client_id=account.client_id, url=server.url, event_types=["margin_call"])
    sweep = sweep_run()
    officer = User.objects.create_user("olga")

    with celery_worker(env={"WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}):
        # when the case moves (the worker sends the call on commit), then an officer has it delivered again
        cases_apply_risk(sweep_id=sweep.pk)
        wait_until(lambda: WebhookDelivery.objects.count() == 1, "the worker sends the margin call")
        notification = Notification.objects.get(channel="webhook")
        notification_redeliver(notification_id=notification.pk, actor=officer)
        wait_until(lambda: WebhookDelivery.objects.count() == 2, "the worker sends it again")

    # then the endpoint got it twice, the same id, signed with its secret, and the row is sent
    first, second = server.requests
    assert first.json()["id"] == second.json()["id"] == notification.pk
    assert all(_signed_with(request, issued.secret) for request in server.requests)
    assert Notification.objects.get(pk=notification.pk).status == "sent"
