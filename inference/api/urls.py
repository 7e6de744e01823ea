"""Routes of the inference jobs API."""

from rest_framework.routers import DefaultRouter

from inference.api import views

router = DefaultRouter()
router.register("jobs", views.InferenceJobViewSet, basename="inference-job")

urlpatterns = router.urls
