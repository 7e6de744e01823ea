"""Routes of the inference jobs API."""

from rest_framework.routers import DefaultRouter

router = DefaultRouter()

urlpatterns = router.urls
