"""The classifiers app: label sets, classifiers trained on stored embeddings, and the jobs that apply them."""

from django.apps import AppConfig


class ClassifiersAppConfig(AppConfig):
    name = "classifiers"
    verbose_name = "Custom classifiers"
