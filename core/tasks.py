"""Celery tasks of what every app shares."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from core.models import IdempotencyRecord


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, retry_backoff_max=60, max_retries=8)
def idempotency_purge_task() -> int:
    """The beat, hourly: idempotency records older than WORKOUT_API_IDEMPOTENCY_DAYS go (a retry that late is a
    new request). Idempotent by nature."""
    cutoff = timezone.now() - timedelta(days=settings.WORKOUT_API_IDEMPOTENCY_DAYS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
