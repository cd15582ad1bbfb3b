"""The compliance pages (read-only): the audit trail, its export and verification, a case's whole history."""

from __future__ import annotations

from django.urls import URLPattern, path

from core import views

urlpatterns: list[URLPattern] = [
    path("audit/", views.audit_search, name="audit"),
    path("audit/export.csv", views.audit_export, name="audit-export"),
    path("audit/verify/", views.audit_verify_view, name="audit-verify"),
    path("audit/cases/<int:case_id>/", views.case_history, name="audit-case"),
]
