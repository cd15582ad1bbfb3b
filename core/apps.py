from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core import (
            checks,  # noqa: F401 (registers the system checks)
            lookups,
        )
        from core.roles import roles_ensure

        lookups.register()
        # After every app's permissions exist (they are created on post_migrate too): run last by not
        # restricting the sender, and again for each app; it is idempotent.
        post_migrate.connect(roles_ensure, dispatch_uid="core.roles_ensure")


class AdminConfig(admin_apps.AdminConfig):
    """Django's admin with Workout's site as the default one (core/admin_site.py: the second factor, read-only),
    installed in place of "django.contrib.admin" so that every app's `admin.site.register` lands on it."""

    default = False  # core's own configuration is CoreConfig; this one is named in INSTALLED_APPS
    default_site = "core.admin_site.WorkoutAdminSite"
