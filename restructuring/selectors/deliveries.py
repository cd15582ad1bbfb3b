"""A case's webhook notifications as the officers read them (the case's webhook page): each with its endpoint and
every attempt to deliver it (restructuring.models.WebhookDelivery), in three queries whatever their number."""

from __future__ import annotations

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404

from restructuring.models import Case, Notification, NotificationChannel, WebhookDelivery


def case_webhook_notifications(case_id: int) -> tuple[Case, list[Notification]]:
    """The case (or a 404) and its webhook notifications, newest first, each with `.deliveries` oldest first."""
    case = get_object_or_404(Case.objects.select_related("account__client"), pk=case_id)
    notifications = list(
        Notification.objects.filter(case_id=case_id, channel=NotificationChannel.WEBHOOK)
        .select_related("webhook_endpoint")
        .prefetch_related(Prefetch("deliveries", queryset=WebhookDelivery.objects.order_by("attempted_at", "pk")))
        .order_by("-created_at", "-pk")
    )
    return case, notifications
