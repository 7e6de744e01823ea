"""Routes of the search API, included under /api/v1/."""

from django.urls import path

from search.api import views

urlpatterns = [
    path("embeddings/search/", views.EmbeddingSearchView.as_view(), name="embedding-search"),
    path("embeddings/clips/<uuid:clip_uuid>/", views.ClipEmbeddingsView.as_view(), name="clip-embeddings"),
    path("embeddings/clips/<uuid:clip_uuid>/similar/", views.SimilarClipsView.as_view(), name="similar-clips"),
    path("search/audio/", views.AudioSearchView.as_view(), name="audio-search"),
]
