"""Celery tasks of the book: thin wrappers that take ids and call the service."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from accounts.services import sweep as sweep_service
from accounts.services.volatility import instrument_volatility_refresh, volatility_due_instrument_ids


@shared_task(acks_late=True)
def sweep_run_task() -> int:
    """The beat's sweep: split into WORKOUT_SWEEP_SHARDS shard tasks (one is the whole book)."""
    return sweep_service.sweep_start(shards=settings.WORKOUT_SWEEP_SHARDS).pk


class _ShardTask(Task):
    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        # Retries exhausted (or an error that is not retried): the shard, and so the sweep, has failed.
        sweep_service.sweep_shard_fail(shard_id=kwargs["shard_id"], error=f"{type(exc).__name__}: {exc}")


@shared_task(
    base=_ShardTask,
    acks_late=True,
    autoretry_for=(OperationalError,),  # a database restart or a serialisation conflict: try again
    retry_backoff=1,
    retry_backoff_max=60,
    max_retries=8,
)
def sweep_shard_run_task(*, shard_id: int) -> int:
    return sweep_service.sweep_shard_run(shard_id=shard_id).pk


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, max_retries=5)
def instrument_volatility_refresh_task(*, instrument_ids: list[int]) -> int:
    """Idempotent: recomputes from the stored prices, so running twice stores the same figures."""
    return instrument_volatility_refresh(instrument_ids=instrument_ids).instruments


@shared_task(acks_late=True)
def sweeps_redrive_task() -> list[int]:
    """The beat's safety net for lost shard tasks (idempotent: shards run once)."""
    return sweep_service.sweeps_redrive()


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, max_retries=5)
def volatility_redrive_task() -> list[int]:
    """The beat's safety net for lost volatility refreshes: instruments priced since their volatility was
    computed are refreshed (idempotent: the same prices give the same figures). Returns their ids."""
    due = volatility_due_instrument_ids()
    if due:
        instrument_volatility_refresh(instrument_ids=due)
    return due
