from django.apps import AppConfig


class RestructuringConfig(AppConfig):
    name = "restructuring"
