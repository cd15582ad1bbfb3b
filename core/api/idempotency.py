"""Idempotency-Key: every state-changing POST is done once per key, and its first response is replayed.

How (Stripe's semantics, PostgreSQL's guarantees): the request's record is inserted first, in the same
transaction as the request's effect, under the unique (scope, key). A second request with the key blocks on that
insert until the first commits, then finds the record and replays its status and body (with the header
`Idempotent-Replayed: true`); if the first rolled back, the second proceeds as the first. So ten requests at once
with one key produce one effect and ten identical responses, and a crash in the middle leaves no record behind
(the retry does the work). The record holds the SHA-256 of the method, path and body: the same key with another
body is refused, 422 `idempotency_key_reused`. Keys are scoped to the caller: one client's key never meets
another's.

What is kept: the responses of requests that were executed, successes and domain errors alike (a retry gets the
same answer). Not kept: input the API refused before executing (malformed JSON, a serializer's 400: fix the body
and retry with the same key) and server errors (5xx: the transaction rolled back, retry).

A response that holds a secret shown once (a webhook endpoint's, `idempotent(sensitive=True)`) is kept encrypted
(core/encryption.py, the webhook secrets' keys), so that the table never holds it in clear; the replay decrypts
it. A stored body is JSON, which never starts as a Fernet token does, so the two are told apart by their start.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, overload

from django.core.files.uploadedfile import UploadedFile
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.http import HttpResponse, HttpResponseBase
from django.utils import timezone
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.errors import ApiError
from core.api.principals import ClientPrincipal
from core.encryption import TOKEN_PREFIX, secret_decrypt, secret_encrypt
from core.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
REPLAYED_HEADER = "Idempotent-Replayed"

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


class _Discard(Exception):
    """Leave no record: the response is returned, the transaction (record and effect) rolled back."""

    def __init__(self, response: Response) -> None:
        self.response = response


@overload
def idempotent(handler: _Handler) -> _Handler: ...


@overload
def idempotent(*, sensitive: bool = False) -> Callable[[_Handler], _Handler]: ...


def idempotent(handler: Any = None, *, sensitive: bool = False) -> Any:
    """Decorate a view's `post`: the handler runs at most once per (caller, key). `sensitive`: its response holds
    a secret, kept encrypted in the record."""

    def decorate(handler: _Handler) -> _Handler:
        @wraps(handler)
        def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
            return idempotency_run(view, request, lambda: handler(view, request, *args, **kwargs), sensitive=sensitive)

        wrapper.idempotent = True  # type: ignore[attr-defined]  # the schema documents the header
        return wrapper  # type: ignore[return-value]

    return decorate(handler) if handler is not None else decorate


def idempotency_run(
    view: Any, request: Request, execute: Callable[[], Any], *, sensitive: bool = False
) -> HttpResponseBase:
    key = _key(request)
    scope = _scope(request)
    request_hash = _request_hash(request)
    claimed = False
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                scope=scope,
                key=key,
                request_hash=request_hash,
                method=request.method or "",
                path=request.get_full_path()[:500],
                created_at=timezone.now(),
            )
            claimed = True
            try:
                with transaction.atomic():  # a savepoint: a failed request rolls back to here, the record stays
                    response = execute()
            except Exception as exc:  # rendered as the API renders it: REST framework's handler, ours
                response = view.handle_exception(exc)
                if isinstance(exc, exceptions.APIException):  # refused before executing: not kept
                    raise _Discard(response) from None
            if response.status_code >= 500:
                raise _Discard(response)
            record.response_status = response.status_code
            body = _rendered(view, request, response)
            record.response_body = secret_encrypt(body) if sensitive else body
            record.save(update_fields=["response_status", "response_body"])
    except _Discard as discarded:
        return discarded.response
    except IntegrityError:
        if claimed:
            raise
        # The key was used, and that request committed (the insert waited for it): replay it, or refuse.
        return _replay(IdempotencyRecord.objects.get(scope=scope, key=key), request_hash)
    return response


def _rendered(view: Any, request: Request, response: Response) -> str:
    """The body as it is sent: rendered here once, so that the replay is the same bytes."""
    response = view.finalize_response(request, response)
    response.render()
    return response.content.decode("utf-8")


def _replay(record: IdempotencyRecord, request_hash: str) -> HttpResponse:
    if record.request_hash != request_hash:
        raise ApiError(
            f"this {HEADER} was used with another request ({record.method} {record.path}, or another body): "
            "use a new key for a new request",
            code="idempotency_key_reused",
            status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
            field=HEADER,
        )
    body = record.response_body
    if body.startswith(TOKEN_PREFIX):  # a sensitive response, kept encrypted
        body = secret_decrypt(body)
    return HttpResponse(
        body,
        status=record.response_status,
        content_type="application/json",
        headers={REPLAYED_HEADER: "true"},
    )


def _key(request: Request) -> str:
    key = request.headers.get(HEADER, "")
    if not key:
        raise ApiError(
            f"this request changes state: send an {HEADER} header (a unique string per request, e.g. a UUID)",
            code="idempotency_key_required",
            status_code=status.HTTP_400_BAD_REQUEST,
            field=HEADER,
        )
    if len(key) > MAX_KEY_LENGTH or not all("!" <= ch <= "~" for ch in key):
        raise ApiError(
            f"the {HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters without spaces",
            code="idempotency_key_invalid",
            status_code=status.HTTP_400_BAD_REQUEST,
            field=HEADER,
        )
    return key


def _scope(request: Request) -> str:
    user: Any = request.user
    if isinstance(user, ClientPrincipal):
        return f"client:{user.client_id}"
    return f"user:{user.pk}"


def _request_hash(request: Request) -> str:
    """SHA-256 of the method, path and parsed body (JSON canonically; files by their content's hash)."""
    data: Any = request.data
    if hasattr(data, "lists"):  # a QueryDict (form or multipart; REST framework puts the files in it too)
        data = {name: [_plain(v) for v in values] for name, values in data.lists()}
    document = {"method": request.method, "path": request.get_full_path(), "data": data}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, UploadedFile):
        digest = hashlib.sha256()
        for chunk in value.chunks():
            digest.update(chunk)
        value.seek(0)
        return {"name": value.name, "sha256": digest.hexdigest()}
    return value
