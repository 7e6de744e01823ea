"""URL routes of the validation pages, under /validation/."""

from validation import review_pages, threshold_pages

urlpatterns = review_pages.urlpatterns + threshold_pages.urlpatterns
