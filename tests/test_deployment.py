"""The deployment artefacts: production settings pass Django's deploy checks; docker-compose.yml is valid."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from config.queues import URGENT_LANES, queue_names

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "a-production-secret-key-that-is-long-and-random-3f9c2b7e1d5a8c4f6e0b9d2a7c5e1f3b",
    "ALLOWED_HOSTS": "workout.example.com",
    "DATABASE_URL": "sqlite:////tmp/workout-deploy-check.sqlite3",
    # A cache every process shares, as docker-compose.yml sets it (the check does not connect to it).
    "CACHE_URL": "redis://127.0.0.1:6379/1",
    # Two Fernet keys, as during a rotation (fixed here: any `Fernet.generate_key()` output would do).
    "WORKOUT_WEBHOOK_SECRET_KEYS": (
        "q5ZNn0vA7ml2Wv0ZcJ3oJ5l9-6A3sFQ2b8o2a0mQhXc=,Zm9yLXRlc3RzLW9ubHktMzItYnl0ZXMtb2Yta2V5ISE="
    ),
}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A deployment's environment: none of the test session's switches (the browser tests allow Django's ORM
    # under their event loop, which `check --deploy` rightly flags).
    dropped = {
        "DEBUG",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
        "WORKOUT_WEBHOOK_SECRET_KEYS",
        "CACHE_URL",
    }
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(args, cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_production_settings() -> None:
    result = _run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_about_a_cache_each_process_keeps_for_itself() -> None:
    # without CACHE_URL the API's per-token limit is counted per process: multiplied by the gunicorn workers
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "CACHE_URL"}
    result = _run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0
    assert "workout.W002" in result.stdout + result.stderr
    assert "WORKOUT_API_RATE" in result.stdout + result.stderr


def test_check_deploy_refuses_the_development_key() -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = _run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


def test_check_deploy_reports_missing_webhook_secret_keys() -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "WORKOUT_WEBHOOK_SECRET_KEYS"}
    result = _run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0
    assert "workout.W001" in result.stdout + result.stderr
    assert "WORKOUT_WEBHOOK_SECRET_KEYS is not set" in result.stdout + result.stderr


def test_check_refuses_a_webhook_secret_key_that_is_not_a_fernet_key() -> None:
    result = _run([sys.executable, "manage.py", "check"], {**PRODUCTION_ENV, "WORKOUT_WEBHOOK_SECRET_KEYS": "short"})
    assert result.returncode != 0
    assert "workout.E001" in result.stdout + result.stderr
    assert "short" not in result.stdout + result.stderr  # a key is never printed back


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        # .ci/run installs it; a developer's machine may not have it: say what to do, never pass silently.
        pytest.fail("docker-compose is not installed: apt-get install docker-compose (it validates without an engine)")
    return found


def test_docker_compose_file_is_valid_and_starts_the_whole_stack() -> None:
    # given
    compose = _docker_compose()

    # when
    valid = _run([compose, "config", "-q"], {"SECRET_KEY": "x"})
    services = _run([compose, "config", "--services"], {"SECRET_KEY": "x"})

    # then
    assert valid.returncode == 0, valid.stderr
    assert sorted(services.stdout.split()) == ["beat", "postgres", "redis", "web", "worker", "worker-urgent"]


def test_the_compose_workers_cover_every_queue_and_one_serves_the_urgent_ones_alone() -> None:
    """docker-compose.yml's queue layout (config/queues.py): one worker for the urgent queues alone, one for all."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    commands = {name: service["command"] for name, service in services.items() if name.startswith("worker")}
    urgent, general = commands["worker-urgent"], commands["worker"]
    assert urgent[urgent.index("-Q") + 1].split(",") == queue_names("workout", URGENT_LANES)
    assert "-Q" not in general  # without -Q a worker consumes every queue in CELERY_TASK_QUEUES
    assert [queue.name for queue in settings.CELERY_TASK_QUEUES] == queue_names(settings.CELERY_TASK_DEFAULT_QUEUE)
    assert "CELERY_QUEUE" not in services["worker"].get("environment", {})  # the names above are the defaults


