"""The validation app: review detections by ear, verdicts, calibration per species, per-species threshold sets."""

from django.apps import AppConfig


class ValidationAppConfig(AppConfig):
    name = "validation"
    verbose_name = "Validation"
