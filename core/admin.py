"""The shared records in the admin: the audit trail, the API's idempotency records, operations,
staff enrolments, and what Django and django-otp bring (permissions, authenticators).

Read-only like every page of the admin (core/admin_site.py makes it so for every ModelAdmin); what is here is
what a support person looks for. Secrets are never shown: a token or an enrolment link is stored as a digest,
which is left out too (nothing to look up by it), and an authenticator's key is not shown at all.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import Permission
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.models import AuditEvent, IdempotencyRecord, Operation, StaffEnrolment


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
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


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ["scope", "key", "method", "path", "response_status", "created_at"]
    search_fields = ["=scope", "=key"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ["started_at", "name", "channel", "actor", "system_actor"]
    list_filter = ["channel", "name"]
    list_select_related = ["actor"]
    date_hierarchy = "started_at"


@admin.register(StaffEnrolment)
class StaffEnrolmentAdmin(admin.ModelAdmin):
    list_display = ["user", "issued_by", "issued_by_system", "issued_at", "expires_at", "used_at", "revoked_at"]
    list_select_related = ["user", "issued_by"]
    search_fields = ["user__username"]
    exclude = ["digest"]
    raw_id_fields = ["user", "issued_by"]


@admin.register(Permission)
class PermissionAdmin(admin.ModelAdmin):
    list_display = ["codename", "name", "content_type"]
    list_filter = ["content_type__app_label"]
    list_select_related = ["content_type"]
    search_fields = ["codename", "name"]


# django-otp's own TOTPDevice admin shows the device's key (and a QR code of it, on pages of its own) to whoever may
# view devices: replaced by one that shows which authenticators exist and when they were used, never their key.
if admin.site.is_registered(TOTPDevice):  # django-otp's admin module is imported before ours (INSTALLED_APPS)
    admin.site.unregister(TOTPDevice)


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "confirmed", "created_at", "last_used_at"]
    list_filter = ["confirmed"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    fields = [
        "user",
        "name",
        "confirmed",
        "created_at",
        "last_used_at",
        "throttling_failure_timestamp",
        "throttling_failure_count",
    ]
    raw_id_fields = ["user"]
