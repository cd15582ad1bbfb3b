"""RELIABILITY.md, "Redis or PostgreSQL restart": Redis restarted under a running worker. The test runs its own
redis-server (the suite's is shared by the parallel tests), restarts it, and checks that the worker recovers
without a manual restart and that what the restart lost (Redis here keeps nothing on disk) is re-driven once."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import redis

from restructuring.models import Case, CaseState
from tests.restructuring.helpers import accounts, assert_invariants, btc, sweep_only, worker

pytestmark = [pytest.mark.postgres, pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

CASES_TASK = "restructuring.tasks.cases_apply_risk_task"


@dataclass
class PrivateRedis:
    port: int
    folder: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.folder,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        server = PrivateRedis(port=port, folder=folder)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def test_a_worker_recovers_when_redis_restarts_and_what_was_lost_is_redriven_once() -> None:
    # given three accounts below maintenance and one in warning, swept (no case moved yet)
    instrument = btc()
    accounts(instrument, "margin_call", 3)
    accounts(instrument, "warning", 1)
    sweep = sweep_only()

    with private_redis() as broker, worker(concurrency=1, broker=broker.url) as w:
        # when Redis goes down with the case task queued and comes back empty (nothing is kept on disk)
        w.stop()
        w.send(CASES_TASK, sweep_id=sweep.pk)
        broker.stop()
        broker.start()
        w.start()
        assert w.queue_length() == 0  # the queued task is gone with the restart
        assert not Case.objects.exists()

        # then the next sweep's task (the beat sends one with every sweep) re-drives it: the cases move once
        task_id = w.send(CASES_TASK, sweep_id=sweep.pk)
        assert w.wait_for_results(1, task_id=task_id, timeout_s=60) == [{"opened": 4, "margin_calls": 3, "cured": 0}]

        # and when Redis restarts again under the running worker, it recovers without being restarted
        broker.stop()
        time.sleep(1.0)
        broker.start()
        again = w.send(CASES_TASK, sweep_id=sweep.pk)
        assert w.wait_for_results(1, task_id=again, timeout_s=60) == [{"opened": 0, "margin_calls": 0, "cured": 0}]

    assert Case.objects.filter(state=CaseState.MARGIN_CALL).count() == 3
    assert Case.objects.count() == 4
    assert_invariants()
