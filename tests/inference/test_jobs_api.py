"""The inference jobs API (seed-design.md §5.1): validation, permissions, start/cancel/retry, list and detail,
and a job's own detections.

No model runs here (inference is tested in test_jobs.py) except in the tests that run jobs
synchronously; starting a job only queues django-q2 tasks on the ORM broker.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ
from rest_framework.test import APIClient

from echoroo.models import SPECIES, Clip, ClipPrediction, ClipPredictionTag, ModelRun, Tag
from inference import services
from inference.api.serializers import FAILED_RECORDINGS_SHOWN, InferenceConfigSerializer
from inference.config import FIELD_NAMES, SETTINGS, WEEKS, ConfigError, InferenceConfig, parse_config
from inference.models import InferenceJob, JobRecording

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/inference/jobs/"


def job_url(job: InferenceJob, action: str = "") -> str:
    return f"{JOBS}{job.uuid}/" + (f"{action}/" if action else "")


def client_of(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def stranger(django_user_model):
    return django_user_model.objects.create_user(username="birder", password="pw-birder-1")


@pytest.fixture
def job(field_dataset, user) -> InferenceJob:
    """A pending BirdNET job on the two recordings of field_dataset, created by `user`."""
    return services.create_job(model_name="birdnet", dataset=field_dataset, by=user)


def queued_tasks() -> int:
    return OrmQ.objects.count()


def post_job(client: APIClient, **body):
    return client.post(JOBS, body, format="json")


# Authentication


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", JOBS),
        ("post", JOBS),
        ("get", "{job}"),
        ("delete", "{job}"),
        ("post", "{job}start/"),
        ("post", "{job}retry/"),
        ("get", "{job}detections/"),
    ],
)
def test_anonymous_requests_are_refused(job, method, path):
    response = getattr(APIClient(), method)(path.format(job=job_url(job)), format="json")
    assert response.status_code in (401, 403)
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.PENDING


# Create


def test_creating_a_job_on_a_dataset(api_client, field_dataset, user):
    response = post_job(
        api_client, model_name="birdnet", dataset_uuid=str(field_dataset.uuid), config={"confidence_threshold": 0.25}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    job = InferenceJob.objects.get(uuid=body["uuid"])
    assert (job.dataset, job.recording, job.created_by, job.status) == (field_dataset, None, user, "pending")
    assert body["dataset_uuid"] == str(field_dataset.uuid) and body["recording_uuid"] is None
    assert body["model_run"] == {"uuid": str(job.model_run.uuid), "name": "birdnet", "version": "2.4"}
    assert body["status"] == "pending" and body["created_by"] == "ecologist"
    # The stored config is complete: every setting, defaults filled in.
    assert set(body["config"]) == set(FIELD_NAMES)
    assert body["config"]["confidence_threshold"] == 0.25 and body["config"]["batch_size"] == 32
    assert queued_tasks() == 0


def test_creating_a_job_on_a_recording(api_client, field_recording):
    response = post_job(api_client, model_name="birdnet", recording_uuid=str(field_recording.uuid))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["recording_uuid"] == str(field_recording.uuid) and body["dataset_uuid"] is None
    assert InferenceJob.objects.get(uuid=body["uuid"]).recording == field_recording


def test_jobs_of_one_model_share_its_model_run(api_client, field_dataset, field_recording):
    first = post_job(api_client, model_name="birdnet", dataset_uuid=str(field_dataset.uuid)).json()
    second = post_job(api_client, model_name="birdnet", recording_uuid=str(field_recording.uuid)).json()
    assert first["model_run"]["uuid"] == second["model_run"]["uuid"]


def test_perch_allows_an_overlap_birdnet_does_not(api_client, field_recording):
    # Perch's window is 5 s, BirdNET's 3 s: an overlap of 4 s is fine for Perch only.
    target = {"recording_uuid": str(field_recording.uuid), "config": {"overlap": 4.0}}
    assert post_job(api_client, model_name="perch", **target).status_code == 201
    response = post_job(api_client, model_name="birdnet", **target)
    assert response.status_code == 400 and "3 s window" in response.json()["config"]["overlap"][0]


@pytest.mark.parametrize(
    "change, error_at",
    [
        pytest.param({"model_name": "birdclef"}, ["model_name"], id="unknown model"),
        pytest.param({"model_name": None}, ["model_name"], id="no model"),
        pytest.param({"model_version": "1.0"}, ["model_version"], id="unknown version"),
        pytest.param({"recording_uuid": None}, ["dataset_uuid"], id="neither dataset nor recording"),
        pytest.param({"dataset_uuid": "dataset"}, ["dataset_uuid"], id="both dataset and recording"),
        pytest.param({"recording_uuid": str(uuid.uuid4())}, ["recording_uuid"], id="unknown recording uuid"),
        pytest.param({"recording_uuid": "not-a-uuid"}, ["recording_uuid"], id="malformed recording uuid"),
        pytest.param(
            {"recording_uuid": None, "dataset_uuid": str(uuid.uuid4())}, ["dataset_uuid"], id="unknown dataset uuid"
        ),
        pytest.param({"config": ["overlap"]}, ["config"], id="config not an object"),
        pytest.param({"config": {"confidence_threshold": 1.5}}, ["config", "confidence_threshold"], id="threshold>1"),
        pytest.param({"config": {"confidence_threshold": -0.1}}, ["config", "confidence_threshold"], id="threshold<0"),
        pytest.param({"config": {"confidence_threshold": "high"}}, ["config", "confidence_threshold"], id="threshold?"),
        pytest.param({"config": {"overlap": 3.0}}, ["config", "overlap"], id="overlap = BirdNET window"),
        pytest.param({"config": {"overlap": 4.5}}, ["config", "overlap"], id="overlap > BirdNET window"),
        pytest.param({"config": {"overlap": -1}}, ["config", "overlap"], id="negative overlap"),
        pytest.param({"config": {"batch_size": 0}}, ["config", "batch_size"], id="batch size 0"),
        pytest.param({"config": {"batch_size": 100_000}}, ["config", "batch_size"], id="batch size too big"),
        pytest.param({"config": {"batch_size": 2.5}}, ["config", "batch_size"], id="batch size not whole"),
        pytest.param({"config": {"latitude": 95, "longitude": 10}}, ["config", "latitude"], id="latitude 95"),
        pytest.param({"config": {"latitude": 10, "longitude": 200}}, ["config", "longitude"], id="longitude 200"),
        pytest.param({"config": {"latitude": 42.5}}, ["config", "longitude"], id="latitude without longitude"),
        pytest.param({"config": {"week": 49}}, ["config", "week"], id="week 49"),
        pytest.param({"config": {"sensitivity": 3}}, ["config", "sensitivity"], id="sensitivity"),
        pytest.param({"config": {"use_gpu": "yes"}}, ["config", "use_gpu"], id="flag not a boolean"),
        pytest.param(
            {"config": {"confidence_treshold": 0.3}}, ["config", "confidence_treshold"], id="unknown config key"
        ),
        pytest.param({"config": {"model_name": "perch"}}, ["config", "model_name"], id="job field inside config"),
        pytest.param(
            {"config": {"custom_species_list": ["Turdus merula", "Dodo borealis"]}},
            ["config", "custom_species_list"],
            id="unknown species name",
        ),
        pytest.param({"config": {"custom_species_list": []}}, ["config", "custom_species_list"], id="no species"),
        pytest.param(
            {"config": {"store_embeddings": False, "store_predictions": False}},
            ["config", "store_predictions"],
            id="stores nothing",
        ),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field(api_client, field_dataset, field_recording, change, error_at):
    body = {"model_name": "birdnet", "recording_uuid": str(field_recording.uuid), **change}
    if body.get("dataset_uuid") == "dataset":
        body["dataset_uuid"] = str(field_dataset.uuid)
    body = {key: value for key, value in body.items() if value is not None}
    response = post_job(api_client, **body)
    assert response.status_code == 400, response.content
    errors = response.json()
    for key in error_at:
        assert key in errors, errors
        errors = errors[key]
    assert isinstance(errors, list) and errors and all(isinstance(message, str) for message in errors)
    assert not InferenceJob.objects.exists()


def test_every_error_of_a_request_is_reported_at_once(api_client):
    response = post_job(
        api_client, model_name="birdnet", config={"confidence_threshold": 2, "batch_size": 0, "colour": "red"}
    )
    assert response.status_code == 400
    errors = response.json()
    assert "dataset_uuid" in errors
    assert set(errors["config"]) == {"confidence_threshold", "batch_size", "colour"}


def test_the_error_messages_say_what_is_wrong(api_client, field_recording):
    response = post_job(api_client, model_name="birdclef", recording_uuid=str(field_recording.uuid))
    assert "birdnet, perch" in response.json()["model_name"][0]
    response = post_job(api_client, model_name="birdnet", recording_uuid=str(uuid.UUID(int=7)))
    assert str(uuid.UUID(int=7)) in response.json()["recording_uuid"][0]


# Start


def test_the_creator_starts_a_pending_job_and_its_tasks_are_queued(api_client, job, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(job_url(job, "start"))
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "running" and body["started_at"]
    assert body["recordings"] == {"pending": 2, "running": 0, "done": 0, "failed": 0, "cancelled": 0}
    assert body["total_clips"] > 0 and body["processed_clips"] == 0
    # One task per recording, on the ORM broker; no worker needed to accept them.
    assert queued_tasks() == 2


def test_staff_may_start_anyones_job(staff, job, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_of(staff).post(job_url(job, "start"))
    assert response.status_code == 202
    assert queued_tasks() == 2


def test_another_user_may_not_start_a_job(stranger, job, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_of(stranger).post(job_url(job, "start"))
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.PENDING and queued_tasks() == 0


def test_starting_a_job_that_is_not_pending_is_a_409_naming_status(api_client, job):
    services.start_job(job)
    response = api_client.post(job_url(job, "start"))
    assert response.status_code == 409
    assert "only a pending job can be started" in response.json()["status"][0]


def test_start_true_creates_and_starts_at_once(api_client, field_dataset, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_job(api_client, model_name="birdnet", dataset_uuid=str(field_dataset.uuid), start=True)
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "running"
    assert queued_tasks() == 2


def test_an_unknown_job_is_a_404(api_client):
    assert api_client.get(f"{JOBS}{uuid.uuid4()}/").status_code == 404
    assert api_client.post(f"{JOBS}{uuid.uuid4()}/start/").status_code == 404


# Cancel


@pytest.mark.parametrize("who", ["creator", "staff"])
def test_cancelling_keeps_the_job_and_answers_with_it(who, api_client, staff, job):
    services.start_job(job)
    client = api_client if who == "creator" else client_of(staff)
    response = client.delete(job_url(job))
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["recordings"]["cancelled"] == 2
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.CANCELLED and job.completed_at


def test_another_user_may_not_cancel_a_job(stranger, job):
    response = client_of(stranger).delete(job_url(job))
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.PENDING


def test_cancelling_a_finished_job_is_a_409_that_changes_nothing(api_client, job):
    InferenceJob.objects.filter(pk=job.pk).update(status=InferenceJob.Status.COMPLETED, progress=100)
    response = api_client.delete(job_url(job))
    assert response.status_code == 409
    assert response.json() == {
        "status": ["the job is already completed; only a pending or running job can be cancelled"]
    }
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.COMPLETED


# Retry


def finish_with_one_failure(job: InferenceJob) -> JobRecording:
    """Start the job (no worker runs it) and record it as finished: one recording done, one failed."""
    services.start_job(job)
    done, failed = JobRecording.objects.filter(job=job).order_by("id")
    JobRecording.objects.filter(pk=done.pk).update(status=JobRecording.Status.DONE)
    JobRecording.objects.filter(pk=failed.pk).update(
        status=JobRecording.Status.FAILED, error_message="cannot decode: file is truncated", attempts=2
    )
    InferenceJob.objects.filter(pk=job.pk).update(status=InferenceJob.Status.COMPLETED)
    return failed


@pytest.mark.parametrize("who", ["creator", "staff"])
def test_retry_queues_the_failed_recordings_again(who, api_client, staff, job, django_capture_on_commit_callbacks):
    failed = finish_with_one_failure(job)
    client = api_client if who == "creator" else client_of(staff)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(job_url(job, "retry"))
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "running"
    assert body["recordings"] == {"pending": 1, "running": 0, "done": 1, "failed": 0, "cancelled": 0}
    assert queued_tasks() == 1
    failed.refresh_from_db()
    assert failed.status == JobRecording.Status.PENDING and failed.error_message == ""


def test_another_user_may_not_retry_a_job(stranger, job, django_capture_on_commit_callbacks):
    finish_with_one_failure(job)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_of(stranger).post(job_url(job, "retry"))
    assert response.status_code == 403 and queued_tasks() == 0


def test_retrying_a_job_that_has_not_finished_is_a_409_naming_status(api_client, job):
    response = api_client.post(job_url(job, "retry"))
    assert response.status_code == 409 and "status" in response.json()


# List and detail


@pytest.fixture
def jobs(field_dataset, field_recording, user, stranger) -> dict[str, InferenceJob]:
    made = {
        "mine_on_dataset": services.create_job(model_name="birdnet", dataset=field_dataset, by=user),
        "mine_on_recording": services.create_job(model_name="birdnet", recording=field_recording, by=user),
        "theirs_perch": services.create_job(model_name="perch", recording=field_recording, by=stranger),
    }
    services.start_job(made["mine_on_recording"])
    return made


def uuids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {item["uuid"] for item in response.json()["results"]}


def expect(jobs: dict[str, InferenceJob], *names: str) -> set[str]:
    return {str(jobs[name].uuid) for name in names}


def test_every_user_sees_every_job_newest_first(stranger, jobs):
    response = client_of(stranger).get(JOBS)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [item["uuid"] for item in body["results"]] == [
        str(jobs[name].uuid) for name in ("theirs_perch", "mine_on_recording", "mine_on_dataset")
    ]


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"status": "pending"}, ["mine_on_dataset", "theirs_perch"]),
        ({"status": "running"}, ["mine_on_recording"]),
        ({"model_name": "perch"}, ["theirs_perch"]),
        ({"model_name": "birdnet"}, ["mine_on_dataset", "mine_on_recording"]),
        ({"mine": "true"}, ["mine_on_dataset", "mine_on_recording"]),
        ({"mine": "false"}, ["theirs_perch"]),
        ({"created_by": "birder"}, ["theirs_perch"]),
        ({"model_name": "birdnet", "status": "pending"}, ["mine_on_dataset"]),
    ],
)
def test_the_list_filters(api_client, jobs, query, expected):
    assert uuids(api_client.get(JOBS, query)) == expect(jobs, *expected)


def test_the_list_filters_by_dataset_and_recording(api_client, jobs, field_dataset, field_recording):
    assert uuids(api_client.get(JOBS, {"dataset": str(field_dataset.uuid)})) == expect(jobs, "mine_on_dataset")
    assert uuids(api_client.get(JOBS, {"recording": str(field_recording.uuid)})) == expect(
        jobs, "mine_on_recording", "theirs_perch"
    )


@pytest.mark.parametrize("query", [{"status": "paused"}, {"dataset": "not-a-uuid"}])
def test_a_bad_filter_value_is_a_400_naming_the_filter(api_client, jobs, query):
    response = api_client.get(JOBS, query)
    assert response.status_code == 400
    assert set(response.json()) == set(query)


def test_the_detail_shows_progress_counts_and_failed_recordings(stranger, job):
    failed = finish_with_one_failure(job)
    response = client_of(stranger).get(job_url(job))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "uuid",
        "model_run",
        "dataset_uuid",
        "recording_uuid",
        "config",
        "status",
        "progress",
        "total_clips",
        "processed_clips",
        "error_message",
        "activity",
        "created_by",
        "created_at",
        "started_at",
        "completed_at",
        "duration_s",
        "recordings",
        "reused_recordings",
        "failed_recordings",
    }
    assert body["status"] == "completed" and body["created_by"] == "ecologist"
    assert body["recordings"] == {"pending": 0, "running": 0, "done": 1, "failed": 1, "cancelled": 0}
    assert body["reused_recordings"] == 0
    assert body["failed_recordings"] == [
        {
            "recording": str(failed.recording.uuid),
            "path": failed.recording.path,
            "error_message": "cannot decode: file is truncated",
            "attempts": 2,
            "finished_at": None,
        }
    ]
    assert isinstance(body["duration_s"], float) and body["duration_s"] >= 0


def test_the_detail_lists_at_most_a_hundred_failed_recordings(api_client, job, monkeypatch):
    monkeypatch.setattr("inference.api.serializers.FAILED_RECORDINGS_SHOWN", 1)
    services.start_job(job)
    JobRecording.objects.filter(job=job).update(status=JobRecording.Status.FAILED, error_message="bad file")
    body = api_client.get(job_url(job)).json()
    assert body["recordings"]["failed"] == 2 and len(body["failed_recordings"]) == 1
    assert FAILED_RECORDINGS_SHOWN == 100


def test_a_pending_job_has_no_duration_and_no_recordings_yet(api_client, job):
    body = api_client.get(job_url(job)).json()
    assert body["duration_s"] is None and body["started_at"] is None
    assert body["recordings"] == {"pending": 0, "running": 0, "done": 0, "failed": 0, "cancelled": 0}
    assert body["failed_recordings"] == []


def test_a_job_run_to_the_end_shows_completed_at_100_percent(api_client, field_recording):
    created = post_job(
        api_client, model_name="birdnet", recording_uuid=str(field_recording.uuid), config={"store_embeddings": False}
    )
    job = InferenceJob.objects.get(uuid=created.json()["uuid"])
    services.start_job(job, sync=True)
    body = api_client.get(job_url(job)).json()
    assert body["status"] == "completed" and body["progress"] == 100
    assert body["processed_clips"] == body["total_clips"] == 20
    assert body["recordings"]["done"] == 1 and body["completed_at"] and body["duration_s"] > 0


def test_the_detail_counts_the_recordings_that_reused_stored_output(api_client, job):
    services.start_job(job)
    JobRecording.objects.filter(job=job).update(status=JobRecording.Status.DONE)
    JobRecording.objects.filter(pk=JobRecording.objects.filter(job=job).order_by("id")[0].pk).update(reused=True)
    assert api_client.get(job_url(job)).json()["reused_recordings"] == 1


def test_the_config_is_read_back_as_the_typed_settings(api_client, job):
    # A config stored before a setting existed reads back with that setting's default.
    InferenceJob.objects.filter(pk=job.pk).update(config={"confidence_threshold": 0.3})
    config = api_client.get(job_url(job)).json()["config"]
    assert config == InferenceConfig(confidence_threshold=0.3).as_json()


# Detections

WOOD_THRUSH = "Hylocichla mustelina_Wood Thrush"
FIELD_SPARROW = "Spizella pusilla_Field Sparrow"


def detect(job: InferenceJob, recording, start_s: float, scores: dict[str, float]) -> ClipPrediction:
    """A window detection of the job: the clip at start_s (3 s), a species tag and score per label."""
    clip, _ = Clip.objects.get_or_create(recording=recording, start_time=start_s, end_time=start_s + 3)
    prediction = ClipPrediction.objects.create(clip=clip, model_run=job.model_run, job=job)
    for label, score in scores.items():
        tag, _ = Tag.objects.get_or_create(key=SPECIES, value=label)
        ClipPredictionTag.objects.create(clip_prediction=prediction, tag=tag, score=score)
    return prediction


@pytest.fixture
def detected(field_dataset, field_recording, user):
    """Two BirdNET jobs with detections in the same windows of 1min.wav, and a classifier's score there."""
    loose = services.create_job(
        model_name="birdnet", dataset=field_dataset, by=user, config={"confidence_threshold": 0.1}
    )
    strict = services.create_job(model_name="birdnet", recording=field_recording, by=user)
    drum = field_dataset.recordings.exclude(pk=field_recording.pk).get()
    drum.recorded_at = datetime(2026, 4, 1, 5, 30, tzinfo=UTC)
    drum.save(update_fields=["recorded_at"])
    rows = {
        "loose_0": detect(loose, field_recording, 0, {WOOD_THRUSH: 0.12, FIELD_SPARROW: 0.6}),
        "loose_3": detect(loose, field_recording, 3, {WOOD_THRUSH: 0.3}),
        "loose_drum": detect(loose, drum, 6, {FIELD_SPARROW: 0.2}),
        "strict_0": detect(strict, field_recording, 0, {FIELD_SPARROW: 0.6}),
    }
    classifier = ModelRun.objects.create(
        name="classifier", version="thrush-1", kind=ModelRun.Kind.CLASSIFIER, source=loose.model_run
    )
    score = ClipPrediction.objects.create(clip=rows["loose_0"].clip, model_run=classifier)
    ClipPredictionTag.objects.create(clip_prediction=score, tag=Tag.objects.get(value=WOOD_THRUSH), score=0.99)
    return {"loose": loose, "strict": strict, "drum": drum, "rows": rows}


