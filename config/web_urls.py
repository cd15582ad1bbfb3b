"""The officer and compliance UI (server-rendered): login with a second factor, staff enrolment, the queue, cases,
proposals, rules, the audit trail, the administrators' staff page; and the providers' signed delivery reports
(hooks/)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path

from core import auth_views as sign_in
from core import preference_views

urlpatterns: list[URLPattern | URLResolver] = [
    path("login/", sign_in.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/two-factor/", sign_in.two_factor_setup, name="two-factor-setup"),
    path("enrol/<str:token>/", sign_in.enrol, name="enrol"),
    path("account/language/", preference_views.language_choose, name="language-choose"),
    path("", sign_in.home, name="home"),
    path("", include("restructuring.compliance_urls")),
    path("", include("restructuring.urls")),
    path("rules/", include("rules.urls")),
    path("staff/", include("restructuring.staff_urls")),
    path("hooks/", include("restructuring.hook_urls")),
]
