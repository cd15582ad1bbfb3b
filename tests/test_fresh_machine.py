"""A fresh machine (issue 14): a newcomer clones the repository and runs the README's `make test`, which must
pass from the README alone. The Makefile installs the Debian packages the tests need (system-deps) and points
the tests at this machine's PostgreSQL and Redis when DATABASE_URL / CELERY_BROKER_URL are unset; `.ci/run`
runs the README's command and installs nothing itself.

system-deps runs the real Makefile recipe against stand-ins for what it must not really call here (apt-get,
sudo, the user id); the services step runs the real tools/test_environment.py against the real PostgreSQL.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from tools import test_environment

ROOT = Path(settings.BASE_DIR)
MAKE = shutil.which("make") or "/usr/bin/make"


def _stub(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _system_deps(
    tmp_path: Path, *, uid: int, sudo: bool, missing: bool = True, letters_missing: bool = False
) -> subprocess.CompletedProcess[str]:
    """`make system-deps` with PATH holding only stand-ins: apt-get and sudo record their arguments, id -u
    answers `uid`; docker-compose and Chromium are missing (or both present, standing in for them); Pango, the
    DejaVu fonts and msgfmt are present, unless `letters_missing`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    _stub(bin_dir / "apt-get", f'echo "apt-get $*" >> {log}')
    _stub(bin_dir / "id", f'[ "$1" = -u ] && echo {uid}')
    os.symlink(shutil.which("env") or "/usr/bin/env", bin_dir / "env")
    if sudo:
        _stub(bin_dir / "sudo", f'echo "sudo $*" >> {log}; exec "$@"')
    present = bin_dir / "present"
    _stub(present, "exit 0")
    tools = (
        [f"DOCKER_COMPOSE={present}", f"CHROMIUM={present}"]
        if not missing
        else ["DOCKER_COMPOSE=no-docker-compose-here", f"CHROMIUM={tmp_path / 'no-chromium'}"]
    )
    absent = tmp_path / "absent"
    tools += (
        [f"PANGO_LIB={absent}", f"FONTS_DIR={absent}", f"MSGFMT={absent}"]
        if letters_missing
        else [f"PANGO_LIB={present}", f"FONTS_DIR={bin_dir}", f"MSGFMT={present}"]
    )
    result = subprocess.run(
        [MAKE, "-s", "system-deps", *tools],
        cwd=ROOT,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    calls = log.read_text() if log.exists() else ""
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout + calls, result.stderr)


def test_system_deps_installs_what_is_missing_as_root(tmp_path: Path) -> None:
    result = _system_deps(tmp_path, uid=0, sudo=False)

    assert result.returncode == 0, result.stderr
    assert "installing the Debian packages docker-compose chromium" in result.stdout
    calls = result.stdout.splitlines()[-2:]
    assert calls[0] == "apt-get update -qq"
    assert calls[1] == "apt-get install -y -qq docker-compose chromium"


def test_system_deps_uses_sudo_when_not_root(tmp_path: Path) -> None:
    result = _system_deps(tmp_path, uid=1000, sudo=True)

    assert result.returncode == 0, result.stderr
    assert "sudo apt-get update -qq" in result.stdout
    assert "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose chromium" in result.stdout
    assert "apt-get install -y -qq docker-compose chromium" in result.stdout  # and apt-get ran


def test_system_deps_stops_with_what_to_install_when_it_cannot(tmp_path: Path) -> None:
    result = _system_deps(tmp_path, uid=1000, sudo=False)

    assert result.returncode != 0
    assert "make test needs the Debian packages docker-compose chromium" in result.stderr
    assert "as root: apt-get update && apt-get install -y docker-compose chromium" in result.stderr
    assert "apt-get" not in result.stdout  # nothing was attempted


def test_system_deps_names_pango_the_fonts_and_gettext_when_they_are_missing(tmp_path: Path) -> None:
    result = _system_deps(tmp_path, uid=0, sudo=False, letters_missing=True)

    assert result.returncode == 0, result.stderr
    packages = "docker-compose chromium libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core gettext"
    assert result.stdout.splitlines()[-1] == f"apt-get install -y -qq {packages}"


def test_system_deps_does_nothing_when_both_are_there(tmp_path: Path) -> None:
    result = _system_deps(tmp_path, uid=1000, sudo=False, missing=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_make_test_installs_the_packages_before_running_anything() -> None:
    # the README's command: its prerequisites run in order (make -n prints their recipes without running them)
    dry_run = subprocess.run(
        [MAKE, "-n", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    system_deps = dry_run.index("command -v docker-compose")
    services = dry_run.index("tools/test_environment.py")
    pytest_run = dry_run.index("pytest -n 2")
    assert system_deps < dry_run.index("ruff check") < services < pytest_run


def test_ci_runs_the_readme_command_and_installs_nothing_itself() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    test_command = next(line.split("#")[0].strip() for line in block.group(1).splitlines() if "test" in line)
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == test_command == "make test"
    assert "apt-get" not in ci
    # the README says what make test installs
    assert "system-deps" in readme
    assert "apt-get" in readme


# ------------------------------------------------------------------------------ the services make test uses


@pytest.mark.postgres
def test_unset_urls_point_at_the_local_services_and_the_database_is_created() -> None:
    # given no DATABASE_URL nor CELERY_BROKER_URL, and a database name nobody has yet
    name = f"workout_fresh_machine_{uuid.uuid4().hex[:10]}"
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    try:
        # when
        result = subprocess.run(
            [sys.executable, "tools/test_environment.py", "--name", name],
            cwd=ROOT,
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        # then the shell is told to use this machine's PostgreSQL and Redis, and the database exists
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            f"export DATABASE_URL=postgres://postgres@127.0.0.1:5432/{name}",
            "export CELERY_BROKER_URL=redis://127.0.0.1:6379/0",
        ]
        assert f"created the database {name}" in result.stderr
        assert _database_exists(name)
        # and a second run finds it there
        again = test_environment.exports(environ, name)
        assert len(again) == 2
    finally:
        with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _database_exists(name: str) -> bool:
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres") as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def test_set_urls_are_left_alone() -> None:
    environ = {"DATABASE_URL": "sqlite:////tmp/x.sqlite3", "CELERY_BROKER_URL": ""}
    assert test_environment.exports(environ, "workout") == []


def test_without_local_services_the_tests_are_told_why_they_will_skip(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given nothing listening where the local services would be (port 1 refuses)
    monkeypatch.setattr(test_environment, "LOCAL_POSTGRES", "postgres://postgres@127.0.0.1:1/")
    monkeypatch.setattr(test_environment, "LOCAL_REDIS", "redis://127.0.0.1:1/0")

    assert test_environment.exports({}, "workout") == []

    said = capsys.readouterr().err
    assert "no PostgreSQL answers on 127.0.0.1:5432" in said
    assert "tests marked postgres and celery_worker will be skipped" in said
    assert "no Redis answers on 127.0.0.1:6379" in said


def test_a_set_database_that_does_not_answer_stops_make_test_saying_so() -> None:
    with pytest.raises(SystemExit, match="cannot reach the database of DATABASE_URL"):
        test_environment.exports({"DATABASE_URL": "postgres://postgres@127.0.0.1:1/workout"}, "workout")
