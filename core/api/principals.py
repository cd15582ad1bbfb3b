"""Who calls the API, besides a user: a client. The API's plumbing (idempotency scopes) and policies tell the
two apart by this class; a client's token (accounts/tokens/authentication.py) authenticates as one. It holds
plain values, so core knows nothing of the client's model."""

from __future__ import annotations

from typing import Any


class ClientPrincipal:
    """Who a client's token speaks for: the client. Not a user of the UI; it holds no permission."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, *, client_id: int, code: str) -> None:
        self.client_id = client_id
        self.code = code

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def has_perms(self, perms: Any, obj: Any = None) -> bool:
        return False

    def get_username(self) -> str:
        return f"client:{self.code}"

    def __str__(self) -> str:
        return self.get_username()
