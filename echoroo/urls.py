"""URL routes: admin, the API under /api/v1/, its schema and docs, and the health check."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from echoroo import views
from echoroo.api.root import ApiRootView, TokenView

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico wherever a page names no icon (the admin, the API's pages): the pages' own.
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("echoroo/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    # The one root of the API: every app's routes are included below without a root of their own.
    path("api/v1/", ApiRootView.as_view(), name="api-root"),
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
    path("api/v1/auth/token/", TokenView.as_view(), name="api-token"),
    path("api/v1/auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("echoroo.page_urls")),
    path("", include("reports.urls")),
]

handler400 = "echoroo.views.bad_request"
handler404 = "echoroo.views.not_found"
handler500 = "echoroo.views.server_error"
