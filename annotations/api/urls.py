"""Routes of the sound event annotation API, included under /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from annotations.api import views

router = SimpleRouter()
router.register("sound-event-annotations", views.SoundEventAnnotationViewSet, basename="sound-event-annotation")

urlpatterns = [path("species-names/", views.SpeciesNamesView.as_view(), name="species-names"), *router.urls]
