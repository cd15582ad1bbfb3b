"""The compliance pages (read-only, restructuring/views/compliance.py): the audit trail, its export and
verification, a case's whole history, the messages sent and their export."""

from __future__ import annotations

from django.urls import URLPattern, path

from restructuring.views import compliance

urlpatterns: list[URLPattern] = [
    path("audit/", compliance.audit_search, name="audit"),
    path("audit/export.csv", compliance.audit_export, name="audit-export"),
    path("audit/verify/", compliance.audit_verify_view, name="audit-verify"),
    path("audit/cases/<int:case_id>/", compliance.case_history, name="audit-case"),
    path("audit/messages/", compliance.messages_search_view, name="audit-messages"),
    path("audit/messages/export.csv", compliance.messages_export_view, name="audit-messages-export"),
]
