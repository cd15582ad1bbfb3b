from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings


@pytest.fixture(autouse=True)
def _plain_http_and_static() -> Iterator[None]:
    """The UI under the test client: plain HTTP (the production redirect to HTTPS off), static files without the
    manifest (no collectstatic in tests), a fast password hasher (signing in is not what is measured), and a small
    Monte Carlo (the pages show the figures; their accuracy is tests/restructuring/test_feasibility_model.py's)."""
    with override_settings(
        WORKOUT_FEASIBILITY_PATHS=500,
        SECURE_SSL_REDIRECT=False,
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    ):
        yield
