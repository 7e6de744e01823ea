"""The annotations app: sound event annotations (boxes people draw or bring in), Raven/AOEF in and out, evaluation."""

from django.apps import AppConfig


class AnnotationsAppConfig(AppConfig):
    name = "annotations"
    verbose_name = "Annotations"

    def ready(self) -> None:
        from annotations.deletion_rules import register_rules

        register_rules()
