from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app


def _redis_broker() -> bool:
    return settings.CELERY_BROKER_URL.startswith("redis://")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgres` need the real database, `celery_worker` the real database and Redis. They are
    skipped, with the reason, only when those are not configured; under CI that is an error, never a skip."""
    missing = []
    if not Path("/usr/bin/chromium").exists():
        missing.append(("browser", "needs Debian's Chromium: apt-get install chromium"))
    if connection.vendor != "postgresql":
        missing.append(("postgres", "needs PostgreSQL: set DATABASE_URL=postgres://... to run it"))
        missing.append(("celery_worker", "needs PostgreSQL: set DATABASE_URL=postgres://... to run it"))
        missing.append(("redis", "needs PostgreSQL: set DATABASE_URL=postgres://... to run it"))
    elif not _redis_broker():
        missing.append(("celery_worker", "needs Redis: set CELERY_BROKER_URL=redis://... to run it"))
        missing.append(("redis", "needs Redis: set CELERY_BROKER_URL=redis://... to run it"))
    for marker, reason in missing:
        needing = [item for item in items if item.get_closest_marker(marker)]
        if needing and os.environ.get("CI"):
            raise pytest.UsageError(f"CI must run every test: {reason}")
        for item in needing:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _celery_tasks_run_in_process() -> Iterator[None]:
    """Tasks run in the test's own process unless a test starts a real worker (tests/celery_worker.py turns
    this off while its worker runs), so a broker in the environment never swallows a test's task."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _files_kept_apart(tmp_path_factory: pytest.TempPathFactory, settings: Any) -> None:
    """The files a test keeps (agreements, documents: Django's default storage) go to a directory of its own,
    never into the checkout's media/."""
    settings.MEDIA_ROOT = str(tmp_path_factory.mktemp("media"))
