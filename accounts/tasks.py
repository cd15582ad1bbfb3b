"""Celery tasks of the book: thin wrappers that take ids and call the service."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from accounts.services import sweep as sweep_service


@shared_task(acks_late=True)
def sweep_run_task() -> int:
    """The beat's sweep: split into WORKOUT_SWEEP_SHARDS shard tasks (one is the whole book)."""
    return sweep_service.sweep_start(shards=settings.WORKOUT_SWEEP_SHARDS).pk


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),  # a database restart or a serialisation conflict: try again
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
)
def sweep_shard_run_task(*, shard_id: int) -> int:
    return sweep_service.sweep_shard_run(shard_id=shard_id).pk
