"""The inference app: jobs, runtimes, pipeline, storage and tasks."""

from django.apps import AppConfig


class InferenceAppConfig(AppConfig):
    name = "inference"

    def ready(self) -> None:
        from inference.deletion_rules import register_rules

        register_rules()
