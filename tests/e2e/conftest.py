"""The stack fixture: started once the test database exists, stopped (every process) whatever happens; when the
test fails, every process's log and a screenshot of every open page come with the report."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.e2e.stack import Stack

# Playwright's sync API runs an event loop in the test thread; the ORM reads the database in the same thread
# between browser steps (set on import, before any fixture runs, as tests/web/test_browser.py does).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return {"executable_path": str(CHROMIUM), "headless": True, "args": ["--no-sandbox"]}


@pytest.fixture
def stack(request: pytest.FixtureRequest, transactional_db: None, tmp_path: Path) -> Iterator[Stack]:
    """gunicorn, a Celery worker and a beat on this test's database and a Redis database of their own."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    the_stack = Stack(folder=tmp_path, base_broker_url=settings.CELERY_BROKER_URL)
    the_stack.flush_broker()
    try:
        the_stack.start_web()
        the_stack.start_worker()
        the_stack.start_beat()
        yield the_stack
    finally:
        reports = request.node.stash.get(_REPORTS, {})
        failed = any(report.failed for report in reports.values()) or "call" not in reports
        if failed:
            for n, page in enumerate(the_stack.pages):
                try:
                    page.screenshot(path=SCREENSHOTS / f"e2e-failure-{n}.png", full_page=True)
                except Exception as error:  # a closed page must not hide the logs
                    print(f"no screenshot of page {n}: {error}")
        the_stack.stop()
        the_stack.flush_broker()
        if failed:
            print(the_stack.logs())  # shown by pytest with the failure ("Captured stdout teardown")
