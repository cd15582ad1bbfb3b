"""The book in the admin, to look things up: read-only, like every page of the admin (core/admin_site.py makes
every ModelAdmin so). Cash, positions and loans change through the services, which audit them. The API's tokens
are here too, without their digests (a secret is never shown)."""

from __future__ import annotations

from django.contrib import admin

from accounts import models


@admin.register(models.ClientGroup)
class ClientGroupAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]


@admin.register(models.Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "credit_tier", "group", "external_capacity", "email"]
    list_filter = ["credit_tier"]
    list_select_related = ["group"]
    search_fields = ["code", "name"]


@admin.register(models.WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """A client's webhook endpoints: the secrets show as a mask (core/encryption.py), never their tokens."""

    list_display = ["pk", "client", "url", "state", "disabled_reason", "consecutive_failures", "created_at"]
    list_filter = ["state", "disabled_reason"]
    list_select_related = ["client"]
    search_fields = ["client__code", "url"]


@admin.register(models.MessagePreferences)
class MessagePreferencesAdmin(admin.ModelAdmin):
    list_display = ["client", "locale", "time_zone", "quiet_hours_start", "quiet_hours_end", "by_email", "by_sms"]
    list_filter = ["locale", "by_sms", "by_letter"]
    raw_id_fields = ["client"]
    search_fields = ["client__code"]


class PositionInline(admin.TabularInline):
    model = models.Position
    extra = 0
    raw_id_fields = ["instrument"]


class LoanInline(admin.TabularInline):
    model = models.MarginLoan
    extra = 0


@admin.register(models.MarginAccount)
class MarginAccountAdmin(admin.ModelAdmin):
    list_display = ["code", "client", "mode", "margin_model", "base_currency", "cash"]
    list_filter = ["mode", "margin_model", "base_currency"]
    list_select_related = ["client"]
    search_fields = ["code", "client__code"]
    raw_id_fields = ["client"]
    inlines = [PositionInline, LoanInline]


@admin.register(models.Position)
class PositionAdmin(admin.ModelAdmin):
    list_display = ["account", "instrument", "quantity", "entry_price", "isolated_margin", "updated_at"]
    list_select_related = ["account", "instrument"]
    search_fields = ["account__code", "instrument__symbol"]
    raw_id_fields = ["account", "instrument"]


@admin.register(models.MarginLoan)
class MarginLoanAdmin(admin.ModelAdmin):
    list_display = ["id", "account", "principal", "rate_annual", "accrued_interest", "status", "opened_at"]
    list_filter = ["status"]
    list_select_related = ["account"]
    search_fields = ["account__code"]
    raw_id_fields = ["account"]


@admin.register(models.Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = ["symbol", "kind", "underlying", "strike", "expiry", "option_type", "scenario_class"]
    list_filter = ["kind", "scenario_class", "currency"]
    list_select_related = ["underlying"]
    search_fields = ["symbol"]
    raw_id_fields = ["underlying"]


@admin.register(models.Price)
class PriceAdmin(admin.ModelAdmin):
    list_display = ["instrument", "time", "price", "implied_volatility"]
    list_select_related = ["instrument"]
    raw_id_fields = ["instrument"]
    date_hierarchy = "time"


@admin.register(models.Sweep)
class SweepAdmin(admin.ModelAdmin):
    list_display = ["id", "as_of", "status", "accounts", "positions", "model_version", "finished_at"]
    list_filter = ["status"]


@admin.register(models.SweepShard)
class SweepShardAdmin(admin.ModelAdmin):
    list_display = ["sweep", "account_id_from", "account_id_to", "status", "accounts", "positions"]
    list_filter = ["status"]
    raw_id_fields = ["sweep"]


@admin.register(models.RiskState)
class RiskStateAdmin(admin.ModelAdmin):
    list_display = ["account", "band", "margin_ratio", "equity", "maintenance_requirement", "computed_at"]
    list_filter = ["band"]
    list_select_related = ["account"]
    raw_id_fields = ["account", "sweep"]


@admin.register(models.RiskSnapshot)
class RiskSnapshotAdmin(admin.ModelAdmin):
    list_display = ["account", "band", "previous_band", "reason", "margin_ratio", "computed_at"]
    list_filter = ["band", "reason"]
    list_select_related = ["account"]
    raw_id_fields = ["account", "sweep"]


@admin.register(models.ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "client", "user", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_select_related = ["client", "user"]
    search_fields = ["=prefix", "name", "client__code", "user__username"]
    exclude = ["digest"]
    raw_id_fields = ["client", "user"]
