"""One shape for every error the API returns::

    {"error": {"code": "negotiation_conflict", "message": "proposal 7 is accepted: ...", "field": null}}

`code` is stable and machine-readable (a domain error's `code`, or REST framework's: `required`, `invalid`,
`not_authenticated`, `throttled`, ...); `message` is for people; `field` names the offending input (dotted for
nested values, `reduce[0]` for list items) or is null. Domain errors (core.errors) map to statuses here and
nowhere else, by their kind: NotFound 404, Conflict (and django-fsm's disallowed transitions) 409,
PermissionDenied 403, Invalid and any other 400; the body keeps the error's own code. Anything unexpected is
logged and answered 500 with the same shape, never a page or a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.core import exceptions as django_exceptions
from django.http import Http404
from django_fsm import TransitionNotAllowed
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.errors import Conflict, Invalid, NotFound, PermissionDenied, WorkoutError

logger = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An error the API itself raises, with its status, code and (optionally) the field."""

    def __init__(self, message: str, *, code: str, status_code: int, field: str | None = None) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.field = field


class RequestTooLargeError(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the request body is larger than {limit} bytes",
            code="request_too_large",
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


# The status of each kind of domain error (core/errors.py): the one place they meet HTTP.
WORKOUT_STATUSES: tuple[tuple[type[WorkoutError], int], ...] = (
    (NotFound, status.HTTP_404_NOT_FOUND),
    (Conflict, status.HTTP_409_CONFLICT),
    (PermissionDenied, status.HTTP_403_FORBIDDEN),
    (Invalid, status.HTTP_400_BAD_REQUEST),
)


def workout_status(error: WorkoutError) -> int:
    return next((code for kind, code in WORKOUT_STATUSES if isinstance(error, kind)), status.HTTP_400_BAD_REQUEST)


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response:
    """REST framework's EXCEPTION_HANDLER: every exception becomes one response of the one shape."""
    if isinstance(exc, WorkoutError):
        field = exc.context.get("field")
        set_rollback()
        return Response(error_body(exc.code, exc.message, str(field) if field else None), status=workout_status(exc))
    if isinstance(exc, TransitionNotAllowed):
        set_rollback()
        return Response(error_body("transition_not_allowed", str(exc)), status=status.HTTP_409_CONFLICT)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, django_exceptions.PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    elif isinstance(exc, django_exceptions.RequestDataTooBig):
        exc = ApiError(
            str(exc) or "the request body is too large",
            code="request_too_large",
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = str(exc.auth_header)  # type: ignore[attr-defined]
        if getattr(exc, "wait", None):
            headers["Retry-After"] = f"{int(exc.wait) + 1}"  # type: ignore[attr-defined]
        code, message, field = first_error(exc.detail)
        if isinstance(exc, ApiError) and exc.field:
            field = exc.field
        set_rollback()
        return Response(error_body(code, message, field), status=exc.status_code, headers=headers)
    logger.exception("API: unexpected error", exc_info=exc)
    set_rollback()
    return Response(
        error_body("server_error", "an unexpected error occurred; it has been logged"),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def first_error(detail: Any, field: str | None = None) -> tuple[str, str, str | None]:
    """The first error of a REST framework detail (a string, a list or a dict of them), and where it is."""
    if isinstance(detail, Mapping):
        if not detail:
            return "invalid", "invalid input", field
        name, inner = next(iter(detail.items()))
        if name in ("non_field_errors", "detail"):
            return first_error(inner, field)
        if isinstance(name, int):  # a ListField's child errors are keyed by index
            return first_error(inner, f"{field}[{name}]" if field else f"[{name}]")
        return first_error(inner, f"{field}.{name}" if field else str(name))
    if isinstance(detail, Sequence) and not isinstance(detail, str):
        for index, item in enumerate(detail):
            if item:  # a list serializer marks valid items with {}
                nested = isinstance(item, Mapping | list)
                return first_error(item, f"{field}[{index}]" if nested and field else field)
        return "invalid", "invalid input", field
    code = getattr(detail, "code", None) or "invalid"
    return str(code), str(detail), field


class ErrorDetailSerializer(serializers.Serializer):
    """What went wrong: a stable code, a message and the input at fault."""

    code = serializers.CharField(help_text="Machine-readable, stable: switch on this.")
    message = serializers.CharField(help_text="For people; may change.")
    field = serializers.CharField(allow_null=True, help_text="The input at fault (dotted when nested), or null.")


class ErrorSerializer(serializers.Serializer):
    """The body of every error response."""

    error = ErrorDetailSerializer()
