"""The core domain's REST API under /api/v1/: authentication, CRUD, filters, pagination."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from echoroo.models import (
    SPECIES,
    Clip,
    ClipAnnotation,
    ClipPrediction,
    ClipPredictionTag,
    Dataset,
    ModelRun,
    Recording,
    Site,
    Tag,
)
from inference.models import InferenceJob

pytestmark = pytest.mark.django_db

API = "/api/v1/"
LIST_ENDPOINTS = [
    "datasets",
    "sites",
    "recordings",
    "clips",
    "tags",
    "model-runs",
    "clip-predictions",
    "annotations",
]
BLACKBIRD = "Turdus merula_Eurasian Blackbird"
ROBIN = "Erithacus rubecula_European Robin"
GREAT_TIT = "Parus major_Great Tit"


def sha(n: int) -> str:
    return f"{n:064x}"


def make_recording(dataset: Dataset, name: str, **fields) -> Recording:
    fields = {
        "sha256": hashlib.sha256(name.encode()).hexdigest(),
        "duration": 60.0,
        "samplerate": 48000,
        "channels": 1,
        **fields,
    }
    return Recording.objects.create(dataset=dataset, path=f"{name}.wav", **fields)


def predict(clip: Clip, by: InferenceJob | ModelRun, **scores: float) -> ClipPrediction:
    """A job's detection (by a job) or a classifier's score (by its run), one species tag per keyword: blackbird=0.9."""
    if isinstance(by, InferenceJob):
        prediction = ClipPrediction.objects.create(clip=clip, model_run=by.model_run, job=by)
    else:
        prediction = ClipPrediction.objects.create(clip=clip, model_run=by)
    for name, score in scores.items():
        tag, _ = Tag.objects.get_or_create(
            key=SPECIES, value={"blackbird": BLACKBIRD, "robin": ROBIN, "tit": GREAT_TIT}[name]
        )
        ClipPredictionTag.objects.create(clip_prediction=prediction, tag=tag, score=score)
    return prediction


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


def uuids(response) -> set[str]:
    return {item["uuid"] for item in results(response)}


@pytest.fixture
def dataset(user) -> Dataset:
    return Dataset.objects.create(name="Wetlands 2026", created_by=user)


@pytest.fixture
def world() -> SimpleNamespace:
    """Two datasets, three clips, two jobs with three detections of known scores, and a classifier's score."""
    wetlands = Dataset.objects.create(name="Wetlands 2026")
    forest = Dataset.objects.create(name="Forest 2026")
    dawn = make_recording(wetlands, "dawn", recorded_at=datetime(2026, 4, 1, 5, 30, tzinfo=UTC))
    dusk = make_recording(forest, "dusk", recorded_at=datetime(2026, 4, 20, 19, 0, tzinfo=UTC))
    birdnet = ModelRun.objects.create(name="BirdNET", version="2.4")
    perch = ModelRun.objects.create(name="Perch", version="2.0")
    classifier = ModelRun.objects.create(
        name="classifier", version="blackbird-1", kind=ModelRun.Kind.CLASSIFIER, source=birdnet
    )
    birdnet_job = InferenceJob.objects.create(model_run=birdnet, dataset=wetlands)
    perch_job = InferenceJob.objects.create(model_run=perch, recording=dusk)
    dawn_0 = Clip.objects.create(recording=dawn, start_time=0, end_time=3)
    dawn_3 = Clip.objects.create(recording=dawn, start_time=3, end_time=6)
    dusk_9 = Clip.objects.create(recording=dusk, start_time=9, end_time=14)
    predictions = {
        "blackbird_and_robin": predict(dawn_0, birdnet_job, blackbird=0.9, robin=0.2),
        "robin": predict(dawn_3, birdnet_job, robin=0.7),
        "tit": predict(dusk_9, perch_job, tit=0.4, blackbird=0.1),
        # A classifier's score: a species tag too, but no detection.
        "classifier": predict(dawn_0, classifier, blackbird=0.95),
    }
    named = {
        "wetlands": wetlands,
        "forest": forest,
        "dawn": dawn,
        "dusk": dusk,
        "birdnet": birdnet,
        "perch": perch,
        "classifier": classifier,
        "birdnet_job": birdnet_job,
        "perch_job": perch_job,
    }
    return SimpleNamespace(predictions=predictions, named=named, dawn_0=dawn_0, dawn=dawn, wetlands=wetlands)


