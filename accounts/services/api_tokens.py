"""API tokens: made, listed and revoked (services; `manage.py api_token` and the /tokens/ endpoints call them).
The rest of the tokens' machinery (authentication, policies, throttle, endpoints) is accounts/tokens/.

A token reads `wo_<prefix>_<secret>`: `wo_` lets secret scanners recognise it, the 8 hex characters of the
prefix name it in lists and revocations, the secret is 32 random bytes (base64url). Only the SHA-256 of the
whole token is stored: a fast hash is enough for 256 random bits (nobody can guess through them, so a slow
password hash would buy nothing and cost every request), and a copy of the table gives no usable token.
Every token expires; revoking is immediate and final. Making and revoking are audit events (never with the
secret or its hash).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit_events import API_TOKEN_CREATE, API_TOKEN_REVOKE
from accounts.models import ApiToken, Client
from core.access import is_staff_member
from core.audit import audit_record
from core.audit_catalogue import AuditAction
from core.errors import NotFoundError, ValidationError

TOKEN_START = "wo_"  # noqa: S105 (the public start of every token, not a secret)
MAX_DAYS = 366
DEFAULT_DAYS = 90


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # the whole token: shown once, never stored


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def api_token_create(
    *,
    client_id: int | None = None,
    user_id: int | None = None,
    days: float = DEFAULT_DAYS,
    name: str = "",
    actor: AbstractBaseUser | None = None,
    system_actor: str = "api_token",
) -> IssuedToken:
    """A new token for a client, or for a member of staff (the operations endpoints), valid for `days`."""
    if (client_id is None) == (user_id is None):
        raise ValidationError("a token is for one client or one member of staff", field="client")
    if not 0 < days <= MAX_DAYS:
        raise ValidationError(f"days {days}: a token lives more than 0 and at most {MAX_DAYS} days", field="days")
    owner = ""
    if client_id is not None:
        client = Client.objects.filter(pk=client_id).first()
        if client is None:
            raise NotFoundError(f"client {client_id} does not exist", field="client")
        owner = f"client:{client.code}"
    else:
        assert user_id is not None
        user = get_user_model().objects.filter(pk=user_id).first()
        if user is None:
            raise NotFoundError(f"user {user_id} does not exist", field="user")
        if not is_staff_member(user):
            raise ValidationError(f"{user.get_username()} is not a member of staff (a role other than client)")
        owner = f"user:{user.get_username()}"
    now = timezone.now()
    for _attempt in range(5):  # a prefix is 32 random bits: a collision is rare, and then we draw again
        prefix = secrets.token_hex(4)
        secret = f"{TOKEN_START}{prefix}_{secrets.token_urlsafe(32)}"
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    prefix=prefix,
                    digest=token_digest(secret),
                    client_id=client_id,
                    user_id=user_id,
                    name=name[:100],
                    created_at=now,
                    expires_at=now + timedelta(days=days),
                )
                _audit(token, API_TOKEN_CREATE, owner, actor, system_actor)
            return IssuedToken(token=token, secret=secret)
        except IntegrityError:
            continue
    raise RuntimeError("could not draw a free token prefix")  # pragma: no cover


def api_token_revoke(
    *,
    prefix: str,
    client_id: int | None = None,
    actor: AbstractBaseUser | None = None,
    system_actor: str = "api_token",
) -> ApiToken:
    """Revoke a token (idempotent: revoking a revoked token changes nothing). With `client_id`, only that
    client's tokens are found (a client revoking its own)."""
    with transaction.atomic():
        tokens = ApiToken.objects.select_for_update(of=("self",)).filter(prefix=prefix.removeprefix(TOKEN_START))
        if client_id is not None:
            tokens = tokens.filter(client_id=client_id)
        token = tokens.select_related("client", "user").first()
        if token is None:
            raise NotFoundError(f"token {prefix} does not exist", field="prefix")
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            _audit(token, API_TOKEN_REVOKE, _owner(token), actor, system_actor)
    return token


def _owner(token: ApiToken) -> str:
    if token.client is not None:
        return f"client:{token.client.code}"
    assert token.user is not None
    return f"user:{token.user.get_username()}"


def _audit(
    token: ApiToken, action: AuditAction[ApiToken], owner: str, actor: AbstractBaseUser | None, system_actor: str
) -> None:
    audit_record(
        action.entry(
            token,
            actor=actor,
            system_actor="" if actor is not None else system_actor[:64],
            payload={"prefix": token.prefix, "owner": owner, "expires_at": token.expires_at},
        )
    )
