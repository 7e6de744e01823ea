"""URL routes of the reports pages: datasets and their recordings, species summaries and histories, exports."""

from reports import browse_pages, export_pages, summary_pages

urlpatterns = browse_pages.urlpatterns + summary_pages.urlpatterns + export_pages.urlpatterns
