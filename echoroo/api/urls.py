"""API routes of the core domain."""

from rest_framework.routers import DefaultRouter

router = DefaultRouter()

urlpatterns = router.urls
