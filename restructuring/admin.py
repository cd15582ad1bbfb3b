from __future__ import annotations

from django.contrib import admin

from restructuring.models import Case, LiquidationOrder, LiquidationPlan, Notification


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["id", "account", "state", "band", "margin_ratio", "call_amount", "deadline", "opened_at"]
    list_filter = ["state", "band"]
    list_select_related = ["account"]
    search_fields = ["account__code"]
    raw_id_fields = ["account"]
    # The state changes through the services only (and is a protected FSM field).
    readonly_fields = ["state"]


class LiquidationOrderInline(admin.TabularInline):
    model = LiquidationOrder
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in LiquidationOrder._meta.fields]


@admin.register(LiquidationPlan)
class LiquidationPlanAdmin(admin.ModelAdmin):
    list_display = ["id", "case", "status", "days", "expected_proceeds", "impact_cost", "shortfall", "created_at"]
    list_filter = ["status"]
    list_select_related = ["case"]
    raw_id_fields = ["case"]
    inlines = [LiquidationOrderInline]
    # Plans change through the liquidation services only.
    readonly_fields = [f.name for f in LiquidationPlan._meta.fields]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "case", "kind", "channel", "recipient", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["kind", "channel", "status"]
    list_select_related = ["case"]
    raw_id_fields = ["case"]
    readonly_fields = [f.name for f in Notification._meta.fields]
