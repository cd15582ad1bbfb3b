"""The base of every API view, and a JSON 404 for paths that name nothing. (A client's endpoints start from
accounts/tokens/views.py's `ClientView`, where the caller's tokens have theirs too.)"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.mixins import ListModelMixin
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import ApiError, RequestTooLargeError


class ApiView(generics.GenericAPIView):
    """Refuses a body larger than the setting named by `max_body_setting` (413) before it is read: Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE bounds neither a JSON body REST framework reads from the stream nor uploaded
    files. (Without a Content-Length, Django reads no body at all.) Refuses query parameters it does not know
    (400 `unknown_parameter`): `?stat=offered` must not quietly list everything."""

    max_body_setting = "WORKOUT_API_MAX_BODY_BYTES"
    max_body_allowance = 0  # bytes allowed beyond the setting (a multipart form's boundaries and other fields)
    query_parameters: tuple[str, ...] = ()  # those the view reads, besides the pagination's

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        limit = int(getattr(settings, self.max_body_setting)) + self.max_body_allowance
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            raise self.body_too_large(limit)
        known = set(self.query_parameters)
        if isinstance(self, ListModelMixin) and request.method == "GET":
            known |= {"page", "page_size"}
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            raise ApiError(
                f"unknown query parameter {unknown[0]!r}", code="unknown_parameter", status_code=400, field=unknown[0]
            )

    def body_too_large(self, limit: int) -> Exception:
        """The refusal of a body above `limit` bytes (413; an upload may name its own)."""
        return RequestTooLargeError(limit)


# ------------------------------------------------------------------------------------------- downloads


class _AnyAccept(BaseContentNegotiation):
    """A download answers with its file whatever the Accept header asks (application/pdf, */*, nothing), and with
    the API's JSON error when there is no file to give: never 406."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


class DownloadView(ApiView):
    """An endpoint whose answer is a file (an agreement's PDF, a document: core.downloads.file_response), its errors
    JSON as everywhere."""

    content_negotiation_class = _AnyAccept


# ------------------------------------------------------------------------------------------- not found


class NotFoundView(APIView):
    """Every other path under /api/v1/: the API's 404, in its one error shape."""

    permission_classes = [AllowAny]  # it shows nothing, to anyone
    authentication_classes: list[Any] = []
    throttle_classes: list[Any] = []

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise ApiError("no such endpoint", code="not_found", status_code=status.HTTP_404_NOT_FOUND)

    post = put = patch = delete = get


__all__ = ["ApiView", "DownloadView", "NotFoundView"]
