from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _message_templates_ensure(sender: AppConfig, **kwargs: Any) -> None:
    from restructuring.services.message_templates import message_templates_ensure

    message_templates_ensure()


class RestructuringConfig(AppConfig):
    name = "restructuring"

    def ready(self) -> None:
        from restructuring import checks  # noqa: F401 (registers the system checks)

        # The shipped message templates, where none is installed (restructuring/services/message_templates.py).
        post_migrate.connect(_message_templates_ensure, sender=self, dispatch_uid="restructuring.message_templates")
