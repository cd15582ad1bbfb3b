"""Cases, proposals and what hangs off them in the admin, to look things up: read-only, like every page of the
admin (core/admin_site.py makes every ModelAdmin so). They change through the services, which check the four eyes
and audit every change."""

from __future__ import annotations

from django.contrib import admin

from restructuring.models import (
    Approval,
    ApprovalLimit,
    Case,
    CollateralDemand,
    CollateralTopUp,
    FeasibilityReport,
    Installment,
    LiquidationOrder,
    LiquidationPlan,
    MessageTemplate,
    Notification,
    Proposal,
    ReductionOrder,
)


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["id", "account", "state", "band", "margin_ratio", "call_amount", "deadline", "opened_at"]
    list_filter = ["state", "band"]
    list_select_related = ["account"]
    search_fields = ["account__code"]
    raw_id_fields = ["account"]


class LiquidationOrderInline(admin.TabularInline):
    model = LiquidationOrder
    extra = 0


@admin.register(LiquidationPlan)
class LiquidationPlanAdmin(admin.ModelAdmin):
    list_display = ["id", "case", "status", "days", "expected_proceeds", "impact_cost", "shortfall", "created_at"]
    list_filter = ["status"]
    list_select_related = ["case"]
    raw_id_fields = ["case"]
    inlines = [LiquidationOrderInline]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "case", "kind", "channel", "recipient", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["kind", "channel", "status"]
    list_select_related = ["case"]
    raw_id_fields = ["case", "template"]


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    """The versions of the client messages' texts (changed on the templates pages, with a second person's review)."""

    list_display = ["id", "kind", "channel", "locale", "version", "status", "created_by", "published_by"]
    list_filter = ["kind", "channel", "locale", "status"]
    raw_id_fields = ["based_on", "created_by", "published_by"]


@admin.register(FeasibilityReport)
class FeasibilityReportAdmin(admin.ModelAdmin):
    list_display = ["id", "case", "trigger", "created_at", "debt", "liquidation_value", "recommended"]
    list_filter = ["trigger", "model_version"]
    list_select_related = ["case"]
    raw_id_fields = ["case"]


class ApprovalInline(admin.TabularInline):
    model = Approval
    extra = 0
    fields = ["approver", "version", "terms_hash", "limit", "senior", "override_reason", "created_at"]


class InstallmentInline(admin.TabularInline):
    model = Installment
    extra = 0


@admin.register(Proposal)
class ProposalAdmin(admin.ModelAdmin):
    list_display = ["id", "case", "round", "name", "kind", "source", "state", "version", "expected_pv", "created_at"]
    list_filter = ["state", "kind", "source"]
    list_select_related = ["case"]
    search_fields = ["case__account__code", "name"]
    raw_id_fields = ["case", "rule_set", "feasibility_report", "made_by", "countered_from"]
    inlines = [ApprovalInline, InstallmentInline]


@admin.register(Approval)
class ApprovalAdmin(admin.ModelAdmin):
    list_display = ["id", "proposal", "approver", "version", "limit", "senior", "created_at"]
    list_filter = ["senior"]
    list_select_related = ["proposal", "approver"]
    search_fields = ["approver__username"]
    raw_id_fields = ["proposal", "approver"]


@admin.register(ApprovalLimit)
class ApprovalLimitAdmin(admin.ModelAdmin):
    list_display = ["user", "currency", "amount"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    raw_id_fields = ["user"]


@admin.register(Installment)
class InstallmentAdmin(admin.ModelAdmin):
    list_display = ["proposal", "number", "due", "total", "balance", "status", "paid_amount", "paid_at"]
    list_filter = ["status"]
    list_select_related = ["proposal"]
    raw_id_fields = ["proposal"]


@admin.register(CollateralDemand)
class CollateralDemandAdmin(admin.ModelAdmin):
    list_display = ["proposal", "amount", "due", "met_at"]
    list_select_related = ["proposal"]
    raw_id_fields = ["proposal"]


@admin.register(CollateralTopUp)
class CollateralTopUpAdmin(admin.ModelAdmin):
    list_display = ["id", "account", "amount", "status", "declared_at", "decided_at", "decided_by"]
    list_filter = ["status"]
    list_select_related = ["account", "decided_by"]
    search_fields = ["account__code", "reference"]
    raw_id_fields = ["account", "decided_by"]


@admin.register(ReductionOrder)
class ReductionOrderAdmin(admin.ModelAdmin):
    list_display = ["id", "proposal", "position_id", "instrument", "quantity", "created_at"]
    list_select_related = ["proposal", "instrument"]
    raw_id_fields = ["proposal", "instrument"]
