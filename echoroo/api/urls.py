"""API routes of the core domain."""

from rest_framework.routers import DefaultRouter

from echoroo.api import views

router = DefaultRouter()
# The API's root is echoroo.api.root, listing every app's routes, not only these.
router.include_root_view = False
router.register("datasets", views.DatasetViewSet, basename="dataset")
router.register("sites", views.SiteViewSet, basename="site")
router.register("recordings", views.RecordingViewSet, basename="recording")
router.register("clips", views.ClipViewSet, basename="clip")
router.register("tags", views.TagViewSet, basename="tag")
router.register("model-runs", views.ModelRunViewSet, basename="model-run")
router.register("clip-predictions", views.ClipPredictionViewSet, basename="clip-prediction")
router.register("annotations", views.ClipAnnotationViewSet, basename="annotation")

urlpatterns = router.urls
