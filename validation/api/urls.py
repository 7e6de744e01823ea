"""API routes of the validation app, under /api/v1/: verdicts, calibration, threshold sets.

A job's review sample, similar detections and evaluation are under /api/v1/inference/jobs/{uuid}/
(validation.api.jobs, mixed into the jobs viewset).
"""

from django.urls import path
from rest_framework.routers import SimpleRouter

from validation.api import views

# Not a DefaultRouter: its API root would answer /api/v1/ before the core API's (echoroo.api.urls).
router = SimpleRouter()
router.register("verdicts", views.VerdictViewSet, basename="verdict")
router.register("threshold-sets", views.ThresholdSetViewSet, basename="threshold-set")

urlpatterns = [
    path("calibration/", views.CalibrationView.as_view(), name="calibration"),
    *router.urls,
]
