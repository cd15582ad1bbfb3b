"""The real stack for the end-to-end test, as subprocesses against the pytest test database: gunicorn serving
config.wsgi (production settings, plain HTTP), a Celery worker, a Celery beat with short intervals, and
`manage.py` commands, all on a Redis database of their own (flushed before and after) and a queue of their own.

Each process writes its log to a file in the stack's folder; `Stack.logs()` gives them all, for a failure report.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from django.contrib.auth.models import User
from playwright.sync_api import Page

from config.queues import queue_names
from tests.celery_worker import ROOT, _test_database_url
from tests.web.helpers import PASSWORD, current_code

E2E_REDIS_DB = 7
T = TypeVar("T")

# What the beat runs, and how often (seconds): sweeps every two, the rest soon enough to be exercised.
BEAT_INTERVALS = {
    "WORKOUT_SWEEP_EVERY_SECONDS": "2",
    "WORKOUT_DEADLINES_EVERY_SECONDS": "5",
    "WORKOUT_NOTIFICATIONS_EVERY_SECONDS": "5",
    "WORKOUT_FEASIBILITY_REDRIVE_EVERY_SECONDS": "10",
}
# The session's own switches that a deployment does not have.
_DROPPED = {"DJANGO_ALLOW_ASYNC_UNSAFE", "DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY", "CACHE_URL"}


def wait_until(probe: Callable[[], T | None], what: str, *, timeout_s: float = 30.0, poll_s: float = 0.2) -> T:
    """Poll `probe` until it returns something truthy; return that. (The test's connection is in autocommit:
    each query sees what the subprocesses have committed.)"""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")
        time.sleep(poll_s)


def broker_url(base: str, redis_db: int) -> str:
    return urlunsplit(urlsplit(base)._replace(path=f"/{redis_db}"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    """A long-running subprocess in its own process group (so that stopping it takes its children too)."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_for_log(self, text: str, *, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log():
            if not self.alive():
                raise RuntimeError(f"{self.name} exited before saying {text!r}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not say {text!r} in {timeout_s:.0f} s:\n{self.log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM to the group (warm shutdown: running tasks and requests finish), SIGKILL after 20 s."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


@dataclass
class Stack:
    folder: Path
    base_broker_url: str
    queue: str = field(default_factory=lambda: f"e2e-{uuid.uuid4().hex[:12]}")
    port: int = field(default_factory=free_port)
    processes: list[Process] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # what each manage.py run printed, for a failure report
    pages: list[Page] = field(default_factory=list)  # screenshot on failure
    # the files the stack keeps (agreements, documents), apart from the checkout's media/
    media_root: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="workout-e2e-media-"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def broker_url(self) -> str:
        return broker_url(self.base_broker_url, E2E_REDIS_DB)

    def env(self, **extra: str) -> dict[str, str]:
        """A production environment (DEBUG off), plain HTTP on 127.0.0.1, on this test's database and broker."""
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
        env.update(
            DATABASE_URL=_test_database_url(),
            CELERY_BROKER_URL=self.broker_url,
            CELERY_QUEUE=self.queue,
            CELERY_TASK_ALWAYS_EAGER="false",
            DEBUG="false",
            SECRET_KEY="e2e-" + "k" * 60,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SECURE_SSL_REDIRECT="false",
            SESSION_COOKIE_SECURE="false",
            CSRF_COOKIE_SECURE="false",
            SECURE_HSTS_SECONDS="0",
            EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend",
            # a fast and deterministic book: few Monte Carlo paths; margin rates as imported (no EWMA scaling,
            # which would depend on whether the volatility refresh the shock queues ran before the sweep)
            WORKOUT_FEASIBILITY_PATHS="500",
            WORKOUT_DYNAMIC_MARGIN="false",
            LOG_LEVEL="INFO",
            MEDIA_ROOT=self.media_root,
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            OPENBLAS_NUM_THREADS="1",
            **BEAT_INTERVALS,
        )
        env.update(extra)
        return env

    # --- the broker

    def flush_broker(self) -> None:
        client = redis.Redis.from_url(self.broker_url)
        try:
            client.flushdb()
        finally:
            client.close()

    # --- commands

    def manage(self, *args: str, **env: str) -> str:
        """Run `manage.py ARGS` to the end; its stdout (its stderr too in the failure report)."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.commands.append(f"$ manage.py {' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}")
        assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
        return done.stdout

    # --- services

    def _process(self, name: str, args: list[str], env: dict[str, str]) -> Process:
        process = Process(name=name, args=args, env=env, log_path=self.folder / f"{name}.log")
        self.processes.append(process)
        process.start()
        return process

    def start_web(self) -> Process:
        """gunicorn with config/gunicorn.py and two workers; static files collected into the stack's folder."""
        web = {"STATIC_ROOT": str(self.folder / "static")}
        self.manage("collectstatic", "--noinput", "-v", "0", **web)
        env = self.env(**web, GUNICORN_BIND=f"127.0.0.1:{self.port}", GUNICORN_WORKERS="2")
        args = [sys.executable, "-m", "gunicorn", "config.wsgi", "-c", "config/gunicorn.py", "--access-logfile", "-"]
        args += ["--control-socket", str(self.folder / "gunicorn.ctl")]  # not the one in $HOME another may use
        process = self._process("gunicorn", args, env)
        wait_until(lambda: self._answers("/login/", process), "gunicorn to serve /login/", timeout_s=60)
        return process

    def _answers(self, path: str, process: Process) -> bool:
        if not process.alive():
            raise RuntimeError(f"gunicorn exited:\n{process.log()}")
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as response:  # noqa: S310 (our own URL)
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def start_worker(self) -> Process:
        name = f"{self.queue}@localhost"
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            ",".join(queue_names(self.queue)),
            "-n",
            name,
            "-c",
            "2",
        ]
        args += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"]
        process = self._process("worker", args, self.env())
        process.wait_for_log(f"{name} ready.")
        return process

    def start_beat(self) -> Process:
        args = [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "INFO"]
        args += ["--schedule", str(self.folder / "beat-schedule"), "--pidfile", str(self.folder / "beat.pid")]
        process = self._process("beat", args, self.env())
        process.wait_for_log("beat: Starting...")
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self, tail_lines: int = 200) -> str:
        parts = [
            f"===== {p.name} (last {tail_lines} lines)\n" + "\n".join(p.log().splitlines()[-tail_lines:])
            for p in self.processes
        ]
        return "\n".join([*parts, "===== manage.py", *self.commands])


# ------------------------------------------------------------------------------------------------ the client


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any
    raw: bytes


@dataclass
class ClientApi:
    """The client's side: JSON over HTTP with a bearer token, as a client's system would call the API."""

    base: str
    token: str

    def get(self, path: str) -> Answer:
        return self._call("GET", path, None, None)

    def post(self, path: str, body: Mapping[str, Any], *, key: str) -> Answer:
        return self._call("POST", path, body, key)

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None, key: str | None) -> Answer:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["Idempotency-Key"] = key
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (our own URL)
                status, got, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, got, raw = error.code, dict(error.headers), error.read()
        is_json = got.get("Content-Type", "").startswith("application/json")  # a download's body is its file
        return Answer(status=status, headers=got, body=json.loads(raw) if raw and is_json else None, raw=raw)


# ------------------------------------------------------------------------------------------------ the browser


def sign_in(page: Page, user: User) -> None:
    """Through the real form: username, password and the authenticator's current code; lands on the queue."""
    page.goto("/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", current_code(user))
    page.click("main button[type=submit]")
    page.wait_for_url("**/queue/**")
