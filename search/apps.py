"""The search app: the similarity search service and its API."""

from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
