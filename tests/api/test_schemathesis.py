"""schemathesis against the live schema (RELIABILITY.md "fuzzing"): every operation of /api/schema/, called
in process through the WSGI application with generated input, valid (positive) and invalid (negative): no
server error, and every response conforms to the document (status documented, body matching its schema,
content type). Half the valid cases name the caller's own objects and a fresh Idempotency-Key, so that the
happy paths are fuzzed too, not only the 404s."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import World

HTTPS = {"X-Forwarded-Proto": "https"}  # the settings redirect plain HTTP (SECURE_SSL_REDIRECT)
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 10}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _own_ids(world: World) -> dict[str, int]:
    return {
        "/api/v1/accounts/": world.a_account.pk,
        "/api/v1/cases/": world.a_case.pk,
        "/api/v1/offers/": world.a_offer.pk,
        "/api/v1/top-ups/": world.a_top_up.pk,
        "/api/v1/webhooks/": world.a_webhook.pk,
        "/api/v1/documents/": world.a_document.pk,
        "/api/v1/operations/sweeps/": world.sweep.pk,
    }


@pytest.fixture
def wsgi_in_the_test_transaction() -> Iterator[Any]:
    """The WSGI application, serving requests on the test's own connection and transaction: as Django's test
    client does, the request signals do not close the connection (which would end the transaction)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.mark.django_db
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_every_operation_conforms_to_the_schema_and_never_fails(
    world: World, mode: GenerationMode, wsgi_in_the_test_transaction: Any
) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_in_the_test_transaction, headers=HTTPS)
    schema.config.generation.update(with_security_parameters=False)  # the token is ours to give, below
    own_ids = _own_ids(world)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 20
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS
    unsatisfiable: list[str] = []

    for operation in operations:
        token = world.tokens["operator" if operation.path.startswith("/api/v1/operations/") else "client_a"]
        own = next((pk for prefix, pk in own_ids.items() if operation.path.startswith(prefix)), None)
        try:
            _fuzz(operation, mode, checks, token=token, own_id=own, own_account=world.a_account.pk)
        except hypothesis.errors.Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.label
            unsatisfiable.append(operation.label)  # nothing in this operation's input can be made invalid
    assert len(unsatisfiable) <= 2, unsatisfiable


def _fuzz(
    operation: Any, mode: GenerationMode, checks: list[Any], *, token: str, own_id: int | None, own_account: int
) -> None:
    @hypothesis.settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode), use_own=st.booleans())
    def call(case: Any, use_own: bool) -> None:
        if use_own and mode is GenerationMode.POSITIVE:
            if own_id is not None and "id" in (case.path_parameters or {}):
                case.path_parameters["id"] = own_id
            if case.headers and "Idempotency-Key" in case.headers:
                case.headers["Idempotency-Key"] = str(uuid.uuid4())  # generated keys repeat: 422s
            if isinstance(case.body, dict) and "account" in case.body:
                case.body["account"] = own_account
        case.call_and_validate(headers={"Authorization": f"Bearer {token}", **HTTPS}, checks=checks)

    call()
