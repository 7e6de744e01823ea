"""The classifiers API: label in bulk, list examples, train, apply, cancel, uncertain; login required."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from classifiers import services
from classifiers.models import Classifier, ClassifierJob
from tests.classifiers.conftest import CLIPS, LABEL

pytestmark = pytest.mark.django_db

API = "/api/v1/classifiers/"


@pytest.fixture
def no_queue(monkeypatch):
    monkeypatch.setattr(services, "enqueue_apply", lambda *args: None)


def test_labelling_in_bulk_records_who_and_when(api_client, planted, user):
    clips = planted.clip_uuids[:4]
    response = api_client.post(f"{API}labels/", {"label": LABEL, "polarity": "positive", "clips": clips}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["positives"] == 4 and response.json()["negatives"] == 0

    examples = api_client.get(f"{API}examples/", {"label": LABEL}).json()
    assert examples["count"] == 4
    assert {row["clip"] for row in examples["results"]} == set(clips)
    row = examples["results"][0]
    assert row["labelled_by"] == user.username and row["labelled_at"] and row["polarity"] == "positive"
    assert row["recording_path"].startswith("planted-") and row["end_time"] - row["start_time"] == 3.0

    sets = api_client.get(f"{API}labels/").json()
    assert sets == [{"label": LABEL, "positives": 4, "negatives": 0, "last_labelled_at": sets[0]["last_labelled_at"]}]


def test_examples_filter_by_polarity_and_need_a_label(api_client, labelled):
    negatives = api_client.get(f"{API}examples/", {"label": LABEL, "polarity": "negative", "page_size": 500}).json()
    assert negatives["count"] == 120 and len(negatives["results"]) == 120
    assert {row["polarity"] for row in negatives["results"]} == {"negative"}
    response = api_client.get(f"{API}examples/")
    assert response.status_code == 400 and "label" in response.json()


def test_labelling_unknown_clips_is_a_400_naming_them(api_client, planted):
    unknown = "00000000-0000-4000-8000-000000000000"
    response = api_client.post(
        f"{API}labels/", {"label": LABEL, "polarity": "negative", "clips": [unknown]}, format="json"
    )
    assert response.status_code == 400 and unknown in response.json()["clips"][0]
    response = api_client.post(f"{API}labels/", {"label": LABEL, "polarity": "yes", "clips": []}, format="json")
    assert response.status_code == 400 and {"polarity", "clips"} <= response.json().keys()


def test_training_answers_with_the_metrics(api_client, labelled, user):
    response = api_client.post(API, {"label": LABEL, "source_uuid": str(labelled.run.uuid)}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["version"] == 1 and body["created_by"] == user.username and body["dimension"] == 1024
    assert body["metrics"]["roc_auc"] >= 0.95 and body["latest_job"] is None
    assert body["source"]["uuid"] == str(labelled.run.uuid)
    assert body["model_run"] == {"uuid": body["model_run"]["uuid"], "name": LABEL, "version": "v1"}
    detail = api_client.get(f"{API}{body['uuid']}/").json()
    assert detail["metrics"] == body["metrics"]
    assert api_client.get(API, {"label": LABEL}).json()["count"] == 1


def test_training_with_too_few_labels_is_a_400_saying_what_is_missing(api_client, planted):
    api_client.post(
        f"{API}labels/", {"label": LABEL, "polarity": "positive", "clips": planted.clip_uuids[:6]}, format="json"
    )
    response = api_client.post(API, {"label": LABEL}, format="json")
    assert response.status_code == 400
    assert response.json()["label"][0].endswith("there are 6 positive and 0 negative: label 5 more negatives")
    response = api_client.post(API, {"label": LABEL, "source_uuid": "00000000-0000-4000-8000-000000000000"})
    assert response.status_code == 400 and "source_uuid" in response.json()


def test_apply_starts_a_job_and_a_second_is_a_409(api_client, classifier, no_queue):
    response = api_client.post(f"{API}{classifier.uuid}/apply/")
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "pending" and job["classifier"] == str(classifier.uuid) and job["label"] == LABEL
    assert api_client.post(f"{API}{classifier.uuid}/apply/").status_code == 409
    from classifiers.applying import run_apply_job

    run_apply_job(ClassifierJob.objects.get().pk)
    done = api_client.get(f"{API}jobs/{job['uuid']}/").json()
    assert (done["status"], done["processed_clips"], done["progress"]) == ("completed", CLIPS, 100.0)
    assert api_client.get(f"{API}{classifier.uuid}/").json()["latest_job"]["uuid"] == job["uuid"]


def test_only_the_creator_or_staff_may_cancel_a_job(api_client, classifier, no_queue, django_user_model, staff):
    job = api_client.post(f"{API}{classifier.uuid}/apply/").json()
    other = APIClient()
    other.force_authenticate(django_user_model.objects.create_user("someone-else"))
    assert other.delete(f"{API}jobs/{job['uuid']}/").status_code == 403
    admin = APIClient()
    admin.force_authenticate(staff)
    response = admin.delete(f"{API}jobs/{job['uuid']}/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"


def test_uncertain_returns_unlabelled_clips_nearest_half(api_client, classifier, labelled):
    response = api_client.get(f"{API}{classifier.uuid}/uncertain/", {"limit": 7})
    assert response.status_code == 200
    body = response.json()
    assert body["scored_from"] == "sample" and len(body["clips"]) == 7
    distances = [abs(row["score"] - 0.5) for row in body["clips"]]
    assert distances == sorted(distances)
    labelled_uuids = set(labelled.uuids(labelled.positive, 40) + labelled.uuids(~labelled.positive, 120))
    assert not {row["clip"] for row in body["clips"]} & labelled_uuids
    assert api_client.get(f"{API}{classifier.uuid}/uncertain/", {"limit": "lots"}).status_code == 400


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", ""),
        ("post", ""),
        ("get", "labels/"),
        ("post", "labels/"),
        ("get", "examples/?label=x"),
        ("get", "jobs/"),
        ("get", "{uuid}/"),
        ("post", "{uuid}/apply/"),
        ("get", "{uuid}/uncertain/"),
    ],
)
def test_every_endpoint_needs_a_logged_in_user(classifier, method, path):
    response = getattr(APIClient(), method)(API + path.format(uuid=classifier.uuid))
    assert response.status_code == 403
    assert not ClassifierJob.objects.exists() and Classifier.objects.count() == 1


def test_the_browsable_apply_page_is_a_bare_button_and_answers_the_job(api_client, classifier, no_queue):
    page = api_client.get(f"{API}{classifier.uuid}/apply/", HTTP_ACCEPT="text/html").content.decode()
    assert 'name="label"' not in page and 'name="source_uuid"' not in page
    response = api_client.post(f"{API}{classifier.uuid}/apply/", {"label": "ignored"}, format="multipart")
    assert response.status_code == 202 and response.json()["classifier"] == str(classifier.uuid)


def test_another_users_labels_cannot_be_cleared_or_flipped_but_staff_may(api_client, planted, user, staff):
    from django.contrib.auth import get_user_model

    clips = planted.clip_uuids[:3]
    assert api_client.post(f"{API}labels/", {"label": LABEL, "polarity": "positive", "clips": clips}).status_code == 200
    other = APIClient()
    other.force_authenticate(get_user_model().objects.create_user(username="birder", password="pw-birder-1"))
    for polarity in ("clear", "negative"):
        response = other.post(f"{API}labels/", {"label": LABEL, "polarity": polarity, "clips": clips}, format="json")
        assert response.status_code == 403, response.content
        assert "3 of these clips are labelled 'Planted call' by ecologist" in response.json()["detail"]
    examples = api_client.get(f"{API}examples/", {"label": LABEL}).json()["results"]
    assert {(row["polarity"], row["labelled_by"]) for row in examples} == {("positive", user.username)}
    by_staff = APIClient()
    by_staff.force_authenticate(staff)
    response = by_staff.post(f"{API}labels/", {"label": LABEL, "polarity": "clear", "clips": clips}, format="json")
    assert response.status_code == 200 and response.json()["positives"] == 0