def detections(client: APIClient, job: InferenceJob, **query) -> list[dict]:
    response = client.get(job_url(job, "detections"), query)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_a_job_lists_its_own_detections_only(api_client, detected, field_recording):
    rows = detected["rows"]
    loose = detections(api_client, detected["loose"])
    assert [row["uuid"] for row in loose] == [str(rows[name].uuid) for name in ("loose_0", "loose_3", "loose_drum")]
    assert {row["job"] for row in loose} == {str(detected["loose"].uuid)}
    assert loose[0] == {
        "uuid": str(rows["loose_0"].uuid),
        "clip": {"uuid": str(rows["loose_0"].clip.uuid), "start_time": 0.0, "end_time": 3.0},
        "recording": str(field_recording.uuid),
        "model_run": {"uuid": str(detected["loose"].model_run.uuid), "name": "birdnet", "version": "2.4"},
        "job": str(detected["loose"].uuid),
        # Its own scores, best first: not the other job's, not the classifier's 0.99 on the same clip.
        "tags": [
            {"key": SPECIES, "value": FIELD_SPARROW, "score": 0.6},
            {"key": SPECIES, "value": WOOD_THRUSH, "score": 0.12},
        ],
        "created_at": loose[0]["created_at"],
    }
    strict = detections(api_client, detected["strict"])
    assert [(row["uuid"], row["job"]) for row in strict] == [(str(rows["strict_0"].uuid), str(detected["strict"].uuid))]


