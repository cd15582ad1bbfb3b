"""A real Celery worker in a subprocess, for the tests that are about tasks.

It runs `celery -A config worker` against the test database (the subprocess gets DATABASE_URL pointing at
the test database this pytest process created) and queues of its own, so that parallel test processes never
take each other's tasks: a fresh prefix (CELERY_QUEUE) whose every queue (config/queues.py: risk, negotiation,
feasibility and the default) the worker consumes, and to which this process routes its tasks meanwhile.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection

from config.celery import app
from config.queues import queue_names

ROOT = Path(__file__).resolve().parent.parent


def _test_database_url() -> str:
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


@contextmanager
def celery_worker(*, concurrency: int = 2, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start a worker on a fresh queue prefix; route this process's tasks there; yield the prefix (the default
    queue's name). `env`: more settings for the worker (it reads its settings from the environment, not from the
    test's overrides). Its queues are deleted afterwards, with whatever is left in them."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        **(env or {}),
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_QUEUE": queue,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            ",".join(queue_names(queue)),
            "-n",
            f"{queue}@localhost",
            "-c",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    previous_queue, previous_eager = app.conf.task_default_queue, app.conf.task_always_eager
    app.conf.task_default_queue, app.conf.task_always_eager = queue, False
    try:
        _wait_until_ready(queue, process)
        yield queue
    finally:
        app.conf.task_default_queue, app.conf.task_always_eager = previous_queue, previous_eager
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        queues_delete(settings.CELERY_BROKER_URL, queue)


def queues_delete(url: str, prefix: str) -> None:
    """Delete every queue of a prefix from the broker, with its kombu bindings."""
    client = redis.Redis.from_url(url)
    try:
        for name in queue_names(prefix):
            client.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")
    finally:
        client.close()


def _wait_until_ready(queue: str, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"the Celery worker exited ({process.returncode}):\n{output}")
        if app.control.ping(timeout=0.5, destination=[f"{queue}@localhost"]):
            return
    raise TimeoutError("the Celery worker did not answer a ping in time")
