from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: events are written by core.audit only, and the table is append-only."""

    list_display = [
        "sequence",
        "created_at",
        "action",
        "object_type",
        "object_id",
        "account_id",
        "actor",
        "system_actor",
        "from_state",
        "to_state",
    ]
    list_filter = ["object_type", "system_actor"]
    list_select_related = ["actor"]
    search_fields = ["=action", "=object_type"]
    show_full_result_count = False  # no COUNT(*) over the whole trail on every page

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
