"""System checks of the notification settings (`manage.py check`, and every command that runs the checks first:
migrate, runserver)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from restructuring.services.notifications import CLAIM_BATCH


@register()
def notification_lease_outlasts_a_batch(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A sender claims a batch of notifications under a lease and sends them one after another, each within its
    timeout. A lease that a batch can outlast lets a second sender claim a row the first is still sending."""
    deadline = float(settings.WORKOUT_WEBHOOK_TIMEOUT_SECONDS)
    lease = float(settings.WORKOUT_NOTIFICATION_LEASE_SECONDS)
    if deadline <= 0:
        return [Error("WORKOUT_WEBHOOK_TIMEOUT_SECONDS must be more than 0.", id="restructuring.E001")]
    # SMTP's timeout is per socket operation, not for the whole message: counted as if it were a total. An SMS
    # provider's call has its own total deadline.
    per_send = max(deadline, float(settings.EMAIL_TIMEOUT or 0), float(settings.WORKOUT_SMS_TIMEOUT_SECONDS))
    if CLAIM_BATCH * per_send < lease:
        return []
    return [
        Error(
            f"WORKOUT_NOTIFICATION_LEASE_SECONDS ({lease:g} s) does not outlast a batch of {CLAIM_BATCH} sends of up "
            f"to {per_send:g} s each (WORKOUT_WEBHOOK_TIMEOUT_SECONDS {deadline:g} s, EMAIL_TIMEOUT "
            f"{settings.EMAIL_TIMEOUT} s, WORKOUT_SMS_TIMEOUT_SECONDS {settings.WORKOUT_SMS_TIMEOUT_SECONDS:g} s): a "
            "second sender could claim a notification still being sent.",
            hint=f"Keep both timeouts under {lease / CLAIM_BATCH:g} s, or lengthen the lease.",
            id="restructuring.E001",
        )
    ]
