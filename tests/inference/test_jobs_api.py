"""The inference jobs API (seed-design.md §5.1): validation, permissions, start/cancel/retry, list and detail.

No model runs here (inference is tested in test_jobs.py) except in the one test that runs a job
synchronously; starting a job only queues django-q2 tasks on the ORM broker.
"""

from __future__ import annotations

import uuid

import pytest
from django_q.models import OrmQ
from rest_framework.test import APIClient

from inference import services
from inference.api.serializers import FAILED_RECORDINGS_SHOWN, InferenceConfigSerializer
from inference.config import FIELD_NAMES
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


def test_cancelling_a_finished_job_changes_nothing(api_client, job):
    InferenceJob.objects.filter(pk=job.pk).update(status=InferenceJob.Status.COMPLETED, progress=100)
    response = api_client.delete(job_url(job))
    assert response.status_code == 200
    assert response.json()["status"] == "completed" and response.json()["progress"] == 100
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
        "created_by",
        "created_at",
        "started_at",
        "completed_at",
        "duration_s",
        "recordings",
        "failed_recordings",
    }
    assert body["status"] == "completed" and body["created_by"] == "ecologist"
    assert body["recordings"] == {"pending": 0, "running": 0, "done": 1, "failed": 1, "cancelled": 0}
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


# Documentation


def test_the_documented_config_is_the_config_the_service_reads():
    assert tuple(InferenceConfigSerializer().fields) == FIELD_NAMES


def test_the_schema_lists_the_jobs_endpoints(client):
    paths = client.get("/api/schema/", {"format": "json"}).json()["paths"]
    assert {"get", "post"} <= set(paths[JOBS])
    assert {"get", "delete"} <= set(paths[JOBS + "{uuid}/"])
    assert "post" in paths[JOBS + "{uuid}/start/"] and "post" in paths[JOBS + "{uuid}/retry/"]
