"""A client's endpoints start here (`ClientView`), and the caller's tokens have theirs: list them, revoke one."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import ApiToken
from accounts.services.api_tokens import api_token_revoke
from accounts.tokens.permissions import IsClient, IsTokenHolder
from core.api.fields import FastRepresentation
from core.api.principals import ClientPrincipal
from core.api.views import ApiView


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
