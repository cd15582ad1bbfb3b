from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core import (
            checks,  # noqa: F401 (registers the system checks)
            lookups,
        )

        lookups.register()


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin with Workout's site as the default one (core/admin_site.py: the second factor, read-only),
    installed in place of "django.contrib.admin" so that every app's `admin.site.register` lands on it."""

    default = False  # core's own configuration is CoreConfig; this one is named in INSTALLED_APPS
    default_site = "core.admin_site.WorkoutAdminSite"
