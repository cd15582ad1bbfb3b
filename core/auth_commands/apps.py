from __future__ import annotations

from django.apps import AppConfig


class AuthCommandsConfig(AppConfig):
    """Django's `createsuperuser` and `changepassword`, on the record (core.commands). Listed before
    django.contrib.auth in INSTALLED_APPS: of two apps with a command of one name, the first listed wins
    (django.core.management.get_commands)."""

    name = "core.auth_commands"
    label = "auth_commands"
    verbose_name = "Audited user commands"
