"""URL routes of the reports pages: datasets and their recordings, their charts, species summaries.

The exports are downloads of the API (reports.api.exports), offered by forms on the job and dataset pages.
"""

from reports import browse_pages, summary_pages

urlpatterns = browse_pages.urlpatterns + summary_pages.urlpatterns
