"""The core domain app: datasets, sites, recordings, clips, tags, model runs, predictions."""

from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class EchorooConfig(AppConfig):
    name = "echoroo"
    verbose_name = "Echoroo ML"

    def ready(self) -> None:
        from echoroo import audio

        try:
            audio.use_resampler(settings.RESAMPLER)
        except ValueError as error:
            raise ImproperlyConfigured(str(error)) from error
