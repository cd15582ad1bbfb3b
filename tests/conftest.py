from __future__ import annotations

import os

import pytest
from django.db import connection


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgres` need the real database. They are skipped, with the reason, only when no
    PostgreSQL is configured; under CI that is an error, never a skip."""
    if connection.vendor == "postgresql":
        return
    needing = [item for item in items if item.get_closest_marker("postgres")]
    if not needing:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("CI must run on PostgreSQL: set DATABASE_URL=postgres://...")
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://... to run it")
    for item in needing:
        item.add_marker(skip)
