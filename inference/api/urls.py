"""Routes of the inference jobs API."""

from rest_framework.routers import DefaultRouter

from inference.api import views

router = DefaultRouter()
# No root at /api/v1/inference/: the API has one root, /api/v1/ (echoroo.api.root).
router.include_root_view = False
router.register("jobs", views.InferenceJobViewSet, basename="inference-job")

urlpatterns = router.urls
