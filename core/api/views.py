"""The base of every API view, and the endpoints of the API itself: the caller's tokens, and a JSON 404 for
paths that name nothing."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.mixins import ListModelMixin
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.authentication import ClientPrincipal
from core.api.errors import ApiError, RequestTooLargeError
from core.api.fields import FastRepresentation
from core.api.permissions import IsClient, IsTokenHolder
from core.api.tokens import api_token_revoke
from core.models import ApiToken


class ApiView(generics.GenericAPIView):
    """Refuses a body larger than the setting named by `max_body_setting` (413) before it is read: Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE bounds neither a JSON body REST framework reads from the stream nor uploaded
    files. (Without a Content-Length, Django reads no body at all.) Refuses query parameters it does not know
    (400 `unknown_parameter`): `?stat=offered` must not quietly list everything."""

    max_body_setting = "WORKOUT_API_MAX_BODY_BYTES"
    query_parameters: tuple[str, ...] = ()  # those the view reads, besides the pagination's

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        limit = int(getattr(settings, self.max_body_setting))
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            raise RequestTooLargeError(limit)
        known = set(self.query_parameters)
        if isinstance(self, ListModelMixin) and request.method == "GET":
            known |= {"page", "page_size"}
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            raise ApiError(
                f"unknown query parameter {unknown[0]!r}", code="unknown_parameter", status_code=400, field=unknown[0]
            )


class ClientView(ApiView):
    """A client's endpoint: the views query the caller's own rows only (another's id is 404)."""

    permission_classes = [IsClient]

    @property
    def client_id(self) -> int:
        user = self.request.user
        assert isinstance(user, ClientPrincipal)
        return user.client_id


# --------------------------------------------------------------------------------------------- tokens


class TokenSerializer(FastRepresentation, serializers.ModelSerializer[ApiToken]):
    """An API token: its prefix and lifetime, never its secret."""

    current = serializers.SerializerMethodField(help_text="Whether this is the token of this request.")

    class Meta:
        model = ApiToken
        fields = ["prefix", "name", "created_at", "expires_at", "revoked_at", "last_used_at", "current"]
        read_only_fields = fields

    def get_current(self, token: ApiToken) -> bool:
        return token.pk == getattr(getattr(self.context.get("request"), "auth", None), "pk", None)


def _own_tokens(request: Request) -> Any:
    token = request.auth
    assert isinstance(token, ApiToken)
    if token.client_id is not None:
        return ApiToken.objects.filter(client_id=token.client_id)
    return ApiToken.objects.filter(user=token.user)


@extend_schema(tags=["tokens"])
class TokenListView(ApiView, generics.ListAPIView[ApiToken]):
    """The caller's tokens (of its client, or of its user), newest first; never their secrets."""

    permission_classes = [IsTokenHolder]
    serializer_class = TokenSerializer

    def get_queryset(self) -> Any:
        return _own_tokens(self.request).order_by("-created_at", "-pk")


@extend_schema(tags=["tokens"])
class TokenDetailView(ApiView, generics.RetrieveAPIView[ApiToken]):
    """One of the caller's tokens; DELETE revokes it at once (the token of this request too: then it is the
    last request it makes). Revoking a revoked token changes nothing."""

    permission_classes = [IsTokenHolder]
    serializer_class = TokenSerializer
    lookup_field = "prefix"
    lookup_url_kwarg = "prefix"

    def get_queryset(self) -> Any:
        return _own_tokens(self.request)

    @extend_schema(responses={200: TokenSerializer})
    def delete(self, request: Request, prefix: str) -> Response:
        token = self.get_object()
        user: Any = request.user
        if isinstance(user, ClientPrincipal):
            revoked = api_token_revoke(prefix=token.prefix, system_actor=user.get_username())
        else:
            revoked = api_token_revoke(prefix=token.prefix, actor=user)
        return Response(self.get_serializer(revoked).data)


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


__all__ = ["ApiView", "ClientView", "IsClient", "NotFoundView", "TokenDetailView", "TokenListView"]
