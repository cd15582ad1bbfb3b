"""A case's webhook deliveries (each notification, its endpoint, every attempt) and the officer's redelivery of
one (restructuring/services/webhooks.py: the same notification, the same id, to its endpoint)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from core.access import staff_view
from core.web import service_run
from restructuring.models import Notification
from restructuring.selectors.deliveries import case_webhook_notifications
from restructuring.services.webhooks import notification_redeliver


@staff_view("restructuring.view_case")
@require_GET
def case_webhooks(request: HttpRequest, case_id: int) -> HttpResponse:
    case, notifications = case_webhook_notifications(case_id)
    return render(
        request,
        "restructuring/case_webhooks.html",
        {"case": case, "account": case.account, "client": case.account.client, "notifications": notifications},
    )


@staff_view("restructuring.redeliver_notification")
@require_POST
def notification_redeliver_view(request: HttpRequest, notification_id: int) -> HttpResponse:
    case_id = get_object_or_404(Notification.objects.only("case_id"), pk=notification_id).case_id
    actor: User = request.user  # type: ignore[assignment]  # staff_view let only a signed-in user through

    def act() -> str:
        notification_redeliver(notification_id=notification_id, actor=actor)
        return _("Notification %(id)s will be delivered again.") % {"id": notification_id}

    service_run(request, act)
    return redirect(reverse("case-webhooks", args=[case_id]))
