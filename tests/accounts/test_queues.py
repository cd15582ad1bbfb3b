"""RELIABILITY.md, "one queue for everything" (issue 14): tasks go to queues by urgency (config/queues.py), so a
sweep starts within its interval while 20,000 feasibility tasks wait, on a real worker that consumes every queue."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from accounts.models import Sweep
from accounts.tasks import sweep_run_task
from config.celery import app
from config.queues import LANES, TASK_LANES, URGENT_LANES, queue_name, queue_names
from restructuring.tasks import compute_feasibility
from tests.celery_worker import celery_worker
from tests.restructuring.helpers import accounts, btc, wait_until

WAITING = 20_000


def test_every_task_has_a_lane_and_the_lanes_are_in_order_of_urgency() -> None:
    # a new task must be placed on purpose: the default queue is the least urgent
    app.loader.import_default_modules()
    ours = sorted(name for name in app.tasks if name.split(".")[0] in {"accounts", "restructuring", "core", "rules"})
    assert ours == sorted(TASK_LANES)
    assert LANES == ("risk", "negotiation", "feasibility", "")
    assert URGENT_LANES == ("risk", "negotiation")
    assert queue_names("workout") == ["workout.risk", "workout.negotiation", "workout.feasibility", "workout"]

    def routed(name: str) -> str:
        return str(app.amqp.router.route({}, name)["queue"].name)

    prefix = settings.CELERY_TASK_DEFAULT_QUEUE
    assert routed("accounts.tasks.sweep_run_task") == f"{prefix}.risk"
    assert routed("restructuring.tasks.deadlines_run_task") == f"{prefix}.risk"
    assert routed("restructuring.tasks.negotiation_deadlines_task") == f"{prefix}.risk"
    assert routed("restructuring.tasks.counter_followup_task") == f"{prefix}.negotiation"
    assert routed("restructuring.tasks.compute_feasibility") == f"{prefix}.feasibility"
    assert routed("restructuring.tasks.notifications_send_task") == prefix
    assert routed("core.tasks.idempotency_purge_task") == prefix


def _publish_copies(count: int) -> str:
    """Queue `count` feasibility tasks where the app routes them: one message made by Celery (sent to a scratch
    queue no worker reads), then copies with fresh task ids pushed in bulk (publishing 20,000 one by one takes a
    quarter of a minute). Their cases do not exist: each run is a cheap no-op. Returns the queue's name."""
    queue = app.amqp.router.route({}, compute_feasibility.name)["queue"]
    scratch = f"{queue.name}-scratch"
    first = compute_feasibility.apply_async(kwargs={"case_ids": [0]}, queue=scratch, retry=False)
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        raw = client.rpop(scratch)
        assert isinstance(raw, bytes), raw
        message = json.loads(raw)
        client.delete(scratch, f"_kombu.binding.{scratch}", f"_kombu.binding_permanent.{scratch}")
        message["properties"]["delivery_info"] = {"exchange": queue.exchange.name, "routing_key": queue.routing_key}
        text = json.dumps(message)
        pipe = client.pipeline(transaction=False)
        for _ in range(count):
            copy = text.replace(str(first.id), str(uuid.uuid4()))
            pipe.lpush(queue.name, copy.replace(message["properties"]["delivery_tag"], str(uuid.uuid4())))
            if len(pipe) >= 2000:
                pipe.execute()
        pipe.execute()
    finally:
        client.close()
    return str(queue.name)


@pytest.mark.postgres
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_sweep_starts_within_its_interval_while_20000_feasibility_tasks_wait() -> None:
    # given a small book and a worker consuming every queue, with 20,000 feasibility tasks queued before a sweep
    accounts(btc(), "healthy", 3)
    interval = timedelta(seconds=settings.CELERY_BEAT_SCHEDULE["sweep"]["schedule"])
    with celery_worker(concurrency=2) as prefix:
        started = time.monotonic()
        feasibility_queue = _publish_copies(WAITING)
        published_s = time.monotonic() - started

        # when the beat's sweep is sent
        sent_at = timezone.now()
        sweep_run_task.delay()

        # then it starts (its start recorded) within its interval, while the feasibility tasks still wait
        wait_until(Sweep.objects.exists, "the sweep to start", timeout_s=interval.total_seconds())
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        try:
            still_waiting = client.llen(feasibility_queue)
        finally:
            client.close()
        sweep = Sweep.objects.get()
        waited = sweep.started_at - sent_at
        print(
            f"published {WAITING} in {published_s:.2f} s; sweep started after {waited.total_seconds():.3f} s "
            f"with {still_waiting} feasibility tasks still waiting"
        )
        assert feasibility_queue == queue_name(prefix, "feasibility")
        assert waited < interval
        assert still_waiting >= WAITING * 0.9  # it did not wait for them
