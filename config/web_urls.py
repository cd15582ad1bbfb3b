"""The officer and compliance UI (server-rendered): login with a second factor, the queue, cases, proposals,
rules, the audit trail."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
