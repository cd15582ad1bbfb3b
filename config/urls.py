from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from core.api.docs import RedocView, SwaggerView, redoc_bundle

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SwaggerView.as_view(), name="api-docs"),
    path("api/redoc/", RedocView.as_view(), name="api-redoc"),
    path("api/redoc/redoc.standalone.js", redoc_bundle, name="api-redoc-bundle"),
    path("api/v1/", include("config.api_urls")),
    path("", include("config.web_urls")),
]
