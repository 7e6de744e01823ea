"""URL routes: admin, the API under /api/v1/, its schema and docs, and the health check."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from echoroo import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/inference/", include("inference.api.urls")),
    path("api/v1/classifiers/", include("classifiers.api.urls")),
    path("classifiers/", include("classifiers.urls")),
    path("api/v1/", include("validation.api.urls")),
    path("validation/", include("validation.urls")),
    path("api/v1/", include("search.api.urls")),
    path("api/v1/", include("reports.api.urls")),
    path("api/v1/", include("annotations.api.transfer_urls")),
    path("api/v1/", include("annotations.api.urls")),
    path("api/v1/", include("echoroo.api.urls")),
    path("api/v1/auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("echoroo.page_urls")),
    path("", include("reports.urls")),
]

handler400 = "echoroo.views.bad_request"
handler404 = "echoroo.views.not_found"
handler500 = "echoroo.views.server_error"