@pytest.mark.parametrize(
    "query, expected",
    [
        ({}, {"loose_0", "loose_3", "loose_drum"}),
        ({"recording": "drum"}, {"loose_drum"}),
        ({"species": WOOD_THRUSH}, {"loose_0", "loose_3"}),
        ({"species__icontains": "SPIZELLA"}, {"loose_0", "loose_drum"}),
        ({"min_score": "0.5"}, {"loose_0"}),
        # One tag row carries both: the thrush's 0.12 is below 0.25, the sparrow in that window is not a thrush.
        ({"species": WOOD_THRUSH, "min_score": "0.25"}, {"loose_3"}),
        ({"start_time_min": "3"}, {"loose_3", "loose_drum"}),
        ({"start_time_max": "3"}, {"loose_0", "loose_3"}),
        ({"recorded_after": "2026-04-01T00:00:00Z"}, {"loose_drum"}),
        # 1min.wav's AudioMoth header says it was recorded on 4 May 2018.
        ({"recorded_before": "2026-04-01T00:00:00Z"}, {"loose_0", "loose_3"}),
    ],
)
def test_a_jobs_detections_filter_like_the_clip_predictions(api_client, detected, query, expected):
    if query.get("recording") == "drum":
        query["recording"] = str(detected["drum"].uuid)
    found = {row["uuid"] for row in detections(api_client, detected["loose"], **query)}
    assert found == {str(detected["rows"][name].uuid) for name in expected}