def test_docker_compose_requires_a_secret_key() -> None:
    compose = _docker_compose()
    env = {"SECRET_KEY": ""}
    result = _run([compose, "config", "-q"], env)
    assert result.returncode != 0
    assert "set SECRET_KEY" in result.stderr


def _database_options(env: dict[str, str]) -> str:
    script = "from django.conf import settings; print(settings.DATABASES['default'].get('OPTIONS', {}))"
    result = _run(
        [sys.executable, "-c", f"import django; django.setup(); {script}"],
        {**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_postgresql_connections_have_a_connect_timeout_and_no_jit_unless_asked() -> None:
    postgres = {**PRODUCTION_ENV, "DATABASE_URL": "postgres://workout@db.example.com:5432/workout"}
    assert _database_options(postgres) == "{'connect_timeout': 10, 'options': '-c jit=off'}"
    assert _database_options({**postgres, "DATABASE_JIT": "true", "DATABASE_CONNECT_TIMEOUT": "3"}) == (
        "{'connect_timeout': 3}"
    )
    # the embedded SQLite gets neither
    assert "connect_timeout" not in _database_options(PRODUCTION_ENV)


# ------------------------------------------------------------------------ where agreements and documents are kept


def _default_storage(env: dict[str, str]) -> str:
    script = (
        "from django.core.files.storage import storages; s = storages['default']; "
        "print(type(s).__name__, getattr(s, 'bucket_name', None), getattr(s, 'endpoint_url', None), "
        "getattr(s, 'default_acl', None), getattr(s, 'file_overwrite', None), getattr(s, 'location', None))"
    )
    result = _run(
        [sys.executable, "-c", f"import django; django.setup(); {script}"],
        {**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_files_are_kept_on_disk_by_default_and_in_an_s3_bucket_by_setting(tmp_path: Path) -> None:
    on_disk = _default_storage({**PRODUCTION_ENV, "MEDIA_ROOT": str(tmp_path)})
    in_s3 = _default_storage(
        {
            **PRODUCTION_ENV,
            "WORKOUT_FILE_STORAGE": "s3",
            "WORKOUT_S3_BUCKET": "workout-documents",
            "WORKOUT_S3_ENDPOINT_URL": "https://s3.example.com",
        }
    )

    assert on_disk == f"FileSystemStorage None None None None {tmp_path}"
    # private objects, never overwritten (the storage is built, not connected to)
    assert in_s3 == "S3Storage workout-documents https://s3.example.com private False"  # no key prefix


def test_check_refuses_an_s3_storage_without_a_bucket_and_kept_files_among_the_static_ones() -> None:
    no_bucket = _run([sys.executable, "manage.py", "check"], {**PRODUCTION_ENV, "WORKOUT_FILE_STORAGE": "s3"})
    served = _run([sys.executable, "manage.py", "check"], {**PRODUCTION_ENV, "MEDIA_ROOT": str(ROOT / "static")})
    unknown = _run([sys.executable, "manage.py", "check"], {**PRODUCTION_ENV, "WORKOUT_FILE_STORAGE": "ftp"})

    assert no_bucket.returncode != 0
    assert "workout.E002" in no_bucket.stdout + no_bucket.stderr
    assert served.returncode != 0
    assert "workout.E003" in served.stdout + served.stderr
    assert unknown.returncode != 0
    assert "WORKOUT_FILE_STORAGE='ftp': one of filesystem, s3" in unknown.stderr


def test_the_compose_web_and_workers_share_the_kept_files() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("web", "worker", "worker-urgent"):
        assert "media:/app/media" in services[name]["volumes"], name
        assert services[name]["environment"]["MEDIA_ROOT"] == "/app/media"
