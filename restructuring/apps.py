from django.apps import AppConfig


class RestructuringConfig(AppConfig):
    name = "restructuring"

    def ready(self) -> None:
        from restructuring import checks  # noqa: F401 (registers the system checks)
