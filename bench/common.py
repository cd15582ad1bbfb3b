"""What the benchmarks share: their database, the machine description, timing, price moves."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/workout_bench")


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def database_ready(url: str | None = None) -> None:
    """The bench database (created when missing), Django set up on it, and migrated: how every benchmark starts."""
    ensure_database(url or os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def truncate_workflow() -> None:
    """Start from no cases and an empty audit trail (the trail refuses DELETE, not TRUNCATE: a bench database
    is not a deployment, whose role has no TRUNCATE right). The cases also hold the book: a benchmark that
    replaces the book clears them first."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE core_auditevent, restructuring_case RESTART IDENTITY CASCADE")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import numpy
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "postgresql": server,
    }


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def median_time(fn: Any, repeat: int) -> float:
    return statistics.median(timed(fn)[0] for _ in range(repeat))


def nudge_prices(step: int) -> None:
    """A new price for every priced instrument, +/-0.5% alternating, so each sweep has new work. Then a VACUUM
    of the risk state: sweeps here run back to back, where a deployment sweeps once a minute and autovacuum
    (set eager on that table) cleans up in between; without it each run would pay for the previous runs'
    dead rows."""
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Price

    now = timezone.now() + timedelta(microseconds=step)
    factor = Decimal("1.005") if step % 2 else Decimal("0.995")
    latest: dict[int, Price] = {}
    for price in Price.objects.order_by("instrument_id", "-time").distinct("instrument_id"):
        latest[price.instrument_id] = price
    Price.objects.bulk_create(
        Price(
            instrument_id=i,
            time=now,
            price=(p.price * factor).quantize(Decimal("1E-8")),
            implied_volatility=p.implied_volatility,
        )
        for i, p in latest.items()
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM accounts_riskstate")
