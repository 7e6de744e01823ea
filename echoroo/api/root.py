"""The API's root, /api/v1/: a link to every part of the API, so the browsable API can be explored from one page.

Each app includes its routes under /api/v1/ without a root of its own (a router's root there would
answer /api/v1/ with that app's routes only, and put a second "Api Root" in the breadcrumbs).
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

# What the root lists, in this order: the name shown -> the URL's name. Endpoints of one item (a clip's
# embeddings, a job's detections…) are reached from the items themselves, and the docs list them all.
PARTS = {
    # The library
    "datasets": "dataset-list",
    "sites": "site-list",
    "recordings": "recording-list",
    "clips": "clip-list",
    "tags": "tag-list",
    "model-runs": "model-run-list",
    "clip-predictions": "clip-prediction-list",
    "annotations": "annotation-list",
    # Running models
    "inference-jobs": "inference-job-list",
    # Similarity search
    "embedding-search": "embedding-search",
    "audio-search": "audio-search",
    # Custom classifiers
    "classifiers": "classifier-list",
    "classifier-labels": "classifier-label-list",
    "classifier-examples": "classifier-example-list",
    "classifier-jobs": "classifier-job-list",
    # Validation
    "verdicts": "verdict-list",
    "threshold-sets": "threshold-set-list",
    "calibration": "calibration",
    # Sound event annotations
    "sound-event-annotations": "sound-event-annotation-list",
    "sound-event-annotation-import": "sound-event-annotation-import",
    "sound-event-annotation-export": "sound-event-annotation-export",
    "species-names": "species-names",
    # Reports
    "detection-exports": "export-detections",
    "species-summary": "species-summary",
    "detection-history": "detection-history",
    # Access and documentation
    "auth-token": "api-token",
    "schema": "schema",
    "docs": "api-docs",
}


class ApiRootView(APIView):
    """Every part of the Echoroo ML API. Log in (top right) or send `Authorization: Token <key>`; a key comes from
    `POST /api/v1/auth/token/` with your username and password. The documentation of every endpoint is at `docs`."""

    schema = None  # (not an endpoint of the API's schema)

    def get_view_name(self) -> str:
        return "Echoroo ML API"

    def get(self, request: Request) -> Response:
        return Response({name: request.build_absolute_uri(reverse(url_name)) for name, url_name in PARTS.items()})


class TokenView(ObtainAuthToken):
    """Your API key: POST your username and password (JSON or a form); send the key back as
    `Authorization: Token <key>`. The same key is answered each time, until an admin deletes it."""

    # The API's own parsers (which refuse deeply nested JSON with a 400), not DRF's defaults for this view.
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES

    def get_view_name(self) -> str:
        return "API token"

    @extend_schema(summary="Get your API key from your username and password", auth=[])
    def post(self, request: Request, *args, **kwargs) -> Response:
        return super().post(request, *args, **kwargs)
