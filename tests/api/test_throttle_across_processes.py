"""The client API's per-token limit holds across processes (issue 14): one token got 3,600 requests a minute through
a 1,200 limit because each of gunicorn's 3 workers counted in its own local-memory cache.

Two real gunicorn processes, each on a port of its own, run with the environment docker-compose.yml gives the
web service (its cache, its settings) on this machine's services: the test database, and the Redis server and
database the tests use (the token's counts are deleted before and after). The limit is lowered by the environment, as an
operator would (WORKOUT_API_RATE), and requests alternate between the two processes.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import yaml
from django.conf import settings

from accounts.models import Client
from accounts.services.api_tokens import api_token_create
from tests.celery_worker import ROOT, _test_database_url
from tests.e2e.stack import Process, free_port, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

LIMIT = 10


def _compose_web_environment() -> dict[str, str]:
    """The web service's environment as docker-compose.yml sets it (its `x-app` anchor merged in)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return {key: str(value) for key, value in compose["services"]["web"]["environment"].items()}


def _on_this_machine(url: str) -> str:
    """A compose service URL (redis://redis:6379/1) moved to the tests' Redis server and database."""
    parts, here = urlsplit(url), urlsplit(settings.CELERY_BROKER_URL)
    assert parts.hostname == "redis", url  # the compose service, nothing else
    return urlunsplit(parts._replace(netloc=here.netloc, path=here.path))


def _environment(folder: Path) -> dict[str, str]:
    compose = _compose_web_environment()
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "CACHE_URL", "DEBUG"}}
    if "CACHE_URL" in compose:  # without it, production has the settings' default
        env["CACHE_URL"] = _on_this_machine(compose["CACHE_URL"])
    env.update(
        DATABASE_URL=_test_database_url(),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        DEBUG=compose["DEBUG"],
        SECRET_KEY="throttle-" + "k" * 60,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        STATIC_ROOT=str(folder / "static"),
        WORKOUT_API_RATE=f"{LIMIT}/minute",
        GUNICORN_WORKERS="1",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    return env


def _answers(url: str, process: Process) -> bool:
    if not process.alive():
        raise RuntimeError(f"{process.name} exited:\n{process.log()}")
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own server)
            return response.status in (200, 401)
    except urllib.error.HTTPError as error:
        return error.code == 401
    except OSError:
        return False


@pytest.fixture
def two_processes(tmp_path: Path) -> Iterator[list[str]]:
    """Two gunicorn processes of one worker each; yields their base URLs."""
    (tmp_path / "static").mkdir()
    env = _environment(tmp_path)
    processes, urls = [], []
    try:
        for n in range(2):
            port = free_port()
            args = [sys.executable, "-m", "gunicorn", "config.wsgi", "-c", "config/gunicorn.py"]
            args += ["--control-socket", str(tmp_path / f"gunicorn-{n}.ctl")]
            process = Process(
                name=f"gunicorn-{n}",
                args=args,
                env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
                log_path=tmp_path / f"gunicorn-{n}.log",
            )
            processes.append(process)
            process.start()
            urls.append(f"http://127.0.0.1:{port}")
        for process, url in zip(processes, urls, strict=True):
            wait_until(partial(_answers, f"{url}/api/v1/accounts/", process), f"{process.name} to serve")
        yield urls
    finally:
        for process in processes:
            process.stop()


def _counts(token_id: int, *, forget: bool = False) -> dict[str, int]:
    """The token's request counts in the tests' Redis (accounts/tokens/throttling.py's keys); `forget` deletes them."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        keys = list(client.scan_iter(f"*api-throttle:{token_id}:*"))
        counts = {key.decode(): int(client.get(key) or 0) for key in keys}
        if forget and keys:
            client.delete(*keys)
        return counts
    finally:
        client.close()


def _get(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (our own server)
            json.load(response)
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_the_token_limit_holds_across_two_processes(two_processes: list[str]) -> None:
    # given a client's token and two server processes, configured as docker-compose configures the web service
    urls = two_processes
    client = Client.objects.create(code="C-THROTTLE", name="Throttled")
    issued = api_token_create(client_id=client.pk)
    token = issued.secret
    _counts(issued.token.pk, forget=True)  # an earlier run's, if the same id counted in this minute
    # (the limit counts in fixed minutes: start well inside one, so that the run does not straddle two)
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)

    # when three times the limit is asked for, alternating between the processes
    statuses = [_get(f"{urls[n % 2]}/api/v1/accounts/", token) for n in range(3 * LIMIT)]

    # then the documented limit held across both: LIMIT answers in all, then 429s from either process
    assert statuses.count(200) == LIMIT, statuses
    assert statuses[:LIMIT] == [200] * LIMIT
    assert set(statuses[LIMIT:]) == {429}
    assert {statuses[LIMIT], statuses[LIMIT + 1]} == {429}  # one from each process
    # counted in the one place both share (Redis): every request of either process, refused ones too
    assert list(_counts(issued.token.pk, forget=True).values()) == [3 * LIMIT]
