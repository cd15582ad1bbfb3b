from __future__ import annotations

from django.contrib import admin

from restructuring.models import Case


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["id", "account", "state", "band", "margin_ratio", "call_amount", "deadline", "opened_at"]
    list_filter = ["state", "band"]
    list_select_related = ["account"]
    search_fields = ["account__code"]
    raw_id_fields = ["account"]
    # The state changes through the services only (and is a protected FSM field).
    readonly_fields = ["state"]