@pytest.mark.parametrize(
    "field, value",
    [
        ("recording", "1min"),
        ("min_score", "1.5"),
        ("min_score", "most"),
        ("start_time_min", "dawn"),
        ("recorded_before", "last spring"),
    ],
)
def test_a_bad_detection_filter_is_a_400_naming_it(api_client, detected, field, value):
    response = api_client.get(job_url(detected["loose"], "detections"), {field: value})
    assert response.status_code == 400
    assert list(response.json()) == [field]


@pytest.mark.parametrize("job_uuid", [str(uuid.uuid4()), "not-a-uuid"])
def test_the_detections_of_no_job_are_a_404(api_client, detected, job_uuid):
    assert api_client.get(f"{JOBS}{job_uuid}/detections/").status_code == 404


def test_the_detections_page_by_cursor_in_a_few_queries_without_counting(
    api_client, job, field_recording, django_assert_max_num_queries
):
    made = [detect(job, field_recording, n * 0.5, {WOOD_THRUSH: 0.5, FIELD_SPARROW: 0.4}) for n in range(120)]
    seen: list[str] = []
    url = job_url(job, "detections") + "?page_size=50"
    with CaptureQueriesContext(connection) as queries:
        while url:
            with django_assert_max_num_queries(3):  # the job, the page, its tags
                page = api_client.get(url).json()
            assert "count" not in page and all(len(row["tags"]) == 2 for row in page["results"])
            seen += [row["uuid"] for row in page["results"]]
            url = page["next"]
    assert seen == [str(prediction.uuid) for prediction in made]
    assert not [query for query in queries if "COUNT(" in query["sql"].upper()]


