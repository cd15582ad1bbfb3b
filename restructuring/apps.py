from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RestructuringConfig(AppConfig):
    name = "restructuring"

    def ready(self) -> None:
        from restructuring import checks  # noqa: F401 (registers the system checks)
        from restructuring.roles import roles_ensure

        # After every app's permissions exist (they are created on post_migrate too): run last by not
        # restricting the sender, and again for each app; it is idempotent.
        post_migrate.connect(roles_ensure, dispatch_uid="restructuring.roles_ensure")
