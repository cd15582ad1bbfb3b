"""Deny by default. REST framework's DEFAULT_PERMISSION_CLASSES is `DenyAll`: a view that does not name its
policy refuses everyone (401 without a token, 403 with one). The policies a view names are the callers'
(a client, operations staff, any token holder): accounts/tokens/permissions.py, next to the tokens.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class DenyAll(BasePermission):
    message = "this endpoint declares no access policy: it refuses everyone"

    def has_permission(self, request: Request, view: Any) -> bool:
        return False
