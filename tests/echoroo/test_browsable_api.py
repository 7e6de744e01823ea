"""The browsable API as a person uses it: the forms it shows, what they accept, its root, and getting a token."""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from inference import services
from inference.config import InferenceConfig
from inference.models import InferenceJob

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/inference/jobs/"
HTML = {"HTTP_ACCEPT": "text/html"}


@pytest.fixture
def client(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def job(field_dataset, user) -> InferenceJob:
    return services.create_job(model_name="birdnet", dataset=field_dataset, by=user)


def test_the_start_page_shows_a_bare_button_not_the_creation_form(client, job):
    for action in ("start", "retry"):
        page = client.get(f"{JOBS}{job.uuid}/{action}/", **HTML).content.decode()
        assert 'name="model_name"' not in page and 'name="config"' not in page, action
        assert 'method="POST"' in page or 'method="post"' in page.lower(), action


def test_start_ignores_a_form_body_and_answers_the_job_with_its_recordings(
    client, job, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{JOBS}{job.uuid}/start/", {"model_name": "perch"}, format="multipart")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "running" and body["model_run"]["name"] == "birdnet"
    assert body["recordings"]["pending"] == 2


def test_a_blank_model_version_is_the_latest(client, field_dataset):
    response = client.post(
        JOBS, {"model_name": "birdnet", "model_version": "", "dataset_uuid": str(field_dataset.uuid)}, format="json"
    )
    assert response.status_code == 201, response.content
    assert InferenceJob.objects.get(uuid=response.json()["uuid"]).model_run.name == "birdnet"


def test_the_creation_form_has_a_box_for_the_config_as_json(client, db):
    page = client.get(JOBS, **HTML).content.decode()
    assert '<textarea name="config"' in page


def test_the_html_form_sets_the_config_as_json_and_blank_is_the_defaults(client, field_dataset):
    form = {"model_name": "birdnet", "model_version": "", "dataset_uuid": str(field_dataset.uuid)}
    typed = client.post(JOBS, {**form, "config": '{"confidence_threshold": 0.25, "overlap": 1}'}, **HTML)
    assert typed.status_code == 201, typed.content
    settings = InferenceJob.objects.latest("created_at").settings
    assert (settings.confidence_threshold, settings.overlap) == (0.25, 1.0)
    blank = client.post(JOBS, {**form, "config": ""}, format="multipart")
    assert blank.status_code == 201, blank.content
    assert InferenceJob.objects.latest("created_at").settings == InferenceConfig()


@pytest.mark.parametrize("config", ["[1, 2]", '"overlap"', "{not json"])
def test_a_config_that_is_not_a_json_object_is_a_400_naming_config_and_writes_nothing(client, field_dataset, config):
    form = {"model_name": "birdnet", "dataset_uuid": str(field_dataset.uuid), "config": config}
    response = client.post(JOBS, form, format="multipart")
    assert response.status_code == 400 and "config" in response.json(), response.content
    assert not InferenceJob.objects.exists()


def test_the_api_root_links_every_part_of_the_api(client, db):
    from django.urls import get_resolver

    body = client.get("/api/v1/").json()
    linked = {url.split("/api/v1/", 1)[1].split("/")[0] for url in body.values() if "/api/v1/" in url}
    # Every first segment of a route under /api/v1/, whichever app includes it, is linked from the root.
    segments = set()

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern).lstrip("^")
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns, route)
            elif route.startswith("api/v1/") and route != "api/v1/":
                segments.add(re.match(r"[\w-]*", route.removeprefix("api/v1/")).group())

    walk(get_resolver().url_patterns, "")
    assert {"inference", "embeddings", "search", "classifiers", "datasets"} <= segments
    assert segments - linked == set()
    assert body["docs"].endswith("/api/docs/") and body["auth-token"].endswith("/api/v1/auth/token/")
    # Some links need a query (a 400 naming what is missing) and some take only a POST (405); the others answer.
    needs_query = {
        "classifier-examples": "label",
        "calibration": "job",
        "sound-event-annotation-export": "dataset",
        "detection-exports": "format",
        "species-summary": "dataset",
        "detection-history": "dataset",
    }
    post_only = {"embedding-search", "audio-search", "sound-event-annotation-import", "auth-token"}
    assert set(needs_query) | post_only <= set(body)
    for name, url in body.items():
        response = client.get(url)
        if name in needs_query:
            assert response.status_code == 400 and needs_query[name] in response.json(), name
        elif name in post_only:
            assert response.status_code == 405, name
        else:
            assert response.status_code == 200, name


def test_there_is_one_api_root_and_the_breadcrumbs_name_it_once(client, job):
    assert client.get("/api/v1/inference/").status_code == 404
    page = client.get(f"{JOBS}{job.uuid}/", **HTML).content.decode()
    breadcrumbs = page[page.index('class="breadcrumb"') : page.index("</ul>", page.index('class="breadcrumb"'))]
    assert breadcrumbs.count("Echoroo ML API") == 1 and "Api Root" not in breadcrumbs
    assert 'href="/api/v1/"' in breadcrumbs and 'href="/api/v1/inference/jobs/"' in breadcrumbs


def test_a_token_is_had_for_a_username_and_password_and_opens_the_api(user, db):
    anonymous = APIClient()
    assert anonymous.get("/api/v1/datasets/").status_code == 403
    wrong = anonymous.post("/api/v1/auth/token/", {"username": user.username, "password": "not it"}, format="json")
    assert wrong.status_code == 400 and "token" not in wrong.json()
    response = anonymous.post(
        "/api/v1/auth/token/", {"username": user.username, "password": "pw-ecologist-1"}, format="json"
    )
    assert response.status_code == 200, response.content
    token = response.json()["token"]
    assert APIClient().get("/api/v1/datasets/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    form = APIClient().post("/api/v1/auth/token/", {"username": user.username, "password": "pw-ecologist-1"})
    assert form.json()["token"] == token


def test_the_token_endpoint_refuses_deeply_nested_json_with_a_400(db):
    body = "[" * 10_000 + "]" * 10_000
    response = APIClient().post("/api/v1/auth/token/", body, content_type="application/json")
    assert response.status_code == 400
