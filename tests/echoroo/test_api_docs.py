"""The OpenAPI schema and its docs page: complete, valid, and usable offline."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from drf_spectacular.validation import validate_schema

ENDPOINTS = ["datasets", "sites", "recordings", "clips", "tags", "model-runs", "clip-predictions", "annotations"]
ASSET = re.compile(r"<(?:script|link)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"")


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_a_valid_openapi_document(schema):
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_schema_lists_every_endpoint(schema, endpoint):
    assert f"/api/v1/{endpoint}/" in schema["paths"]
    assert f"/api/v1/{endpoint}/{{uuid}}/" in schema["paths"]


def test_the_schema_documents_the_prediction_filters(schema):
    parameters = {p["name"] for p in schema["paths"]["/api/v1/clip-predictions/"]["get"]["parameters"]}
    assert parameters >= {
        "dataset",
        "recording",
        "model_run",
        "job",
        "species",
        "species__icontains",
        "min_score",
        "start_time_min",
        "start_time_max",
        "recorded_after",
        "recorded_before",
        "thresholds",
        "cursor",
        "page_size",
    }


VALIDATION_PATHS = {
    "/api/v1/verdicts/": {"get", "post"},
    "/api/v1/verdicts/{uuid}/": {"get", "delete"},
    "/api/v1/verdicts/bulk/": {"post"},
    "/api/v1/calibration/": {"get"},
    "/api/v1/threshold-sets/": {"get", "post"},
    "/api/v1/threshold-sets/{uuid}/": {"get", "put", "patch", "delete"},
    "/api/v1/threshold-sets/{uuid}/csv/": {"get"},
    "/api/v1/threshold-sets/import/": {"post"},
    "/api/v1/threshold-sets/from-calibration/": {"post"},
    "/api/v1/inference/jobs/{uuid}/review-sample/": {"get"},
    "/api/v1/inference/jobs/{uuid}/similar/": {"get"},
    "/api/v1/inference/jobs/{uuid}/evaluation/": {"get"},
}


@pytest.mark.parametrize("path", VALIDATION_PATHS)
def test_the_schema_lists_the_validation_endpoints(schema, path):
    assert set(schema["paths"][path]) >= VALIDATION_PATHS[path]


def test_the_schema_documents_the_validation_queries(schema):
    paths = schema["paths"]

    def parameters(path: str) -> set[str]:
        return {p["name"] for p in paths[path]["get"].get("parameters", [])}

    assert parameters("/api/v1/inference/jobs/{uuid}/review-sample/") >= {"species", "per_bin", "seed", "bins"}
    assert parameters("/api/v1/inference/jobs/{uuid}/similar/") >= {"clip", "species", "limit"}
    assert parameters("/api/v1/inference/jobs/{uuid}/evaluation/") >= {"thresholds"}
    assert parameters("/api/v1/inference/jobs/{uuid}/detections/") >= {"thresholds"}
    assert parameters("/api/v1/calibration/") >= {"job", "species"}
    assert parameters("/api/v1/verdicts/") >= {"job", "species", "verdict", "reviewer", "cursor"}


def test_the_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_the_docs_page_loads_its_assets_from_this_server(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = ASSET.findall(html)
    assert any(asset.endswith(".js") for asset in assets) and any(asset.endswith(".css") for asset in assets)
    static_url = "/" + settings.STATIC_URL.lstrip("/")
    for asset in assets:
        assert asset.startswith(static_url), f"{asset} is not served by this server: the docs would need the internet"
        assert finders.find(asset.removeprefix(static_url)), f"{asset} is referenced but no static finder has it"
    assert "/api/schema/" in html