def test_the_browsable_api_renders_a_jobs_detections(client, user, detected):
    client.force_login(user)
    response = client.get(job_url(detected["loose"], "detections"), HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and b"<html" in response.content
    assert WOOD_THRUSH in response.content.decode()


def test_two_jobs_on_one_recording_keep_their_own_detections(api_client, field_recording):
    """A second job at another threshold adds its own rows and changes none of the first's."""

    def run(threshold: float) -> InferenceJob:
        created = post_job(
            api_client,
            model_name="birdnet",
            recording_uuid=str(field_recording.uuid),
            config={"confidence_threshold": threshold, "store_embeddings": False},
        )
        job = InferenceJob.objects.get(uuid=created.json()["uuid"])
        services.start_job(job, sync=True)
        return job

    def scores(rows: list[dict]) -> list[float]:
        return [tag["score"] for row in rows for tag in row["tags"]]

    loose = run(0.1)
    before = detections(api_client, loose, page_size=1000)
    assert before and min(scores(before)) < 0.25
    strict = run(0.25)
    after = detections(api_client, loose, page_size=1000)
    assert after == before  # the same rows, uuids and scores
    kept = detections(api_client, strict, page_size=1000)
    assert kept and min(scores(kept)) >= 0.25 and len(scores(kept)) < len(scores(before))
    assert {row["job"] for row in kept} == {str(strict.uuid)}
    assert not {row["uuid"] for row in kept} & {row["uuid"] for row in before}
    # The second job selected from the first's stored output: no model call.
    assert api_client.get(job_url(strict)).json()["reused_recordings"] == 1
    assert api_client.get(job_url(loose)).json()["reused_recordings"] == 0


# Documentation


def test_the_documented_config_is_the_config_the_service_reads():
    assert tuple(InferenceConfigSerializer().fields) == FIELD_NAMES


def test_the_schemas_config_is_the_configs_fields_defaults_and_ranges(client):
    documented = client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]["InferenceConfig"]
    properties = documented["properties"]
    assert tuple(properties) == FIELD_NAMES
    for setting in SETTINGS:
        shown, rules = properties[setting.name], setting.metadata
        assert shown.get("default") == setting.default, setting.name
        assert shown.get("nullable", False) == (setting.default is None), setting.name
        if rules["kind"] in ("number", "whole") and "choices" not in rules:
            assert shown["minimum"] == rules["low"], setting.name
            # The overlap's bound is the model's window, not a number of the schema.
            assert shown.get("maximum") == (None if rules.get("below_window") else rules["high"]), setting.name
    # The week: -1 or 1-48, as the config checks it (0 is refused there, so it is not documented).
    allowed = set()
    for run in properties["week"]["oneOf"]:
        allowed |= set(run["enum"]) if "enum" in run else set(range(run["minimum"], run["maximum"] + 1))
    assert allowed == set(WEEKS) and 0 not in allowed
    with pytest.raises(ConfigError, match="week"):
        parse_config({"week": 0}, window_s=3)
    assert properties["custom_species_list"]["minItems"] == 1
    assert (
        properties["custom_species_list"]["maxItems"]
        == SETTINGS[FIELD_NAMES.index("custom_species_list")].metadata["high"]
    )


def test_the_schema_lists_the_jobs_endpoints(client):
    paths = client.get("/api/schema/", {"format": "json"}).json()["paths"]
    assert {"get", "post"} <= set(paths[JOBS])
    assert {"get", "delete"} <= set(paths[JOBS + "{uuid}/"])
    assert "post" in paths[JOBS + "{uuid}/start/"] and "post" in paths[JOBS + "{uuid}/retry/"]


def test_the_schema_documents_the_detections_as_a_filtered_page_of_predictions(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    listed = schema["paths"][JOBS + "{uuid}/detections/"]["get"]
    assert {parameter["name"] for parameter in listed["parameters"]} == {
        "uuid",
        "recording",
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
    page = listed["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert schema["components"]["schemas"][page]["properties"]["results"]["items"] == {
        "$ref": "#/components/schemas/ClipPrediction"
    }
    assert "job" in schema["components"]["schemas"]["ClipPrediction"]["properties"]
    assert "reused_recordings" in schema["components"]["schemas"]["InferenceJobDetail"]["properties"]
