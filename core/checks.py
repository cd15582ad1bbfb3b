"""System checks of Workout's own settings (`manage.py check`; `check --deploy` adds the deployment ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning

from core.encryption import KEYS_SETTING, key_problems


@register(Tags.security)
def webhook_secret_keys_valid(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A key that is not a Fernet key would fail every encryption and signature: refused at start."""
    return [
        Error(f"{KEYS_SETTING}: {problem}.", hint="Make one with `Fernet.generate_key()`.", id="workout.E001")
        for problem in key_problems(list(getattr(settings, KEYS_SETTING, [])))
    ]


@register(Tags.security, deploy=True)
def webhook_secret_keys_set(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Unset, clients' webhook secrets are encrypted under a key derived from SECRET_KEY: whoever has that key
    reads them, and changing SECRET_KEY without keeping it in SECRET_KEY_FALLBACKS makes them unreadable."""
    if getattr(settings, KEYS_SETTING, None):
        return []
    return [
        CheckWarning(
            f"{KEYS_SETTING} is not set: clients' webhook secrets are encrypted under a key derived from SECRET_KEY.",
            hint=(
                f"Set {KEYS_SETTING} to one or more Fernet keys, newest first (make one with "
                '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`).'
            ),
            id="workout.W001",
        )
    ]


_PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
    "django.core.cache.backends.filebased.FileBasedCache",
)


@register(Tags.caches, deploy=True)
def cache_shared_across_processes(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The API's per-token limit is counted in the default cache: one that each process (or host) keeps for
    itself lets every gunicorn worker allow the whole limit again."""
    backend = settings.CACHES["default"]["BACKEND"]
    if backend not in _PER_PROCESS_CACHES:
        return []
    return [
        CheckWarning(
            f"The default cache is {backend.rsplit('.', 1)[-1]}: each process counts its own API requests, so the "
            "per-token limit (WORKOUT_API_RATE) is multiplied by the number of processes.",
            hint="Set CACHE_URL to a cache every process shares, e.g. CACHE_URL=redis://redis:6379/1.",
            id="workout.W002",
        )
    ]


@register(Tags.security)
def kept_files_private(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Agreements and documents are served only by views that check who asks: MEDIA_ROOT must not be a directory
    the static files are served from (WhiteNoise serves STATIC_ROOT to anyone), and an S3 storage needs its bucket."""
    errors: list[CheckMessage] = []
    if settings.WORKOUT_FILE_STORAGE == "s3" and not settings.WORKOUT_S3_BUCKET:
        errors.append(
            Error("WORKOUT_FILE_STORAGE=s3 needs WORKOUT_S3_BUCKET.", hint="Name the bucket.", id="workout.E002")
        )
    media = Path(settings.MEDIA_ROOT).resolve()
    for served in [Path(settings.STATIC_ROOT), *map(Path, settings.STATICFILES_DIRS)]:
        served = served.resolve()
        if media == served or served in media.parents or media in served.parents:
            errors.append(
                Error(
                    f"MEDIA_ROOT ({media}) and the static files ({served}) overlap: kept documents would be served "
                    "to anyone.",
                    hint="Point MEDIA_ROOT at a directory of its own, outside STATIC_ROOT and STATICFILES_DIRS.",
                    id="workout.E003",
                )
            )
    return errors
