"""Webhook endpoints: a client's own (created, rotated, disabled and enabled through the API: restructuring/
webhooks_api.py), their delivery log and failure count (each attempt the sender makes, recorded here), their
disabling after repeated failures, and a notification delivered again by an officer. The sending itself is
restructuring/services/notifications.py; the event types are restructuring/events.py; docs/events.md is the
client's manual.

Secrets. The server draws each secret (`whsec_` and 32 random bytes, base64url) and returns it once, when the
endpoint is made or its secret rotated; it is stored encrypted (core/fields.py) and never shown again. A rotation
may keep the previous secret signing for an overlap (`previous_valid_hours`, at most `MAX_OVERLAP_HOURS`): during
it every body carries both signatures, the new one first, so the receiver changes its secret when it likes.

Disabling. A client disables an endpoint (and may enable it again); the sender disables one after
WORKOUT_WEBHOOK_DISABLE_AFTER_FAILURES failed attempts in a row (any success resets the count; a failure that is
ours, a secret no key decrypts, does not count). Either way, in one transaction: the state, the endpoint's pending
notifications failed (an endpoint that is disabled receives nothing, and nothing piles up for it), the audit event;
and after a failure-disabling the client's email notice (`webhook_disabled`) on the case whose delivery failed last.

Every change is one transaction that locks the endpoint first, writes its audit event, and is idempotent where a
repeat could happen (disabling a disabled endpoint, enabling an active one, changes nothing and records nothing).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import (
    ALL_EVENTS,
    Client,
    WebhookDisabledReason,
    WebhookEndpoint,
    WebhookEndpointState,
)
from core.addresses import webhook_url_problem
from core.audit import audit_record
from core.dispatch import dispatch_on_commit
from core.errors import ConflictError, NotFoundError, ValidationError
from restructuring.audit_events import (
    NOTIFICATION_REDELIVER,
    WEBHOOK_ENDPOINT_CREATE,
    WEBHOOK_ENDPOINT_DISABLE,
    WEBHOOK_ENDPOINT_ENABLE,
    WEBHOOK_ENDPOINT_ROTATE,
)
from restructuring.events import webhook_event_names
from restructuring.models import (
    Notification,
    NotificationChannel,
    NotificationStatus,
    WebhookDelivery,
)

SECRET_START = "whsec_"  # noqa: S105 (the public start of every endpoint secret, not a secret)
MAX_OVERLAP_HOURS = 72
DEFAULT_OVERLAP_HOURS = 24
SYSTEM_ACTOR = "webhooks"
_URL_MAX_LENGTH = 2000
_ERROR_MAX_LENGTH = 2000


class WebhookEndpointLimitError(ConflictError):
    code = "webhook_endpoints_limit"


class RedeliveryError(ConflictError):
    code = "redelivery_conflict"


@dataclass(frozen=True)
class IssuedEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # the clear secret: returned this once, never stored in clear nor shown again


def _secret() -> str:
    return SECRET_START + secrets.token_urlsafe(32)


def _client_actor(client: Client) -> str:
    return f"client:{client.code}"[:64]


# ----------------------------------------------------------------------------------------------- checks


def webhook_url_check(url: str) -> str:
    """The URL as given, or Invalid (field "url"): http(s), at most 2000 characters, and no address inside the
    house (core/addresses.py; what a name resolves to is checked at every connection)."""
    if len(url) > _URL_MAX_LENGTH:
        raise ValidationError(f"the URL has {len(url)} characters, more than {_URL_MAX_LENGTH}", field="url")
    try:
        URLValidator(schemes=["https", "http"])(url)
    except DjangoValidationError:
        raise ValidationError(f"not an http(s) URL: {url[:200]!r}", field="url") from None
    problem = webhook_url_problem(url, allow_private=settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS)
    if problem:
        raise ValidationError(problem, field="url")
    return url


def event_types_check(event_types: list[str]) -> list[str]:
    """The subscribed types, in the order given without repeats; ["*"] when "*" is among them. Invalid (naming
    the item) for a type the catalogue does not deliver to webhooks."""
    if not event_types:
        raise ValidationError(
            'subscribe to at least one event type (GET /api/v1/events/), or "*" for all', field="event_types"
        )
    known = webhook_event_names()
    for index, name in enumerate(event_types):
        if name != ALL_EVENTS and name not in known:
            raise ValidationError(
                f'{name!r} is not an event type webhooks carry: one of {", ".join(known)}, or "*" for all',
                field=f"event_types[{index}]",
            )
    if ALL_EVENTS in event_types:
        return [ALL_EVENTS]
    return list(dict.fromkeys(event_types))


def _own_locked(endpoint_id: int, client_id: int) -> WebhookEndpoint:
    endpoint = (
        WebhookEndpoint.objects.select_for_update(of=("self",))
        .select_related("client")
        .filter(pk=endpoint_id, client_id=client_id)
        .first()
    )
    if endpoint is None:
        raise NotFoundError(f"webhook endpoint {endpoint_id} does not exist", field="id")
    return endpoint


def _limit_check(client_id: int) -> None:
    limit = settings.WORKOUT_WEBHOOK_MAX_ENDPOINTS
    active = WebhookEndpoint.objects.filter(client_id=client_id, state=WebhookEndpointState.ACTIVE).count()
    if active >= limit:
        raise WebhookEndpointLimitError(
            f"the client has {active} active webhook endpoints, the most it may have: disable one first"
        )


def _described(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {"client": endpoint.client.code, "url": endpoint.url, "event_types": list(endpoint.event_types)}


# ----------------------------------------------------------------------------------------------- a client's


def webhook_endpoint_create(
    *, client_id: int, url: str, event_types: list[str], description: str = ""
) -> IssuedEndpoint:
    """A new active endpoint for the client, with a new secret (returned once)."""
    url = webhook_url_check(url)
    event_types = event_types_check(event_types)
    with transaction.atomic():
        # The client locked: two creations at once cannot both pass the limit.
        client = Client.objects.select_for_update().filter(pk=client_id).first()
        if client is None:
            raise NotFoundError(f"client {client_id} does not exist", field="client")
        _limit_check(client_id)
        secret = _secret()
        now = timezone.now()
        endpoint = WebhookEndpoint.objects.create(
            client=client,
            url=url,
            description=description[:200],
            event_types=event_types,
            secret=secret,
            created_at=now,
            updated_at=now,
        )
        audit_record(
            WEBHOOK_ENDPOINT_CREATE.entry(
                endpoint,
                system_actor=_client_actor(client),
                payload={**_described(endpoint), "description": endpoint.description},
            )
        )
    return IssuedEndpoint(endpoint=endpoint, secret=secret)


def webhook_endpoint_rotate(
    *, endpoint_id: int, client_id: int, previous_valid_hours: Decimal | int = DEFAULT_OVERLAP_HOURS
) -> IssuedEndpoint:
    """A new secret for the endpoint (returned once). The previous one keeps signing, next to it, for
    `previous_valid_hours` (0: not at all); a secret older than that is dropped."""
    hours = Decimal(previous_valid_hours)
    if not 0 <= hours <= MAX_OVERLAP_HOURS:
        raise ValidationError(
            f"previous_valid_hours {hours}: from 0 to {MAX_OVERLAP_HOURS}", field="previous_valid_hours"
        )
    with transaction.atomic():
        endpoint = _own_locked(endpoint_id, client_id)
        secret = _secret()
        now = timezone.now()
        if hours > 0:
            endpoint.previous_secret = endpoint.secret
            endpoint.previous_secret_expires_at = now + timedelta(seconds=float(hours * 3600))
        else:
            endpoint.previous_secret, endpoint.previous_secret_expires_at = "", None
        endpoint.secret = secret
        endpoint.secret_rotated_at = endpoint.updated_at = now
        endpoint.save(
            update_fields=["secret", "previous_secret", "previous_secret_expires_at", "secret_rotated_at", "updated_at"]
        )
        audit_record(
            WEBHOOK_ENDPOINT_ROTATE.entry(
                endpoint,
                system_actor=_client_actor(endpoint.client),
                payload={**_described(endpoint), "previous_valid_until": endpoint.previous_secret_expires_at},
            )
        )
    return IssuedEndpoint(endpoint=endpoint, secret=secret)


def webhook_endpoint_disable(*, endpoint_id: int, client_id: int) -> WebhookEndpoint:
    """The client stops the endpoint's deliveries (module docstring). Disabling a disabled endpoint changes
    nothing."""
    with transaction.atomic():
        endpoint = _own_locked(endpoint_id, client_id)
        if endpoint.is_active:
            _disable(endpoint, WebhookDisabledReason.CLIENT, system_actor=_client_actor(endpoint.client))
    return endpoint


def webhook_endpoint_enable(*, endpoint_id: int, client_id: int) -> WebhookEndpoint:
    """The client starts a disabled endpoint's deliveries again, its failure count at 0 (its URL checked again:
    the rules may have changed since). Enabling an active endpoint changes nothing."""
    with transaction.atomic():
        endpoint = _own_locked(endpoint_id, client_id)
        if endpoint.is_active:
            return endpoint
        webhook_url_check(endpoint.url)
        Client.objects.select_for_update().filter(pk=client_id).first()  # the limit, as at creation
        _limit_check(client_id)
        before = endpoint.disabled_reason
        endpoint.state = WebhookEndpointState.ACTIVE
        endpoint.disabled_reason, endpoint.disabled_at = "", None
        endpoint.consecutive_failures = 0
        endpoint.updated_at = timezone.now()
        endpoint.save(update_fields=["state", "disabled_reason", "disabled_at", "consecutive_failures", "updated_at"])
        audit_record(
            WEBHOOK_ENDPOINT_ENABLE.entry(
                endpoint,
                system_actor=_client_actor(endpoint.client),
                from_state=WebhookEndpointState.DISABLED,
                to_state=WebhookEndpointState.ACTIVE,
                payload={**_described(endpoint), "was_disabled": before},
            )
        )
    return endpoint


def _disable(
    endpoint: WebhookEndpoint,
    reason: WebhookDisabledReason,
    *,
    system_actor: str,
    details: dict[str, Any] | None = None,
) -> int:
    """Disable a locked, active endpoint: its pending notifications failed, the audit event. Returns how many
    notifications were dropped."""
    now = timezone.now()
    endpoint.state = WebhookEndpointState.DISABLED
    endpoint.disabled_reason, endpoint.disabled_at = reason, now
    endpoint.updated_at = now
    endpoint.save(update_fields=["state", "disabled_reason", "disabled_at", "updated_at"])
    label = WebhookDisabledReason(reason).label.lower()
    dropped = Notification.objects.filter(webhook_endpoint=endpoint, status=NotificationStatus.PENDING).update(
        status=NotificationStatus.FAILED, last_error=f"not delivered: the endpoint was {label}"
    )
    audit_record(
        WEBHOOK_ENDPOINT_DISABLE.entry(
            endpoint,
            system_actor=system_actor,
            from_state=WebhookEndpointState.ACTIVE,
            to_state=WebhookEndpointState.DISABLED,
            reason=label,
            payload={**_described(endpoint), **(details or {}), "pending_dropped": dropped},
        )
    )
    return dropped


# ----------------------------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class AttemptLogged:
    delivery: WebhookDelivery
    disabled: WebhookEndpoint | None  # the endpoint, when this failure disabled it: its client is to be told


def webhook_attempt_record(
    *,
    notification: Notification,
    attempted_at: datetime,
    duration_ms: int,
    status_code: int | None,
    error: str,
    counts: bool,
) -> AttemptLogged:
    """Log one attempt to post `notification` to its endpoint, and keep the endpoint's count of failures in a
    row: reset by a success, raised by a failure that `counts` (the endpoint's, not ours), and at
    WORKOUT_WEBHOOK_DISABLE_AFTER_FAILURES the endpoint is disabled (the outbox tells the client:
    notifications.webhook_attempt_log)."""
    endpoint_id = notification.webhook_endpoint_id
    assert endpoint_id is not None
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            endpoint_id=endpoint_id,
            notification=notification,
            attempted_at=attempted_at,
            duration_ms=max(0, duration_ms),
            status_code=status_code if status_code else None,
            succeeded=not error,
            error=error[:_ERROR_MAX_LENGTH],
        )
        endpoints = WebhookEndpoint.objects.filter(pk=endpoint_id, state=WebhookEndpointState.ACTIVE)
        disabled = None
        if not error:
            endpoints.filter(consecutive_failures__gt=0).update(consecutive_failures=0)
        elif counts and endpoints.update(consecutive_failures=F("consecutive_failures") + 1):
            disabled = _disable_after_failures(endpoint_id, error)
    return AttemptLogged(delivery, disabled)


def _disable_after_failures(endpoint_id: int, error: str) -> WebhookEndpoint | None:
    endpoint = WebhookEndpoint.objects.select_for_update(of=("self",)).select_related("client").get(pk=endpoint_id)
    threshold = settings.WORKOUT_WEBHOOK_DISABLE_AFTER_FAILURES
    if not endpoint.is_active or endpoint.consecutive_failures < threshold:
        return None
    _disable(
        endpoint,
        WebhookDisabledReason.FAILURES,
        system_actor=SYSTEM_ACTOR,
        details={"consecutive_failures": endpoint.consecutive_failures, "last_error": error[:500]},
    )
    return endpoint


def _send_on_commit(notification_ids: list[int]) -> None:
    from restructuring.tasks import notifications_send_task  # here: the tasks module imports the services

    dispatch_on_commit(
        notifications_send_task,
        {"notification_ids": notification_ids},
        redrive="the notifications drain beat (notifications_drain_task, pending rows)",
    )


# ----------------------------------------------------------------------------------------------- staff's


def notification_redeliver(*, notification_id: int, actor: AbstractBaseUser) -> Notification:
    """Deliver a webhook notification again, to its endpoint, with the same id (a receiver deduplicates on it):
    the row is pending again, its attempts from 0, and the sender takes it as any other (retries, the log).
    Refused for a notification that is not a webhook's, is still pending, or whose endpoint is disabled."""
    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update(of=("self",))
            .select_related("case", "webhook_endpoint")
            .filter(pk=notification_id)
            .first()
        )
        if notification is None:
            raise NotFoundError(f"no notification #{notification_id}", field="notification")
        endpoint = notification.webhook_endpoint
        if notification.channel != NotificationChannel.WEBHOOK or endpoint is None:
            raise RedeliveryError(f"notification #{notification_id} is not a webhook's: only those are redelivered")
        if notification.status == NotificationStatus.PENDING:
            raise RedeliveryError(f"notification #{notification_id} is still being delivered")
        if not endpoint.is_active:
            raise RedeliveryError(
                f"notification #{notification_id}: its webhook endpoint is disabled; the client must enable it first"
            )
        before = notification.status
        now = timezone.now()
        Notification.objects.filter(pk=notification.pk).update(
            status=NotificationStatus.PENDING, attempts=0, next_attempt_at=now, sent_at=None, last_error=""
        )
        notification.refresh_from_db()
        audit_record(
            NOTIFICATION_REDELIVER.entry(
                notification,
                actor=actor,
                account_id=notification.case.account_id,
                from_state=before,
                to_state=NotificationStatus.PENDING,
                payload={
                    "case_id": notification.case_id,
                    "kind": notification.kind,
                    "endpoint_id": endpoint.pk,
                    "url": endpoint.url,
                },
            )
        )
        _send_on_commit([notification.pk])
    return notification
