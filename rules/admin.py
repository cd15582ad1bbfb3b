"""Rule sets and their rules in the admin, to look the policy up: read-only, like every page of the admin
(core/admin_site.py makes every ModelAdmin so). The policy changes through the rules pages, as drafts that
another senior publishes, every step audited."""

from __future__ import annotations

from django.contrib import admin

from rules.models import Rule, RuleSet


class RuleInline(admin.TabularInline):
    model = Rule
    extra = 0
    fields = ["priority", "name", "condition", "action", "parameters", "package", "stop_processing"]


@admin.register(RuleSet)
class RuleSetAdmin(admin.ModelAdmin):
    list_display = ["version", "name", "status", "created_by", "created_at", "published_by", "published_at"]
    list_filter = ["status"]
    list_select_related = ["created_by", "published_by"]
    search_fields = ["name"]
    raw_id_fields = ["cloned_from", "created_by", "published_by"]
    inlines = [RuleInline]


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ["name", "rule_set", "priority", "action", "package", "stop_processing"]
    list_filter = ["action"]
    list_select_related = ["rule_set"]
    search_fields = ["name", "condition"]
    raw_id_fields = ["rule_set"]
