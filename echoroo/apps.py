"""The core domain app: datasets, sites, recordings, clips, tags, model runs, predictions."""

from django.apps import AppConfig


class EchorooConfig(AppConfig):
    name = "echoroo"
    verbose_name = "Echoroo ML"
