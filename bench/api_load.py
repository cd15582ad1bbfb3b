"""Load benchmark of the client API under gunicorn with PostgreSQL. Prints one JSON object on its last line.

    python bench/api_load.py [--clients 500] [--read-rate 400] [--accept-rate 100] [--seconds 20] [--workers 3]

It seeds the bench database (`workout_bench_api`; BENCH_API_DATABASE_URL overrides) with clients, each with
accounts (a position, a loan, swept risk figures) and an open offer on every account, and a token per client;
starts gunicorn on a free loopback port; then drives it with an open-loop generator: requests are scheduled at
the target rate and each latency is measured from when its request was due, not from when a connection was free
(no coordinated omission: a stall shows in the percentiles).

- reads: GET accounts, an account, offers, an offer (with its schedule preview), in equal shares, random
  clients, at --read-rate for --seconds.
- accepts: POST /offers/{id}/accept/ with a fresh Idempotency-Key, every offer once, at --accept-rate for
  --seconds (each a transaction: the proposal and case locked and moved, two audit events, the idempotency
  record).

Targets (issue 7): reads >= 400/s with p99 < 50 ms; accepts >= 100/s with p99 < 100 ms. Run it on a quiet
machine: the generator, gunicorn and PostgreSQL share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import ROOT, database_ready, machine

DATABASE_URL = os.environ.get("BENCH_API_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/workout_bench_api")
os.environ["DATABASE_URL"] = DATABASE_URL


@dataclass
class Seeded:
    tokens: list[str]
    accounts: dict[str, list[int]]  # token -> its accounts
    offers: list[tuple[str, int]]  # (token, offer id), every open offer


def seed(clients: int, accounts_per_client: int) -> Seeded:
    """A fresh book: `clients` clients with `accounts_per_client` accounts of 10 BTC on a 750 loan (margin call at
    100), swept; a case with an open offer on every account; a token per client (made directly: the bench
    does not time token issuing)."""
    from datetime import timedelta
    from decimal import Decimal

    from django.db import connection
    from django.test import override_settings
    from django.utils import timezone

    from accounts.models import ApiToken, Client, Instrument, MarginAccount, MarginLoan, Position, Price
    from accounts.services.api_tokens import token_digest
    from accounts.services.sweep import sweep_run
    from restructuring.models import Case, CaseState, Proposal, ProposalSource, ProposalState

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE core_auditevent, core_apitoken, core_idempotencyrecord, restructuring_case, accounts_client, "
            "accounts_instrument, accounts_sweep RESTART IDENTITY CASCADE"
        )
    now = timezone.now()
    btc = Instrument.objects.create(
        symbol="BTC",
        kind="spot",
        initial_rate=Decimal("0.5"),
        maintenance_rate=Decimal("0.3"),
        haircut=Decimal("0.1"),
        scenario_class="crypto",
        daily_volatility=Decimal("0.04"),
        average_daily_volume=Decimal("1000"),
    )
    Price.objects.create(instrument=btc, time=now - timedelta(minutes=1), price=Decimal(100))
    made = Client.objects.bulk_create(Client(code=f"C-{k:05d}", name=f"Client {k}") for k in range(clients))
    accounts = MarginAccount.objects.bulk_create(
        MarginAccount(code=f"A-{c.pk:05d}-{j}", client=c) for c in made for j in range(accounts_per_client)
    )
    Position.objects.bulk_create(
        Position(account=a, instrument=btc, quantity=Decimal(10), entry_price=Decimal(90)) for a in accounts
    )
    MarginLoan.objects.bulk_create(
        MarginLoan(account=a, principal=Decimal(750), rate_annual=Decimal("0.08")) for a in accounts
    )
    with override_settings(WORKOUT_AFTER_SWEEP_TASKS=[]):
        sweep_run()
    cases = Case.objects.bulk_create(
        Case(account=a, state=CaseState.OFFERED, opened_at=now, call_amount=Decimal(250), call_basis="initial")
        for a in accounts
    )
    proposals = Proposal.objects.bulk_create(
        Proposal(
            case=c,
            source=ProposalSource.RULES,
            source_key=f"bench:{c.pk}",
            state=ProposalState.OFFERED,
            name="extend_12m",
            terms={"term_months": 12, "collateral_to_add": "100.00"},
            offered_at=now,
            expires_at=now + timedelta(days=2),
            counter_bounds={"max_term_months": 24, "min_rate": "0.06", "min_collateral": "50"},
            created_at=now,
        )
        for c in cases
    )
    secrets = {c.pk: f"wo_{c.pk:08x}_{uuid.uuid4().hex}" for c in made}
    ApiToken.objects.bulk_create(
        ApiToken(
            prefix=f"{c.pk:08x}",
            digest=token_digest(secrets[c.pk]),
            client=c,
            created_at=now,
            expires_at=now + timedelta(days=1),
        )
        for c in made
    )
    account_client = {a.pk: a.client_id for a in accounts}
    by_token: dict[str, list[int]] = {secrets[c.pk]: [] for c in made}
    for a in accounts:
        by_token[secrets[a.client_id]].append(a.pk)
    offers = [(secrets[account_client[c.account_id]], p.pk) for c, p in zip(cases, proposals, strict=True)]
    random.Random(7).shuffle(offers)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return Seeded(tokens=list(secrets.values()), accounts=by_token, offers=offers)


# ------------------------------------------------------------------------------------------- gunicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The workers' garbage collector: after the application is loaded, its objects (modules, classes, settings: most
# of the heap) are frozen out of the collector's scans, so a full collection takes a few milliseconds instead of
# tens (Instagram's gc.freeze). Recommended for the deployment's gunicorn too.
GUNICORN_CONFIG = """
import gc


def post_worker_init(worker):
    gc.collect()
    gc.freeze()
