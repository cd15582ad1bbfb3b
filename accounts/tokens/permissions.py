"""The API's policies by caller, all resting on a valid token (REST framework's default, `DenyAll`, is in
core/api/permissions.py: a view that names no policy refuses everyone):

- `IsClient`: a client's token. The views then only ever query the caller's own rows, so another client's id
  is "not found" (404), never "forbidden" and never data.
- `IsOperator`: a member of staff's token (a role other than client), whose user holds every permission the
  view names in `operator_permissions` (superusers hold all). Clients get 403.
- `IsTokenHolder`: any valid token (a caller managing its own tokens).
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.models import ApiToken
from core.access import is_staff_member
from core.api.principals import ClientPrincipal


class IsTokenHolder(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ApiToken)


class IsClient(BasePermission):
    message = "this endpoint is for clients: use a client's token"

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ApiToken) and isinstance(request.user, ClientPrincipal)


class IsOperator(BasePermission):
    message = "this endpoint is for operations staff"

    def has_permission(self, request: Request, view: Any) -> bool:
        user: Any = request.user
        if not isinstance(request.auth, ApiToken) or isinstance(user, ClientPrincipal):
            return False
        if not is_staff_member(user):
            return False
        return bool(user.has_perms(getattr(view, "operator_permissions", ())))
