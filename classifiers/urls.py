"""URL routes of the classifier pages, under /classifiers/."""

from django.urls import path

from classifiers import pages

urlpatterns = [
    path("", pages.classifier_list, name="classifiers"),
    path("label/", pages.label_page, name="classifier-label"),
    path("train/", pages.train, name="classifier-train"),
    path("jobs/<uuid:job_uuid>/cancel/", pages.cancel, name="classifier-job-cancel"),
    path("<uuid:classifier_uuid>/", pages.classifier_page, name="classifier"),
    path("<uuid:classifier_uuid>/apply/", pages.apply, name="classifier-apply"),
]