"""


def gunicorn_start(port: int, workers: int, worker_class: str, config: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + "k" * 60,
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback; TLS ends at the proxy in a deployment
        "WORKOUT_API_RATE": "1000000/minute",  # one token per client here, but no limit on the bench
        "CONN_MAX_AGE": "600",
        "LOG_LEVEL": "ERROR",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            worker_class,
            "--config",
            str(config),
            "--keep-alive",
            "30",
            "--log-level",
            "error",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("gunicorn did not start")


def gunicorn_stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------------ generator


@dataclass
class Phase:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed_s: float = 0.0

    def figures(self, target_rate: float) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)

        def pct(p: float) -> float | None:
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2) if ordered else None

        return {
            "target_rps": target_rate,
            "achieved_rps": round(len(ordered) / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "requests": len(ordered),
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": round(ordered[-1], 2) if ordered else None,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
        }


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        close = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status


async def drive(
    port: int, rate: float, seconds: float, make: Any, connections: int, expected: tuple[int, ...]
) -> Phase:
    """Issue `make(k)` -> (method, path, headers, body) at `rate` per second for `seconds` over a pool of
    keep-alive connections; latency from each request's scheduled time."""
    phase = Phase()
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(Connection(port))
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    tasks = []

    async def one(k: int, due: float) -> None:
        connection = await pool.get()
        try:
            method, path, headers, body = make(k)
            status = await connection.request(method, path, headers, body)
            phase.statuses[status] = phase.statuses.get(status, 0) + 1
            if status not in expected:
                phase.errors += 1
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            phase.errors += 1
            connection.writer = None
        finally:
            pool.put_nowait(connection)
        phase.latencies_ms.append((loop.time() - due) * 1000)

    for k in range(total):
        due = start + k / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k, due)))
    await asyncio.gather(*tasks)
    phase.elapsed_s = loop.time() - start
    return phase


def reads(seeded: Seeded) -> Any:
    rng = random.Random(11)
    offers_by_token: dict[str, list[int]] = {}
    for token, offer in seeded.offers:
        offers_by_token.setdefault(token, []).append(offer)

    def make(k: int) -> tuple[str, str, dict[str, str], bytes]:
        token = rng.choice(seeded.tokens)
        headers = {"Authorization": f"Bearer {token}"}
        kind = k % 4
        if kind == 0:
            return "GET", "/api/v1/accounts/", headers, b""
        if kind == 1:
            return "GET", f"/api/v1/accounts/{rng.choice(seeded.accounts[token])}/", headers, b""
        if kind == 2:
            return "GET", "/api/v1/offers/", headers, b""
        return "GET", f"/api/v1/offers/{rng.choice(offers_by_token[token])}/", headers, b""

    return make


def accepts(seeded: Seeded) -> Any:
    def make(k: int) -> tuple[str, str, dict[str, str], bytes]:
        token, offer = seeded.offers[k]
        headers = {
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": str(uuid.uuid4()),
            "Content-Type": "application/json",
        }
        return "POST", f"/api/v1/offers/{offer}/accept/", headers, b"{}"

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--accounts-per-client", type=int, default=6)
    parser.add_argument("--read-rate", type=float, default=400.0)
    parser.add_argument("--accept-rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (default: cores + 1)")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (sync, gthread)")
    parser.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false", help="leave the collector be")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections of the generator")
    args = parser.parse_args()
    if args.accept_rate * args.seconds > args.clients * args.accounts_per_client:
        parser.error("not enough offers: raise --clients or --accounts-per-client")

    database_ready(DATABASE_URL)
    seeded = seed(args.clients, args.accounts_per_client)
    about = machine()
    from django.db import connection

    connection.close()

    port = free_port()
    directory = tempfile.TemporaryDirectory(prefix="api-load-")
    config = Path(directory.name) / "gunicorn.conf.py"
    config.write_text(GUNICORN_CONFIG if args.gc_freeze else "")
    server = gunicorn_start(port, args.workers, args.worker_class, config)
    try:
        asyncio.run(drive(port, 100, 2, reads(seeded), args.connections, (200,)))  # warm the workers up
        read = asyncio.run(drive(port, args.read_rate, args.seconds, reads(seeded), args.connections, (200,)))
        accept = asyncio.run(drive(port, args.accept_rate, args.seconds, accepts(seeded), args.connections, (200,)))
    finally:
        gunicorn_stop(server)
        directory.cleanup()

    from core.audit import audit_verify
    from core.models import AuditEvent, IdempotencyRecord
    from restructuring.models import Proposal, ProposalState

    figures = {
        "bench": "api_load",  # the key every benchmark here names itself by
        "benchmark": "api_load",
        "machine": about,
        "gunicorn": {"workers": args.workers, "worker_class": args.worker_class, "gc_freeze": args.gc_freeze},
        "clients": args.clients,
        "accounts": args.clients * args.accounts_per_client,
        "reads": read.figures(args.read_rate),
        "accepts": accept.figures(args.accept_rate),
        "accepted_offers": Proposal.objects.filter(state=ProposalState.ACCEPTED).count(),
        "accept_audit_events": AuditEvent.objects.filter(action="proposal.accept").count(),
        "idempotency_records": IdempotencyRecord.objects.count(),
        "audit_chain_ok": audit_verify().ok,
    }
    reads_ok = figures["reads"]["achieved_rps"] >= 0.98 * args.read_rate and (figures["reads"]["p99_ms"] or 1e9) < 50
    accepts_ok = (
        figures["accepts"]["achieved_rps"] >= 0.98 * args.accept_rate and (figures["accepts"]["p99_ms"] or 1e9) < 100
    )
    figures["targets_met"] = {"reads": reads_ok, "accepts": accepts_ok}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
