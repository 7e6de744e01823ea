"""The classifiers app: label sets, classifiers trained on stored embeddings, and the jobs that apply them."""

from django.apps import AppConfig


class ClassifiersAppConfig(AppConfig):
    name = "classifiers"
    verbose_name = "Custom classifiers"

    def ready(self) -> None:
        from classifiers.deletion_rules import register_rules

        register_rules()
