"""Creating a job, the same through the API, the pages, the admin and `infer`: one service call that checks
everything at once, creates and starts in one transaction, and writes nothing when it refuses; who may create is
decided there; no-op actions are refused as conflicts; species by any of their names."""

from __future__ import annotations

import uuid
from io import StringIO

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django_q.models import OrmQ
from rest_framework.test import APIClient

from echoroo.models import SPECIES, Dataset, ModelRun, Recording, Tag
from echoroo.pages import may_start_jobs
from inference import services
from inference.config import ConfigError, InferenceConfig
from inference.forms import InferenceJobForm
from inference.models import InferenceJob, JobRecording

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/inference/jobs/"
# A duration as a FLAC with an unknown length (STREAMINFO total_samples 0) was once imported with.
MISREAD_DURATION_S = 1.15e15


def rows() -> dict[str, int]:
    """Everything creating or starting a job writes."""
    return {
        "model runs": ModelRun.objects.count(),
        "jobs": InferenceJob.objects.count(),
        "job recordings": JobRecording.objects.count(),
        "queued tasks": OrmQ.objects.count(),
    }


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def page_form(**changes) -> dict:
    """The new-job page's form as a browser posts it, with the form's initial values (not starting)."""
    data = {"model_name": "birdnet", "target": "dataset"}
    for name, field in InferenceJobForm().fields.items():
        if name not in ("model_name", "start_now") and field.initial is not None and field.initial is not False:
            data[name] = "on" if field.initial is True else str(field.initial)
    return {**data, **changes}


def messages_after(response) -> list[tuple[str, str]]:
    """The messages the page a POST led to shows: (level, text)."""
    return [(message.level_tag, str(message)) for message in response.context["messages"]]


@pytest.fixture
def no_perch(settings):
    settings.PERCH_MODEL = ""


@pytest.fixture
def misread_dataset(field_dataset) -> Dataset:
    """The field dataset with one recording whose duration was misread."""
    Recording.objects.filter(pk=field_dataset.recordings.order_by("path").first().pk).update(
        duration=MISREAD_DURATION_S
    )
    return field_dataset


# --- A refused job writes nothing, whoever asks ---------------------------------------------------


def test_a_perch_job_refused_over_the_api_leaves_no_model_run(no_perch, user, field_dataset):
    before = rows()
    response = api(user).post(
        JOBS, {"model_name": "perch", "dataset_uuid": str(field_dataset.uuid), "start": True}, format="json"
    )
    assert response.status_code == 400
    assert "PERCH_MODEL is not set" in response.json()["model_name"][0]
    assert rows() == before
    assert not ModelRun.objects.filter(name="perch").exists()


def test_a_perch_job_refused_on_the_page_in_the_admin_and_by_infer_leaves_nothing(
    no_perch, admin_client, field_dataset
):
    before = rows()
    response = admin_client.post(
        "/jobs/new/", page_form(model_name="perch", dataset=str(field_dataset.uuid), start_now="on")
    )
    assert response.status_code == 200 and "PERCH_MODEL is not set" in response.context["form"].errors["model_name"][0]
    response = admin_client.post(
        reverse("admin:echoroo_dataset_changelist"),
        {
            "action": "run_perch",
            "_selected_action": [field_dataset.pk],
            "run": "Run",
            **{key: value for key, value in page_form().items() if key not in ("model_name", "target")},
        },
    )
    assert response.status_code == 200 and "PERCH_MODEL is not set" in response.content.decode()
    with pytest.raises(CommandError, match="--model: PERCH_MODEL is not set"):
        call_command("infer", "--model", "perch", "--dataset", field_dataset.name, stdout=StringIO())
    assert rows() == before


def test_starting_at_once_a_dataset_whose_windows_a_job_cannot_count_is_a_400_and_writes_nothing(user, misread_dataset):
    before = rows()
    response = api(user).post(
        JOBS, {"model_name": "birdnet", "dataset_uuid": str(misread_dataset.uuid), "start": True}, format="json"
    )
    assert response.status_code == 400, response.content
    (message,) = response.json()["dataset_uuid"]
    assert "more than a job counts" in message and "1.15e+15 s" in message and "import the file again" in message
    assert rows() == before


