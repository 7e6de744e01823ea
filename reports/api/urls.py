"""API routes of the reports app, under /api/v1/: export downloads, species summaries, detection histories."""

from reports.api import exports, summaries

urlpatterns = exports.urlpatterns + summaries.urlpatterns
