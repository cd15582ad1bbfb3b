"""Celery queues by urgency (issue 14: one FIFO queue let 20,000 feasibility tasks hold a sweep for 76 s).

Tasks go to four queues, named from the prefix CELERY_QUEUE (default "workout"), most urgent first:

- `<prefix>.risk`: sweeps and their shards, the cases a sweep moves, margin-call and negotiation deadlines;
- `<prefix>.negotiation`: the rules' proposals and a counter-offer's follow-up;
- `<prefix>.feasibility`: feasibility reports (the bulk: one task per batch of margin calls);
- `<prefix>`: notifications and maintenance (the re-drive beats, volatility, purges), and any task not listed.

A worker started without -Q consumes all four. Redis serves a worker's queues in turn (kombu moves the queue that
just delivered to the back), so a sweep waits for the tasks its worker is already running, never for the queue
ahead of it. docker-compose.yml adds a worker for the urgent queues alone, so that feasibility batches never
occupy every process. The route is computed when a task is sent, from the app's default queue (the prefix): a
test that points this process at a prefix of its own (tests/celery_worker.py) routes every task there.

No Django and no Celery app here: config/settings.py imports this module.
"""

from __future__ import annotations

from typing import Any

URGENT_LANES = ("risk", "negotiation")
LANES = (*URGENT_LANES, "feasibility", "")  # "": the prefix itself, the default queue

TASK_LANES = {
    "accounts.tasks.sweep_run_task": "risk",
    "accounts.tasks.sweep_shard_run_task": "risk",
    "accounts.tasks.sweeps_redrive_task": "risk",
    "restructuring.tasks.cases_apply_risk_task": "risk",
    "restructuring.tasks.deadlines_run_task": "risk",
    "restructuring.tasks.negotiation_deadlines_task": "risk",
    "restructuring.tasks.sla_escalate_task": "risk",
    "restructuring.tasks.propose_from_rules": "negotiation",
    "restructuring.tasks.counter_followup_task": "negotiation",
    "restructuring.tasks.promises_track_task": "negotiation",  # a broken promise puts a case back before staff
    "restructuring.tasks.compute_feasibility": "feasibility",
    # notifications and maintenance: the default queue
    "restructuring.tasks.notifications_send_task": "",
    "restructuring.tasks.notifications_drain_task": "",
    "restructuring.tasks.feasibility_redrive_task": "",
    "accounts.tasks.instrument_volatility_refresh_task": "",
    "accounts.tasks.volatility_redrive_task": "",
    "core.tasks.idempotency_purge_task": "",
}


def queue_name(prefix: str, lane: str) -> str:
    return f"{prefix}.{lane}" if lane else prefix


def queue_names(prefix: str, lanes: tuple[str, ...] = LANES) -> list[str]:
    """The queues of these lanes under a prefix, most urgent first: a worker's -Q list."""
    return [queue_name(prefix, lane) for lane in lanes]


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> dict[str, str]:
    """Celery's router (CELERY_TASK_ROUTES): the task's lane under the app's current default queue."""
    from celery import current_app

    app = getattr(task, "app", None) or current_app
    return {"queue": queue_name(app.conf.task_default_queue, TASK_LANES.get(name, ""))}