def test_the_page_and_infer_refuse_the_misread_dataset_the_same_way(admin_client, misread_dataset):
    before = rows()
    response = admin_client.post("/jobs/new/", page_form(dataset=str(misread_dataset.uuid), start_now="on"))
    assert response.status_code == 200
    assert "more than a job counts" in response.context["target_form"].errors["dataset"][0]
    with pytest.raises(CommandError, match="--dataset: its recordings make"):
        call_command("infer", "--model", "birdnet", "--dataset", misread_dataset.name, stdout=StringIO())
    assert rows() == before


def test_create_and_start_is_one_call_that_queues_the_recordings(
    user, field_dataset, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = services.create_job(model_name="birdnet", dataset=field_dataset, start=True, by=user)
    assert job.status == InferenceJob.Status.RUNNING and job.created_by == user
    assert job.job_recordings.count() == 2 and OrmQ.objects.count() == 2


def test_several_jobs_are_created_together_or_not_at_all(user, misread_dataset):
    good = Dataset.objects.create(name="Good")
    before = rows()
    with pytest.raises(ConfigError, match="more than a job counts"):
        services.create_jobs(model_name="birdnet", targets=[good, misread_dataset], start=True, by=user)
    assert rows() == before


# --- Who may create -------------------------------------------------------------------------------


def test_any_logged_in_user_may_create_jobs_everywhere_and_the_rule_is_one(user, field_dataset):
    client = Client()
    client.force_login(user)
    assert client.get("/jobs/new/").status_code == 200
    response = client.post("/jobs/new/", page_form(dataset=str(field_dataset.uuid)))
    job = InferenceJob.objects.get()
    assert response.status_code == 302 and job.created_by == user and job.status == "pending"
    assert may_start_jobs(user) is services.may_create_jobs(user) is True


def test_nobody_logged_out_creates_a_job(field_dataset, django_user_model):
    from django.contrib.auth.models import AnonymousUser

    inactive = django_user_model.objects.create_user(username="gone", password="pw-gone-1", is_active=False)
    for who in (AnonymousUser(), inactive):
        with pytest.raises(PermissionDenied):
            services.create_job(model_name="birdnet", dataset=field_dataset, by=who)
    assert Client().get("/jobs/new/").status_code == 302  # to the login page
    assert not InferenceJob.objects.exists()


# --- Actions that would change nothing are refused, saying why -----------------------------------


@pytest.fixture
def completed_job(field_dataset, user) -> InferenceJob:
    """A job that ran to the end with every recording done: nothing to cancel, nothing to retry."""
    job = services.create_job(model_name="birdnet", dataset=field_dataset, start=True, by=user)
    JobRecording.objects.filter(job=job).update(status=JobRecording.Status.DONE)
    InferenceJob.objects.filter(pk=job.pk).update(status=InferenceJob.Status.COMPLETED, progress=100)
    job.refresh_from_db()
    return job


def test_cancelling_or_retrying_a_completed_job_is_a_409_saying_why(user, completed_job):
    url = f"{JOBS}{completed_job.uuid}/"
    response = api(user).delete(url)
    assert response.status_code == 409
    assert "already completed; only a pending or running job can be cancelled" in response.json()["status"][0]
    response = api(user).post(f"{url}retry/")
    assert response.status_code == 409
    assert "none of its recordings failed or was cancelled: nothing to retry" in response.json()["status"][0]
    completed_job.refresh_from_db()
    assert completed_job.status == InferenceJob.Status.COMPLETED and OrmQ.objects.count() == 0


def test_the_pages_and_the_admin_say_the_same_and_claim_no_success(admin_client, completed_job):
    said = []
    for url in (f"/jobs/{completed_job.uuid}/cancel/", f"/jobs/{completed_job.uuid}/retry/"):
        said += messages_after(admin_client.post(url, follow=True))
    changelist = reverse("admin:inference_inferencejob_changelist")
    for action in ("cancel_jobs", "retry_failed_jobs"):
        data = {"action": action, "index": 0, "_selected_action": [completed_job.pk]}
        said += messages_after(admin_client.post(changelist, data, follow=True))
    assert [level for level, _ in said] == ["error"] * 4
    assert "only a pending or running job can be cancelled" in said[0][1] and "nothing to retry" in said[1][1]
    assert said[2][1] == f"Could not cancel {completed_job}: {said[0][1]}"
    assert said[3][1] == f"Could not retry {completed_job}: {said[1][1]}"


# --- Species by any of their names -------------------------------------------------------------------


def test_a_species_list_takes_labels_scientific_and_common_names_and_ebird_codes(user, field_recording):
    names = ["Ruffed Grouse", "woothr", "turdus migratorius", "Troglodytes aedon_House Wren", "ruffed grouse"]
    job = services.create_job(
        model_name="birdnet", recording=field_recording, config={"custom_species_list": names}, by=user
    )
    # Stored as the model's labels, once each: what the runtime and the exports read.
    assert job.config["custom_species_list"] == [
        "Bonasa umbellus_Ruffed Grouse",
        "Hylocichla mustelina_Wood Thrush",
        "Turdus migratorius_American Robin",
        "Troglodytes aedon_House Wren",
    ]


def test_the_api_accepts_a_common_name_and_names_the_species_it_does_not_know(user, field_recording):
    body = {"model_name": "birdnet", "recording_uuid": str(field_recording.uuid)}
    response = api(user).post(JOBS, {**body, "config": {"custom_species_list": ["Ruffed Grouse"]}}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["config"]["custom_species_list"] == ["Bonasa umbellus_Ruffed Grouse"]
    response = api(user).post(
        JOBS, {**body, "config": {"custom_species_list": ["Ruffed Grouse", "Dodo"]}}, format="json"
    )
    (message,) = response.json()["config"]["custom_species_list"]
    assert "not a species BirdNET knows: 'Dodo'" in message and "common name or eBird code" in message


def test_a_common_name_two_species_share_asks_for_the_scientific_name(user, field_recording):
    Tag.objects.create(key=SPECIES, value="Bonasa imaginaria_Ruffed Grouse")
    with pytest.raises(ConfigError, match="names more than one species, give the scientific name: 'Ruffed Grouse'"):
        services.create_job(
            model_name="birdnet",
            recording=field_recording,
            config={"custom_species_list": ["Ruffed Grouse"]},
            by=user,
        )


def test_the_page_takes_common_names_one_a_line(admin_client, field_recording):
    data = page_form(target="recording", recording=str(field_recording.uuid), custom_species_list="Ruffed Grouse\n")
    assert admin_client.post("/jobs/new/", data).status_code == 302
    assert InferenceJob.objects.get().config["custom_species_list"] == ["Bonasa umbellus_Ruffed Grouse"]


# --- Every error in one round -----------------------------------------------------------------------


def test_the_api_reports_a_bad_target_and_bad_settings_in_one_answer(user):
    response = api(user).post(
        JOBS,
        {
            "model_name": "birdnet",
            "dataset_uuid": str(uuid.UUID(int=3)),
            "config": {"confidence_threshold": 2, "week": 0, "custom_species_list": ["Dodo"]},
        },
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()
    assert "no dataset has the uuid" in errors["dataset_uuid"][0]
    assert set(errors["config"]) == {"confidence_threshold", "week", "custom_species_list"}
    assert not InferenceJob.objects.exists()


def test_the_page_reports_a_bad_target_and_bad_settings_in_one_round(admin_client):
    data = page_form(target="recording", recording="no/such.wav", confidence_threshold="2", batch_size="many")
    response = admin_client.post("/jobs/new/", data)
    assert response.status_code == 200 and not InferenceJob.objects.exists()
    assert "No recording has" in response.context["target_form"].errors["recording"][0]
    errors = response.context["form"].errors
    assert "must be in [0, 1], got 2" in errors["confidence_threshold"][0]
    assert "Enter a whole number." in errors["batch_size"][0]


def test_the_admin_reports_a_field_that_does_not_parse_with_the_settings_out_of_range(admin_client, field_dataset):
    data = {key: value for key, value in page_form().items() if key not in ("model_name", "target")}
    data.update(confidence_threshold="high", overlap="5")
    response = admin_client.post(
        reverse("admin:echoroo_dataset_changelist"),
        {"action": "run_birdnet", "_selected_action": [field_dataset.pk], "run": "Run", **data},
    )
    errors = response.context["adminform"].form.errors
    assert "Enter a number." in errors["confidence_threshold"][0]
    assert "smaller than the model's 3 s window" in errors["overlap"][0]


# --- One default threshold --------------------------------------------------------------------------


def test_the_default_threshold_is_birdnet_analyzers_everywhere(client):
    assert InferenceConfig().confidence_threshold == 0.1
    assert InferenceJobForm().fields["confidence_threshold"].initial == 0.1
    schema = client.get("/api/schema/", {"format": "json"}).json()
    assert schema["components"]["schemas"]["InferenceConfig"]["properties"]["confidence_threshold"]["default"] == 0.1
