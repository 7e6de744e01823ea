"""The reports app: exports as BirdNET-Analyzer writes them, species summaries, detection histories and effort,
charts, and the pages that browse datasets."""

from django.apps import AppConfig


class ReportsAppConfig(AppConfig):
    name = "reports"
    verbose_name = "Reports"
