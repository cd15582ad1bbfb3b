"""A PostgreSQL cluster of a test's own, for the tests that restart the database (RELIABILITY.md, "Redis or
PostgreSQL restart"): the suite's server is shared by the parallel tests and by other people, so it is never
the one restarted.

The cluster lives in a temporary directory, listens on a free loopback port only (no Unix socket), and runs
as the `postgres` OS user when the tests run as root (the server refuses to run as root). It is tuned for
speed in ways that do not change what a restart test checks: `fsync=off` and `full_page_writes=off` only
matter when the operating system itself crashes (what a committed transaction wrote has been handed to the
kernel either way, and a killed server finds it there on restart). `synchronous_commit` stays on: turning it
off would let an immediate shutdown lose commits the client was told about, which is exactly what a restart
test must not paper over.

`restart()` is `pg_ctl stop -m immediate` then `start`: every server process is killed at once (SIGQUIT), so
open transactions die mid-flight without a chance to clean up, and the next start runs crash recovery. That
is the harshest restart short of losing the machine, and the interesting one: a `fast` stop rolls back each
session's transaction politely, which the application sees much the same way but which exercises less.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

PG_BIN = Path(os.environ.get("WORKOUT_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "''",  # none: loopback TCP only (pg_ctl hands these to a shell)
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "40",
    "shared_buffers": "32MB",
}


def initdb_missing() -> str | None:
    """Why a private cluster cannot be made here, or None when it can."""
    for tool in ("initdb", "pg_ctl"):
        if not os.access(PG_BIN / tool, os.X_OK):
            return f"needs PostgreSQL's server binaries ({PG_BIN / tool}): apt-get install postgresql-15"
    return None


@dataclass
class PrivatePostgres:
    folder: Path
    port: int
    database: str = "workout"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def server_log(self) -> Path:
        return self.folder / "server.log"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def settings_dict(self) -> dict[str, Any]:
        """The parts of a Django DATABASES entry that point at this cluster."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": self.database,
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "OPTIONS": {},
        }

    def connect(self, *, autocommit: bool = True, dbname: str | None = None) -> psycopg.Connection[Any]:
        """A plain psycopg connection (not Django's), for holding locks and looking at sessions."""
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname=dbname or self.database,
            autocommit=autocommit,
            connect_timeout=5,
        )

    # --- life

    def start(self) -> None:
        options = " ".join(f"-c {name}={value}" for name, value in _SERVER_SETTINGS.items())
        self._pg_ctl("start", "-w", "-t", "30", "-l", str(self.server_log), "-o", f"-p {self.port} {options}")

    def stop(self, *, mode: str = "immediate") -> None:
        self._pg_ctl("stop", "-w", "-t", "30", "-m", mode)

    def restart(self, *, down_s: float = 0.0) -> None:
        """Kill every server process at once (`-m immediate`), stay down `down_s`, start again (with crash
        recovery). Returns when the server accepts connections."""
        self.stop(mode="immediate")
        time.sleep(down_s)
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args)

    def _run(self, *command: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*as_postgres, *command], capture_output=True, text=True, check=False, timeout=60)
        if done.returncode != 0:
            log = self.server_log.read_text(errors="replace")[-4000:] if self.server_log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}\n{log}")

    def init(self) -> None:
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",  # loopback only, in a directory only its owner can read
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            "--no-instructions",
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def private_postgres(*, database: str = "workout") -> Iterator[PrivatePostgres]:
    """A fresh cluster, started, with an empty `database`; stopped and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="workout-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, user="postgres", group="postgres")
        folder.chmod(0o700)
        cluster = PrivatePostgres(folder=folder, port=_free_port(), database=database)
        cluster.init()
        cluster.start()
        try:
            with cluster.connect(dbname="postgres") as admin:
                admin.execute(f'CREATE DATABASE "{database}"')
            yield cluster
        finally:
            if cluster.running():
                with suppress(RuntimeError):
                    cluster.stop(mode="immediate")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
