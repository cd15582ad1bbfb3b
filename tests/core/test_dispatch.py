"""core.dispatch: every post-commit dispatch goes through one helper, which never fails its caller after the
commit, logs a lost message with the task's name and its re-drive, and does not hang on a broker that is down."""

from __future__ import annotations

import ast
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from accounts.tasks import sweep_run_task
from core.dispatch import dispatch_on_commit
from restructuring.tasks import compute_feasibility
from tests.restructuring.helpers import broker_unreachable

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "core", "restructuring", "rules", "config")
HELPER = ROOT / "core" / "dispatch.py"


# Functions that queue tasks from inside a beat task (not after a commit): a failure fails the task, and the next
# beat runs it again.
BEAT_ONLY = {("accounts/services/sweep.py", "sweeps_redrive")}


def _calls(path: Path) -> set[tuple[int, str, str]]:
    """(line, name, enclosing function) of every call of `on_commit`, `delay`, `apply_async` or `send_task` in a
    module, and of every `.delay` or `.apply_async` handed over uncalled (partial(task.delay, ...))."""
    found = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    for function in [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))]:
        enclosing = getattr(function, "name", "")
        for node in ast.walk(function):
            name = ""
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            elif isinstance(node, ast.Attribute):
                name = node.attr
            if name in {"on_commit", "delay", "apply_async", "send_task"}:
                found.add((getattr(node, "lineno", 0), name, enclosing))
    # innermost function wins: drop the module-level and outer-function duplicates of a line
    innermost: dict[tuple[int, str], str] = {}
    for line, name, enclosing in sorted(found, key=lambda f: f[2] == ""):
        innermost.setdefault((line, name), enclosing)
    return {(line, name, enclosing) for (line, name), enclosing in innermost.items()}


def test_every_post_commit_dispatch_goes_through_the_helper() -> None:
    """Services run inside requests and transactions: they queue work only through core.dispatch (no on_commit
    of their own, no `.delay()`); a task module's `.delay()` runs inside a task, whose failure the beat re-runs."""
    offenders = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            if path == HELPER or "migrations" in path.parts:
                continue
            for line, name, enclosing in sorted(_calls(path)):
                allowed = path.name == "tasks.py" or (relative, enclosing) in BEAT_ONLY
                if name == "on_commit" or not allowed:
                    offenders.append(f"{relative}:{line}: {name} in {enclosing or 'the module'}")
    assert offenders == []


@pytest.mark.django_db(transaction=True)
def test_a_lost_dispatch_is_logged_with_the_task_and_its_redrive_and_the_caller_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given Redis refusing connections when a transaction that queued two tasks commits
    started = time.monotonic()
    with broker_unreachable(), caplog.at_level(logging.WARNING, logger="core.dispatch"):
        with transaction.atomic():
            dispatch_on_commit(sweep_run_task, {}, redrive="the beat sweep")
            dispatch_on_commit(compute_feasibility, {"case_ids": [1]}, {"case_ids": [2]}, redrive="the re-drive beat")
        after_commit = "the caller goes on"
    elapsed = time.monotonic() - started

    # then the commit returned normally, quickly, and each lost message is logged with its task and re-drive
    assert after_commit == "the caller goes on"
    assert elapsed < 2.0  # one refused connection each, no reconnect loop
    messages = [r.getMessage() for r in caplog.records if r.name == "core.dispatch"]
    assert len(messages) == 2
    assert "task accounts.tasks.sweep_run_task not queued after commit (0 of 1 messages sent" in messages[0]
    assert messages[0].endswith("the beat sweep re-drives it")
    assert "task restructuring.tasks.compute_feasibility not queued after commit (0 of 2" in messages[1]
    assert all(r.levelno == logging.WARNING and r.exc_info for r in caplog.records if r.name == "core.dispatch")


@pytest.mark.django_db
def test_a_rolled_back_transaction_queues_nothing_and_in_process_runs_propagate(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # a rollback drops the dispatch (nothing is published for work that did not happen)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                dispatch_on_commit(sweep_run_task, {}, redrive="the beat sweep")
                raise RuntimeError("the work failed")
        except RuntimeError:
            pass
    assert callbacks == []

    # in process (no broker) the task runs on commit, and its error is the caller's: a bug is not swallowed
    with pytest.raises(TypeError), django_capture_on_commit_callbacks(execute=True):
        dispatch_on_commit(compute_feasibility, {"case_ids": [1], "no_such_argument": 1}, redrive="-")