# Authentication --------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", LIST_ENDPOINTS)
def test_anonymous_requests_are_refused(endpoint):
    response = APIClient().get(f"{API}{endpoint}/")
    assert response.status_code == 403


def test_anonymous_cannot_create_a_dataset():
    response = APIClient().post(f"{API}datasets/", {"name": "Sneaky"}, format="json")
    assert response.status_code == 403
    assert not Dataset.objects.exists()


def test_a_token_authenticates(user, dataset):
    token = Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert uuids(client.get(f"{API}datasets/")) == {str(dataset.uuid)}


def test_a_wrong_token_is_refused(user):
    Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-the-key")
    response = client.get(f"{API}datasets/")
    assert response.status_code == 403
    assert response.json()["detail"] == "Invalid token."


def test_a_session_login_authenticates(client, user, dataset):
    assert client.login(username="ecologist", password="pw-ecologist-1")
    assert uuids(client.get(f"{API}datasets/")) == {str(dataset.uuid)}


def test_session_writes_need_the_csrf_token(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(f"{API}datasets/", {"name": "No token"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


@pytest.mark.parametrize("endpoint", LIST_ENDPOINTS)
def test_the_browsable_api_renders_every_list(client, user, world, endpoint):
    client.force_login(user)
    response = client.get(f"{API}{endpoint}/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"<html" in response.content


def test_the_browsable_api_renders_a_dataset_with_its_edit_form(client, user, dataset):
    client.force_login(user)
    response = client.get(f"{API}datasets/{dataset.uuid}/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert dataset.name in response.content.decode()


# Datasets, sites, tags, model runs ------------------------------------------------------------------


def test_a_dataset_is_created_read_updated_and_deleted(api_client, user):
    created = api_client.post(
        f"{API}datasets/",
        {"name": "Coast 2026", "description": "Dunes", "latitude": 52.1, "longitude": 4.3},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["created_by"] == "ecologist"
    assert (body["recording_count"], body["recording_hours"]) == (0, 0.0)
    url = f"{API}datasets/{body['uuid']}/"
    assert Dataset.objects.get(uuid=body["uuid"]).created_by == user

    assert api_client.get(url).json()["name"] == "Coast 2026"
    patched = api_client.patch(url, {"description": "Dunes and beach"}, format="json")
    assert patched.status_code == 200
    assert patched.json()["description"] == "Dunes and beach"
    put = api_client.put(url, {"name": "Coast 2027"}, format="json")
    assert put.status_code == 200
    assert (put.json()["name"], put.json()["latitude"]) == ("Coast 2027", 52.1)

    assert api_client.delete(url).status_code == 204
    assert api_client.get(url).status_code == 404
    assert not Dataset.objects.exists()


def test_datasets_list_their_recording_count_and_hours(api_client, dataset):
    make_recording(dataset, "a", duration=1800.0)
    make_recording(dataset, "b", duration=3600.0)
    Dataset.objects.create(name="Empty")
    listed = {item["name"]: item for item in results(api_client.get(f"{API}datasets/"))}
    assert (listed["Wetlands 2026"]["recording_count"], listed["Wetlands 2026"]["recording_hours"]) == (2, 1.5)
    assert (listed["Empty"]["recording_count"], listed["Empty"]["recording_hours"]) == (0, 0.0)


def test_a_duplicate_dataset_name_is_a_400(api_client, dataset):
    response = api_client.post(f"{API}datasets/", {"name": dataset.name}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()


@pytest.mark.parametrize(
    ("location", "field"),
    [
        ({"latitude": 91, "longitude": 0}, "latitude"),
        ({"latitude": 0, "longitude": -181}, "longitude"),
        ({"latitude": 10}, "non_field_errors"),
    ],
)
def test_a_bad_location_is_a_400_not_a_database_error(api_client, location, field):
    response = api_client.post(f"{API}datasets/", {"name": "Somewhere", **location}, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_a_site_names_its_dataset_by_uuid(api_client, dataset):
    response = api_client.post(f"{API}sites/", {"dataset": str(dataset.uuid), "name": "Reedbed"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["dataset"] == str(dataset.uuid)
    assert "id" not in response.json()
    assert Site.objects.get().dataset == dataset
    again = api_client.post(f"{API}sites/", {"dataset": str(dataset.uuid), "name": "Reedbed"}, format="json")
    assert again.status_code == 400


def test_a_site_cannot_move_to_another_dataset(api_client, dataset):
    site = Site.objects.create(dataset=dataset, name="Reedbed")
    other = Dataset.objects.create(name="Other")
    response = api_client.patch(f"{API}sites/{site.uuid}/", {"dataset": str(other.uuid)}, format="json")
    assert response.status_code == 400
    assert "dataset" in response.json()


def test_sites_filter_by_dataset(api_client, dataset):
    reedbed = Site.objects.create(dataset=dataset, name="Reedbed")
    Site.objects.create(dataset=Dataset.objects.create(name="Other"), name="Reedbed")
    assert uuids(api_client.get(f"{API}sites/", {"dataset": str(dataset.uuid)})) == {str(reedbed.uuid)}


def test_tags_are_created_updated_and_kept(api_client, staff):
    created = api_client.post(f"{API}tags/", {"key": SPECIES, "value": ROBIN}, format="json")
    assert created.status_code == 201
    url = f"{API}tags/{created.json()['uuid']}/"
    assert api_client.patch(url, {"value": BLACKBIRD}, format="json").status_code == 403
    api_client.force_authenticate(staff)
    assert api_client.patch(url, {"value": BLACKBIRD}, format="json").json()["value"] == BLACKBIRD
    assert api_client.post(f"{API}tags/", {"key": SPECIES, "value": BLACKBIRD}, format="json").status_code == 400
    assert api_client.delete(url).status_code == 405
    assert uuids(api_client.get(f"{API}tags/", {"value__icontains": "merula"})) == {created.json()["uuid"]}


def test_model_runs_are_created_and_updated_but_not_deleted(api_client, staff):
    created = api_client.post(
        f"{API}model-runs/",
        {"name": "BirdNET", "version": "2.4", "config": {"sensitivity": 1.0}, "embedding_dimension": 1024},
        format="json",
    )
    assert created.status_code == 201, created.content
    url = f"{API}model-runs/{created.json()['uuid']}/"
    assert api_client.patch(url, {"description": "Default settings"}, format="json").status_code == 403
    api_client.force_authenticate(staff)
    assert api_client.patch(url, {"description": "Default settings"}, format="json").status_code == 200
    assert api_client.delete(url).status_code == 405
    assert api_client.post(f"{API}model-runs/", {"name": "BirdNET", "version": "2.4"}, format="json").status_code == 400


@pytest.mark.parametrize(
    ("field", "value"), [("embedding_dimension", 0), ("embedding_dimension", 16001), ("segment_duration", 0)]
)
def test_a_model_run_out_of_range_is_a_400_naming_the_field(api_client, field, value):
    response = api_client.post(f"{API}model-runs/", {"name": "Perch", "version": "2.0", field: value}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]


# Recordings and clips ------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["recordings", "clips", "clip-predictions"])
def test_imported_tables_are_read_only(api_client, endpoint):
    assert api_client.post(f"{API}{endpoint}/", {}, format="json").status_code == 405


def test_a_recording_names_its_dataset_and_site_by_uuid(api_client, dataset):
    site = Site.objects.create(dataset=dataset, name="Reedbed")
    recording = make_recording(dataset, "dawn", site=site)
    body = api_client.get(f"{API}recordings/{recording.uuid}/").json()
    assert (body["dataset"], body["site"], body["path"]) == (str(dataset.uuid), str(site.uuid), "dawn.wav")
    assert "id" not in body


def test_recordings_filter_by_dataset_site_and_time(api_client, world):
    site = Site.objects.create(dataset=world.wetlands, name="Reedbed")
    on_site = make_recording(world.wetlands, "on-site", site=site)
    dawn, dusk = str(world.named["dawn"].uuid), str(world.named["dusk"].uuid)

    def found(**query) -> set[str]:
        return uuids(api_client.get(f"{API}recordings/", query))

    assert found(dataset=str(world.wetlands.uuid)) == {dawn, str(on_site.uuid)}
    assert found(site=str(site.uuid)) == {str(on_site.uuid)}
    assert found(recorded_after="2026-04-10T00:00:00Z") == {dusk}
    assert found(recorded_before="2026-04-10T00:00:00Z") == {dawn}


def test_clips_filter_by_recording_and_dataset(api_client, world):
    dawn_clips = {str(clip.uuid) for clip in world.dawn.clips.all()}
    assert uuids(api_client.get(f"{API}clips/", {"recording": str(world.dawn.uuid)})) == dawn_clips
    assert uuids(api_client.get(f"{API}clips/", {"dataset": str(world.wetlands.uuid)})) == dawn_clips


@pytest.mark.parametrize(
    ("endpoint", "field", "value"),
    [("recordings", "dataset", "wetlands"), ("recordings", "recorded_after", "yesterday"), ("clips", "recording", "7")],
)
def test_an_invalid_filter_on_recordings_or_clips_is_a_400_naming_it(api_client, endpoint, field, value):
    response = api_client.get(f"{API}{endpoint}/", {field: value})
    assert response.status_code == 400
    assert field in response.json()


def test_cursor_pagination_walks_every_page_once_without_counting(api_client, dataset):
    Recording.objects.bulk_create(
        Recording(dataset=dataset, path=f"r{n:03}.wav", sha256=sha(n), duration=60, samplerate=48000, channels=1)
        for n in range(120)
    )
    seen: list[str] = []
    url = f"{API}recordings/?page_size=50"
    with CaptureQueriesContext(connection) as queries:
        while url:
            page = api_client.get(url).json()
            assert "count" not in page
            seen += [item["uuid"] for item in page["results"]]
            url = page["next"]
    assert len(seen) == len(set(seen)) == 120
    assert set(seen) == {str(u) for u in Recording.objects.values_list("uuid", flat=True)}
    assert not [query for query in queries if "COUNT(" in query["sql"].upper()]


# Clip predictions ------------------------------------------------------------------------------


def test_a_prediction_shows_its_clip_recording_model_run_and_scored_tags(api_client, world):
    prediction = world.predictions["blackbird_and_robin"]
    body = api_client.get(f"{API}clip-predictions/{prediction.uuid}/").json()
    assert body == {
        "uuid": str(prediction.uuid),
        "clip": {"uuid": str(world.dawn_0.uuid), "start_time": 0.0, "end_time": 3.0},
        "recording": str(world.dawn.uuid),
        "model_run": {"uuid": str(world.named["birdnet"].uuid), "name": "BirdNET", "version": "2.4"},
        "job": str(world.named["birdnet_job"].uuid),
        "tags": [
            {"key": SPECIES, "value": BLACKBIRD, "score": 0.9},
            {"key": SPECIES, "value": ROBIN, "score": 0.2},
        ],
        "created_at": body["created_at"],
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, {"blackbird_and_robin", "robin", "tit"}),
        ({"dataset": "wetlands"}, {"blackbird_and_robin", "robin"}),
        ({"recording": "dusk"}, {"tit"}),
        ({"model_run": "perch"}, {"tit"}),
        ({"species": ROBIN}, {"blackbird_and_robin", "robin"}),
        ({"species__icontains": "TURDUS"}, {"blackbird_and_robin", "tit"}),
        ({"min_score": "0.8"}, {"blackbird_and_robin"}),
        ({"min_score": "0"}, {"blackbird_and_robin", "robin", "tit"}),
        # The same tag row must carry both the species and the score: 0.9 is the blackbird's.
        ({"species": ROBIN, "min_score": "0.5"}, {"robin"}),
        ({"species": BLACKBIRD, "min_score": "0.5"}, {"blackbird_and_robin"}),
        ({"species__icontains": "turdus", "min_score": "0.5"}, {"blackbird_and_robin"}),
        ({"species": GREAT_TIT, "min_score": "0.5"}, set()),
        ({"start_time_min": "3"}, {"robin", "tit"}),
        ({"start_time_max": "3"}, {"blackbird_and_robin", "robin"}),
        ({"start_time_min": "1", "start_time_max": "5"}, {"robin"}),
        ({"recorded_after": "2026-04-10T00:00:00Z"}, {"tit"}),
        ({"recorded_before": "2026-04-10T00:00:00Z"}, {"blackbird_and_robin", "robin"}),
        ({"dataset": "wetlands", "model_run": "birdnet", "species": BLACKBIRD}, {"blackbird_and_robin"}),
        ({"job": "birdnet_job"}, {"blackbird_and_robin", "robin"}),
        ({"job": "perch_job", "species": BLACKBIRD}, {"tit"}),
        # A classifier's scores only when its run is named; then with the same filters as detections.
        ({"species": BLACKBIRD, "min_score": "0.9"}, {"blackbird_and_robin"}),
        ({"recording": "dawn"}, {"blackbird_and_robin", "robin"}),
        ({"model_run": "classifier"}, {"classifier"}),
        ({"model_run": "classifier", "species": BLACKBIRD, "min_score": "0.9"}, {"classifier"}),
        ({"model_run": "classifier", "species": ROBIN}, set()),
        ({"model_run": "classifier", "job": "birdnet_job"}, set()),
    ],
)
def test_clip_predictions_filter(api_client, world, query, expected):
    query = {name: str(world.named[value].uuid) if value in world.named else value for name, value in query.items()}
    found = uuids(api_client.get(f"{API}clip-predictions/", query))
    assert found == {str(world.predictions[name].uuid) for name in expected}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dataset", "wetlands"),
        ("recording", "42"),
        ("model_run", "birdnet-2.4"),
        ("job", "birdnet-job"),
        ("min_score", "1.5"),
        ("min_score", "-0.1"),
        ("min_score", "high"),
        ("start_time_min", "dawn"),
        ("start_time_max", "NaN"),
        ("recorded_after", "last spring"),
        ("recorded_before", "2026-13-01"),
    ],
)
def test_an_invalid_prediction_filter_is_a_400_naming_it(api_client, world, field, value):
    response = api_client.get(f"{API}clip-predictions/", {field: value})
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_each_row_names_its_job_and_a_classifiers_score_has_none(api_client, world):
    listed = {row["uuid"]: row["job"] for row in results(api_client.get(f"{API}clip-predictions/"))}
    assert listed == {
        str(world.predictions["blackbird_and_robin"].uuid): str(world.named["birdnet_job"].uuid),
        str(world.predictions["robin"].uuid): str(world.named["birdnet_job"].uuid),
        str(world.predictions["tit"].uuid): str(world.named["perch_job"].uuid),
    }
    scores = results(api_client.get(f"{API}clip-predictions/", {"model_run": str(world.named["classifier"].uuid)}))
    blackbird = {"key": SPECIES, "value": BLACKBIRD, "score": 0.95}
    assert [(row["job"], row["tags"]) for row in scores] == [(None, [blackbird])]


def test_a_classifiers_score_is_shown_by_its_uuid(api_client, world):
    score = world.predictions["classifier"]
    body = api_client.get(f"{API}clip-predictions/{score.uuid}/").json()
    assert (body["uuid"], body["job"], body["model_run"]["name"]) == (str(score.uuid), None, "classifier")


def test_a_page_of_predictions_costs_the_same_few_queries_however_long(
    api_client, dataset, django_assert_max_num_queries
):
    runs = [ModelRun.objects.create(name=f"Model {n}", version="1") for n in range(3)]
    jobs = [InferenceJob.objects.create(model_run=run, dataset=dataset) for run in runs]
    tags = [Tag.objects.create(key=SPECIES, value=f"Species {n}") for n in range(4)]
    recordings = [make_recording(dataset, f"r{n}") for n in range(5)]
    clips = Clip.objects.bulk_create(Clip(recording=recordings[n % 5], start_time=n, end_time=n + 3) for n in range(50))
    predictions = ClipPrediction.objects.bulk_create(
        ClipPrediction(clip=clip, model_run=jobs[n % 3].model_run, job=jobs[n % 3]) for n, clip in enumerate(clips)
    )
    ClipPredictionTag.objects.bulk_create(
        ClipPredictionTag(clip_prediction=prediction, tag=tag, score=0.5) for prediction in predictions for tag in tags
    )

    with CaptureQueriesContext(connection) as short_page:
        assert len(results(api_client.get(f"{API}clip-predictions/", {"page_size": 5}))) == 5
    with django_assert_max_num_queries(3):
        page = results(api_client.get(f"{API}clip-predictions/", {"page_size": 50}))
    assert len(page) == 50 and all(len(item["tags"]) == 4 for item in page)
    with CaptureQueriesContext(connection) as long_page:
        api_client.get(f"{API}clip-predictions/", {"page_size": 50, "species": "Species 1", "min_score": "0.4"})
    assert len(long_page) == len(short_page)


# Annotations ----------------------------------------------------------------------------------------


def test_an_annotation_records_who_made_it_and_its_tags(api_client, user, world):
    before = Tag.objects.count()
    response = api_client.post(
        f"{API}annotations/",
        {
            "clip": str(world.dawn_0.uuid),
            "notes": "Alarm call, close",
            "tags": [{"key": SPECIES, "value": BLACKBIRD}, {"key": "call_type", "value": "alarm"}],
            "created_by": "someone-else",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created_by"] == "ecologist"
    assert sorted(body["tags"], key=lambda tag: tag["key"]) == [
        {"key": "call_type", "value": "alarm"},
        {"key": SPECIES, "value": BLACKBIRD},
    ]
    annotation = ClipAnnotation.objects.get(uuid=body["uuid"])
    assert (annotation.created_by, annotation.clip, annotation.notes) == (user, world.dawn_0, "Alarm call, close")
    assert {row.created_by for row in annotation.tags.all()} == {user}
    # The blackbird tag existed already (from the predictions); only call_type:alarm is new.
    assert Tag.objects.count() == before + 1


def test_a_tag_given_twice_is_one_annotation_tag(api_client, world):
    tag = {"key": "call_type", "value": "song"}
    response = api_client.post(
        f"{API}annotations/", {"clip": str(world.dawn_0.uuid), "tags": [tag, tag]}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["tags"] == [tag]


@pytest.mark.parametrize(
    ("annotation", "field"),
    [
        ({"clip": "00000000-0000-0000-0000-000000000000"}, "clip"),
        ({"clip": "dawn"}, "clip"),
        ({"tags": [{"key": "", "value": "alarm"}]}, "tags"),
        ({"tags": [{"key": "call_type"}]}, "tags"),
    ],
)
def test_an_invalid_annotation_is_a_400_naming_the_field(api_client, world, annotation, field):
    response = api_client.post(f"{API}annotations/", {"clip": str(world.dawn_0.uuid), **annotation}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not ClipAnnotation.objects.exists()


def test_annotations_are_listed_newest_first_and_cannot_be_edited(api_client, user, world):
    client_posts = [
        api_client.post(f"{API}annotations/", {"clip": str(world.dawn_0.uuid), "notes": f"#{n}"}, format="json")
        for n in range(3)
    ]
    listed = results(api_client.get(f"{API}annotations/", {"clip": str(world.dawn_0.uuid)}))
    assert [item["notes"] for item in listed] == ["#2", "#1", "#0"]
    url = f"{API}annotations/{client_posts[0].json()['uuid']}/"
    assert api_client.patch(url, {"notes": "changed"}, format="json").status_code == 405
    assert api_client.delete(url).status_code == 405


def test_only_the_creator_or_staff_change_a_dataset_and_its_sites(api_client, user, staff, django_user_model):
    theirs = Dataset.objects.create(name="Someone else's", created_by=staff)
    site = Site.objects.create(dataset=theirs, name="Ridge")
    url = f"{API}datasets/{theirs.uuid}/"
    assert api_client.get(url).status_code == 200
    assert api_client.patch(url, {"description": "mine now"}, format="json").status_code == 403
    assert api_client.delete(url).status_code == 403
    assert api_client.patch(f"{API}sites/{site.uuid}/", {"name": "Renamed"}, format="json").status_code == 403
    added = api_client.post(f"{API}sites/", {"dataset": str(theirs.uuid), "name": "Sneaky"}, format="json")
    assert added.status_code == 403
    assert Dataset.objects.filter(pk=theirs.pk, description="").exists() and theirs.sites.count() == 1
    mine = api_client.post(f"{API}datasets/", {"name": "Mine"}, format="json").json()
    assert api_client.patch(f"{API}datasets/{mine['uuid']}/", {"description": "ok"}, format="json").status_code == 200
    api_client.force_authenticate(staff)
    assert (
        api_client.patch(f"{API}datasets/{mine['uuid']}/", {"description": "curated"}, format="json").status_code == 200
    )


@pytest.mark.parametrize("moment", ["0365-01-26T19:25:03+21:44", "2026-04-01T05:30:00-23:59"])
def test_datetimes_with_any_valid_offset_are_answered(api_client, moment):
    response = api_client.get(f"{API}clip-predictions/", {"recorded_after": moment})
    assert response.status_code == 200 and response.json()["results"] == []


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+01:00"])
def test_datetimes_beyond_the_calendar_once_in_utc_are_a_400_naming_the_filter(api_client, moment):
    response = api_client.get(f"{API}clip-predictions/", {"recorded_after": moment})
    assert response.status_code == 400
    assert response.json() == {"recorded_after": ["the date is out of range once converted to UTC"]}
