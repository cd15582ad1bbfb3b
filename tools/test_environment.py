"""`make test`'s services: prints the shell `export` lines that point the tests at this machine's PostgreSQL and
Redis when DATABASE_URL / CELERY_BROKER_URL are not set, and creates the database the URL names if it is missing.

    eval "$(.venv/bin/python tools/test_environment.py)"

- DATABASE_URL unset: PostgreSQL on 127.0.0.1:5432 as `postgres` (trust authentication, as on this project's
  machines and in docker-compose's service) is used when it answers, with the database `workout` (`--name`);
  a PostgreSQL DATABASE_URL that is set is used as given. Either way its database is created when missing
  (pytest makes its own test_<name> beside it; the checks of manage.py connect to it).
- CELERY_BROKER_URL unset: Redis on 127.0.0.1:6379, database 0, when it answers. Set but empty: no broker.
- A service that does not answer is left out, saying so on stderr: the tests that need it are then skipped
  with their reason (an error under CI, which must run every test).

Nothing is printed for a variable already set; a set DATABASE_URL that is not PostgreSQL is left alone.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from urllib.parse import unquote, urlsplit

import psycopg
import redis
from psycopg import sql

LOCAL_POSTGRES = "postgres://postgres@127.0.0.1:5432/"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
TIMEOUT_SECONDS = 3


def _say(message: str) -> None:
    print(f"make test: {message}", file=sys.stderr)


def _postgres_answers(url: str) -> bool:
    try:
        with psycopg.connect(_maintenance_url(url), connect_timeout=TIMEOUT_SECONDS):
            return True
    except psycopg.Error:
        return False


def _maintenance_url(url: str) -> str:
    """The same server and role, on its `postgres` database (there to connect to while ours may not exist)."""
    return urlsplit(url)._replace(path="/postgres").geturl()


def database_ensure(url: str) -> bool:
    """Create the database `url` names when it is missing; True if it was created."""
    name = unquote(urlsplit(url).path.lstrip("/"))
    if not name:
        raise SystemExit(f"make test: DATABASE_URL names no database: {url}")
    with psycopg.connect(_maintenance_url(url), connect_timeout=TIMEOUT_SECONDS, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def _redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS)
        return bool(client.ping())
    except redis.RedisError:
        return False


def exports(environ: dict[str, str], name: str) -> list[str]:
    lines = []
    database_url = environ.get("DATABASE_URL")
    if database_url is None:
        candidate = LOCAL_POSTGRES + name
        if _postgres_answers(candidate):
            database_url = candidate
            lines.append(f"export DATABASE_URL={shlex.quote(candidate)}")
            _say(f"DATABASE_URL is not set: using {candidate}")
        else:
            _say(
                "no PostgreSQL answers on 127.0.0.1:5432 and DATABASE_URL is not set: "
                "the tests marked postgres and celery_worker will be skipped (set DATABASE_URL=postgres://...)"
            )
    if database_url is not None and database_url.startswith(("postgres://", "postgresql://")):
        try:
            created = database_ensure(database_url)
        except psycopg.Error as exc:
            raise SystemExit(f"make test: cannot reach the database of DATABASE_URL: {exc}".strip()) from exc
        if created:
            _say(f"created the database {urlsplit(database_url).path.lstrip('/')}")
    if environ.get("CELERY_BROKER_URL") is None:
        if _redis_answers(LOCAL_REDIS):
            lines.append(f"export CELERY_BROKER_URL={shlex.quote(LOCAL_REDIS)}")
            _say(f"CELERY_BROKER_URL is not set: using {LOCAL_REDIS}")
        else:
            _say(
                "no Redis answers on 127.0.0.1:6379 and CELERY_BROKER_URL is not set: "
                "the tests marked celery_worker will be skipped (set CELERY_BROKER_URL=redis://...)"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="workout", help="the local database used when DATABASE_URL is not set")
    args = parser.parse_args(argv)
    for line in exports(dict(os.environ), args.name):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
