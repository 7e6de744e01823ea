"""The inference app: jobs, runtimes, pipeline, storage and tasks."""

from django.apps import AppConfig


class InferenceAppConfig(AppConfig):
    name = "inference"
