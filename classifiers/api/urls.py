"""Routes of the classifiers API: labels/, examples/, jobs/, and the classifiers themselves at the root."""

from rest_framework.routers import SimpleRouter

from classifiers.api import views

router = SimpleRouter()
# Before the classifiers' own routes at the root, whose lookup is a uuid and so never "labels" or "jobs".
router.register("labels", views.LabelViewSet, basename="classifier-label")
router.register("examples", views.ExampleViewSet, basename="classifier-example")
router.register("jobs", views.ClassifierJobViewSet, basename="classifier-job")
router.register("", views.ClassifierViewSet, basename="classifier")

urlpatterns = router.urls
