"""Bearer-token authentication: `Authorization: Bearer wo_<prefix>_<secret>` (accounts/services/api_tokens.py
makes them).

A token is looked up by the SHA-256 of what was sent (one indexed query); unknown, revoked and expired tokens
are refused with 401 and a code that says which. A client's token authenticates as a `ClientPrincipal` (the
client, not a user: core/api/principals.py); a member of staff's as that user. `last_used_at` is written at
most once a minute. The OpenAPI document describes the scheme from here (`TokenAuthenticationScheme`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from accounts.models import ApiToken
from accounts.services.api_tokens import token_digest
from core.api.principals import ClientPrincipal

_LAST_USED_EVERY = timedelta(minutes=1)


# Every request reads its token: one query, written once (the ORM would compile it again on every request).
_LOOKUP_SQL = (
    "SELECT t.id, t.prefix, t.client_id, t.user_id, t.name, t.created_at, t.expires_at, t.revoked_at, "
    "t.last_used_at, c.code FROM core_apitoken t LEFT JOIN accounts_client c ON c.id = t.client_id "
    "WHERE t.digest = %s"
)


def _token_load(digest: str) -> tuple[ApiToken, str] | None:
    """The token (an unsaved-looking but real row: pk and fields as stored) and its client's code."""
    with connection.cursor() as cursor:
        cursor.execute(_LOOKUP_SQL, [digest])
        row = cursor.fetchone()
    if row is None:
        return None
    pk, prefix, client_id, user_id, name, created_at, expires_at, revoked_at, last_used_at, code = row
    token = ApiToken(
        pk=pk,
        prefix=prefix,
        digest=digest,
        client_id=client_id,
        user_id=user_id,
        name=name,
        created_at=created_at,
        expires_at=expires_at,
        revoked_at=revoked_at,
        last_used_at=last_used_at,
    )
    token._state.adding = False
    token._state.db = "default"
    return token, code or ""


class TokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "give the token as: Authorization: Bearer <token>", code="token_invalid"
            )
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("the token is not valid", code="token_invalid") from None
        loaded = _token_load(token_digest(raw))
        if loaded is None:
            raise exceptions.AuthenticationFailed("the token is not valid", code="token_invalid")
        token, client_code = loaded
        now = timezone.now()
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("the token was revoked", code="token_revoked")
        if token.expires_at <= now:
            raise exceptions.AuthenticationFailed("the token has expired", code="token_expired")
        if token.user_id is not None:
            user = get_user_model().objects.filter(pk=token.user_id, is_active=True).first()
            if user is None:
                raise exceptions.AuthenticationFailed("the token's user is inactive", code="token_invalid")
            principal: Any = user
        else:
            assert token.client_id is not None
            principal = ClientPrincipal(client_id=token.client_id, code=client_code)
        if token.last_used_at is None or now - token.last_used_at > _LAST_USED_EVERY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return principal, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = TokenAuthentication
    name = "token"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "wo_<prefix>_<secret>",
            "description": (
                "Send `Authorization: Bearer <token>`. Operations issue a client's tokens with "
                "`manage.py api_token create --client <code> [--days 90]` (the token is shown once; only its "
                "SHA-256 is stored) and revoke them with `manage.py api_token revoke <prefix>`; a client lists "
                "its tokens at GET /api/v1/tokens/ and revokes one at DELETE /api/v1/tokens/{prefix}/. Tokens "
                "expire (90 days by default, at most 366)."
            ),
        }
