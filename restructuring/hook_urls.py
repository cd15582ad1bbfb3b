"""What providers post to us, outside any session: their delivery reports, each authenticated by the provider's
signature (restructuring/views/provider_hooks.py). Not staff pages: tests/restructuring/test_sms.py holds them."""

from __future__ import annotations

from django.urls import URLPattern, path

from restructuring.views import provider_hooks

urlpatterns: list[URLPattern] = [
    path("sms/twilio/", provider_hooks.twilio_status, name="hook-sms-twilio"),
]
