"""The admin of inference jobs: run a model on datasets and recordings, then follow, start, cancel and retry jobs."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django_q.models import OrmQ

from echoroo.models import ClipPrediction, Dataset, ModelRun, Recording, SoundEventPrediction
from inference import admin as inference_admin
from inference import services
from inference.forms import InferenceJobForm
from inference.models import InferenceJob, JobRecording
from tests.pages.detections import classifier_scores, job_with_detections

pytestmark = pytest.mark.django_db

SHA = "cd" * 32
ROBIN = "Turdus migratorius_American Robin"
WREN = "Troglodytes aedon_House Wren"


def changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def change_page(job: InferenceJob) -> str:
    return reverse("admin:inference_inferencejob_change", args=[job.pk])


def settings_form(model_name: str, **changes) -> dict:
    """The settings form as a browser posts it, from the form's initial values and `changes`."""
    data = {}
    for name, field in InferenceJobForm(model_name=model_name).fields.items():
        value = changes.get(name, field.initial)
        if value is True:
            data[name] = "on"
        elif value is not None and value is not False:
            data[name] = str(value)
    return data


def choose_action(client, model, action: str, rows):
    """What the changelist posts when rows are ticked and an action applied."""
    return client.post(changelist(model), {"action": action, "index": 0, "_selected_action": [r.pk for r in rows]})


def submit_action(client, model, action: str, rows, **changes):
    """What the action's settings page posts back."""
    data = {"action": action, "select_across": "0", "_selected_action": [r.pk for r in rows], "run": "Run"}
    return client.post(changelist(model), {**data, **settings_form(action.removeprefix("run_"), **changes)})


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def act_on_jobs(client, action: str, jobs) -> list[str]:
    """Apply a job-list action and return the messages the list then shows."""
    response = choose_action(client, InferenceJob, action, jobs)
    assert response.status_code == 302
    return [str(message) for message in client.get(response.url).context["messages"]]


def grant(user, *codenames: str):
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # fresh: permissions are cached on the instance


@pytest.fixture
def job(field_dataset, admin_user) -> InferenceJob:
    """A pending BirdNET job on the field dataset, created by the superuser."""
    return services.create_job(model_name="birdnet", dataset=field_dataset, by=admin_user)


@pytest.fixture
def other_staff(client, staff):
    """A staff member who did not create the job, allowed to see and change jobs in the admin."""
    client.force_login(grant(staff, "view_inferencejob", "change_inferencejob"))
    return client


# --- "Run BirdNET…" and "Run Perch…" ----------------------------------------------------------


def test_the_run_birdnet_action_on_datasets_asks_for_the_settings(admin_client, field_dataset):
    response = choose_action(admin_client, Dataset, "run_birdnet", [field_dataset])
    assert response.status_code == 200
    content = response.content.decode()
    assert "Run BirdNET" in content and "Field season" in content
    for name in ("confidence_threshold", "overlap", "batch_size", "sensitivity", "custom_species_list", "week"):
        assert f'name="{name}"' in content
    assert re.search(r'<input type="checkbox" name="start_now"[^>]* checked>', content)
    assert not InferenceJob.objects.exists()


def test_the_run_perch_action_on_recordings_asks_for_the_settings_without_birdnets(admin_client, field_dataset):
    recordings = list(field_dataset.recordings.all())
    response = choose_action(admin_client, Recording, "run_perch", recordings)
    assert response.status_code == 200
    content = response.content.decode()
    assert "One Perch job on each of these 2 recordings" in content
    assert 'name="confidence_threshold"' in content and 'name="sensitivity"' not in content
    assert content.count('name="_selected_action"') == 2


def test_valid_settings_create_and_start_one_job_per_dataset(
    admin_client, admin_user, field_dataset, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = submit_action(admin_client, Dataset, "run_birdnet", [field_dataset], confidence_threshold=0.3)
    assert response.status_code == 302
    job = InferenceJob.objects.get()
    assert (job.dataset, job.created_by, job.status) == (field_dataset, admin_user, InferenceJob.Status.RUNNING)
    assert job.config["confidence_threshold"] == 0.3 and job.config["custom_species_list"] is None
    assert job.job_recordings.count() == 2
    assert OrmQ.objects.count() == 2  # one queued task per recording, waiting for a worker
    (message,) = messages_of(response)
    assert message.startswith("Created and started 1 BirdNET job")
    assert (
        f'<a href="{change_page(job)}">birdnet 2.4 on Field season</a>'
        in admin_client.get(response.url).content.decode()
    )


def test_valid_settings_create_one_job_per_selected_recording(admin_client, field_dataset):
    recordings = list(field_dataset.recordings.all())
    species = "Hylocichla mustelina\n\nTurdus migratorius_American Robin\n"
    submit_action(admin_client, Recording, "run_birdnet", recordings, custom_species_list=species, overlap=1.5)
    jobs = InferenceJob.objects.order_by("recording__path")
    assert [job.recording for job in jobs] == sorted(recordings, key=lambda r: r.path)
    assert {job.status for job in jobs} == {InferenceJob.Status.RUNNING}
    assert jobs[0].config["overlap"] == 1.5
    # Stored as the model's labels, whichever name was given.
    assert jobs[0].config["custom_species_list"] == [
        "Hylocichla mustelina_Wood Thrush",
        "Turdus migratorius_American Robin",
    ]


def test_without_start_now_the_jobs_wait(admin_client, field_dataset):
    response = submit_action(admin_client, Dataset, "run_birdnet", [field_dataset], start_now=False)
    job = InferenceJob.objects.get()
    assert job.status == InferenceJob.Status.PENDING and not job.job_recordings.exists()
    assert "Created 1 BirdNET job, pending until started from the job list" in messages_of(response)[0]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("overlap", 5, "smaller than the model's 3 s window"),
        ("confidence_threshold", 2, "must be in [0, 1], got 2"),
        ("batch_size", 0, "must be between 1 and 512"),
        ("custom_species_list", "Turdus imaginarius", "not a species BirdNET knows: 'Turdus imaginarius'"),
        ("confidence_threshold", "high", "Enter a number."),
    ],
)
def test_invalid_settings_show_the_error_on_their_field(admin_client, field_dataset, field, value, error):
    response = submit_action(admin_client, Dataset, "run_birdnet", [field_dataset], **{field: value})
    assert response.status_code == 200
    (shown,) = response.context["adminform"].form.errors[field]
    assert error in shown
    assert "Please correct the error below." in response.content.decode()
    assert not InferenceJob.objects.exists()


def test_a_latitude_without_longitude_is_refused(admin_client, field_dataset):
    response = submit_action(admin_client, Dataset, "run_birdnet", [field_dataset], latitude=42.5)
    assert "give both or neither" in response.context["adminform"].form.errors["longitude"][0]


def test_too_many_rows_at_once_are_refused(admin_client, field_dataset, monkeypatch):
    monkeypatch.setattr(inference_admin, "MAX_TARGETS", 1)
    response = choose_action(admin_client, Recording, "run_birdnet", field_dataset.recordings.all())
    assert response.status_code == 302 and "Select at most 1 recordings" in messages_of(response)[0]


def test_staff_who_may_see_datasets_may_run_a_model_as_anyone_logged_in_may(client, staff, field_dataset):
    # One rule for the admin, the pages and the API (services.may_create_jobs): any logged-in user creates jobs.
    client.force_login(grant(staff, "view_dataset"))
    assert choose_action(client, Dataset, "run_birdnet", [field_dataset]).status_code == 200
    submit_action(client, Dataset, "run_birdnet", [field_dataset], start_now=False)
    assert InferenceJob.objects.get().created_by == staff


# --- The job list ----------------------------------------------------------------------------


def test_the_job_list_shows_model_target_status_progress_and_clips(admin_client, job):
    InferenceJob.objects.filter(pk=job.pk).update(
        status=InferenceJob.Status.RUNNING, progress=42.7, processed_clips=427, total_clips=1000
    )
    content = admin_client.get(changelist(InferenceJob)).content.decode()
    assert "birdnet 2.4" in content and 'dataset <a href="/admin/echoroo/dataset/' in content
    assert '<progress max="100" value="42.7"></progress> 42 %' in content
    assert "427 / 1,000" in content and ">running<" in content
    assert "New jobs start from the" in content


def test_the_job_list_finds_a_job_by_uuid_and_by_dataset_name(admin_client, job):
    for term in (str(job.uuid), "field sea"):
        response = admin_client.get(changelist(InferenceJob), {"q": term})
        assert list(response.context["cl"].result_list) == [job]
    response = admin_client.get(changelist(InferenceJob), {"q": "another dataset"})
    assert not response.context["cl"].result_list


def test_jobs_are_not_added_or_edited_on_their_own_pages(admin_client, job):
    assert admin_client.get(reverse("admin:inference_inferencejob_add")).status_code == 403
    response = admin_client.get(change_page(job))
    assert response.status_code == 200 and 'name="_save"' not in response.content.decode()


# --- Start, cancel, retry ------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["superuser", "other staff"])
def test_start_cancel_and_retry_work_for_staff_who_did_not_create_the_job(
    who, admin_client, other_staff, job, django_capture_on_commit_callbacks
):
    client = admin_client if who == "superuser" else other_staff
    with django_capture_on_commit_callbacks(execute=True):
        assert act_on_jobs(client, "start_jobs", [job]) == ["Started 1 job."]
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.RUNNING and OrmQ.objects.count() == 2

    assert act_on_jobs(client, "cancel_jobs", [job]) == ["Cancelled 1 job."]
    assert JobRecording.objects.filter(job=job, status=JobRecording.Status.CANCELLED).count() == 2

    assert act_on_jobs(client, "retry_failed_jobs", [job]) == ["Retrying the failed recordings of 1 job."]
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.RUNNING


def test_actions_say_what_they_could_not_do(admin_client, job):
    act_on_jobs(admin_client, "start_jobs", [job])
    assert act_on_jobs(admin_client, "start_jobs", [job]) == [
        f"Could not start {job}: the job is running; only a pending job can be started"
    ]
    (refusal,) = act_on_jobs(admin_client, "retry_failed_jobs", [job])
    assert "retry a job once it has finished" in refusal
    act_on_jobs(admin_client, "cancel_jobs", [job])
    assert act_on_jobs(admin_client, "cancel_jobs", [job]) == [
        f"Could not cancel {job}: the job is already cancelled; only a pending or running job can be cancelled"
    ]


def test_a_refusal_of_the_service_is_shown_as_a_message(admin_client, job, monkeypatch):
    monkeypatch.setattr(InferenceJob, "can_be_changed_by", lambda self, user: False)
    (refusal,) = act_on_jobs(admin_client, "start_jobs", [job])
    assert "only staff or the job's creator may start, cancel or retry it" in refusal
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.PENDING


def test_staff_who_may_only_view_jobs_get_no_actions(client, staff, job):
    client.force_login(grant(staff, "view_inferencejob"))
    response = client.get(changelist(InferenceJob))
    assert response.status_code == 200 and "start_jobs" not in response.content.decode()
    choose_action(client, InferenceJob, "start_jobs", [job])
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.PENDING


# --- The job page --------------------------------------------------------------------------------


def test_the_job_page_lists_failed_recordings_with_their_errors(admin_client, job, field_recording):
    services.start_job(job)
    JobRecording.objects.filter(job=job, recording=field_recording).update(
        status=JobRecording.Status.FAILED, attempts=2, error_message="could not decode 1min.wav: bad header"
    )
    response = admin_client.get(change_page(job))
    content = response.content.decode()
    assert "could not decode 1min.wav: bad header" in content
    states = {state["status"]: state["recordings"] for state in response.context["recording_states"]}
    assert states == {"pending": 1, "failed": 1}
    assert len(response.context["recording_rows"]) == 2 and "No species found yet." in content


def test_the_job_page_of_a_big_job_shows_only_failed_and_running_recordings(admin_client, admin_user, monkeypatch):
    monkeypatch.setattr(inference_admin, "RECORDING_ROWS", 5)
    dataset = Dataset.objects.create(name="Big season")
    Recording.objects.bulk_create(
        Recording(dataset=dataset, path=f"r{i:03}.wav", sha256=SHA, duration=60, samplerate=48000, channels=1)
        for i in range(12)
    )
    job = services.start_job(services.create_job(model_name="birdnet", dataset=dataset, by=admin_user))
    failed = JobRecording.objects.filter(job=job).order_by("id")[:3].values_list("id", flat=True)
    JobRecording.objects.filter(id__in=list(failed)).update(status=JobRecording.Status.FAILED, error_message="boom")
    response = admin_client.get(change_page(job))
    rows = response.context["recording_rows"]
    assert [row.status for row in rows] == ["failed"] * 3
    content = response.content.decode()
    assert "The first 3 failed or running of 12 recordings" in content
    browse = f"{changelist(JobRecording)}?job__id__exact={job.pk}&amp;status__exact=failed"
    assert browse in content
    listed = admin_client.get(changelist(JobRecording), {"job__id__exact": job.pk, "status__exact": "failed"})
    assert listed.status_code == 200 and len(listed.context["cl"].result_list) == 3


def test_a_job_run_to_the_end_shows_completed_100_percent_and_its_top_species(
    admin_client, admin_user, field_recording
):
    job = services.create_job(
        model_name="birdnet", recording=field_recording, config={"confidence_threshold": 0.25}, by=admin_user
    )
    services.start_job(job, sync=True)
    response = admin_client.get(change_page(job))
    content = response.content.decode()
    assert ">completed<" in content and "</progress> 100 %" in content and "20 / 20" in content
    top = response.context["top_species"]
    assert top and top[0]["predictions"] >= top[-1]["predictions"] and 0.25 <= top[0]["max_score"] <= 1
    assert f"<tr><td>{top[0]['tag__value']}</td><td>{top[0]['predictions']}</td>" in content
    assert any(row["tag__value"] == "Hylocichla mustelina_Wood Thrush" for row in top)


def test_the_job_page_sums_up_and_links_to_only_its_own_detections(admin_client, field_recording):
    run = ModelRun.objects.create(name="birdnet", version="2.4", segment_duration=3.0)
    older = job_with_detections(run, {field_recording: {0.0: {ROBIN: 0.9}, 3.0: {WREN: 0.4}}}, age_s=60)
    newer = job_with_detections(run, {field_recording: {0.0: {ROBIN: 0.8}}})
    classifier_scores(run, field_recording, {0.0: {"Robin song": 0.99}})
    for job, expected in ((older, {ROBIN: 0.9, WREN: 0.4}), (newer, {ROBIN: 0.8})):
        response = admin_client.get(change_page(job))
        top = response.context["top_species"]
        assert {row["tag__value"]: (row["predictions"], row["max_score"]) for row in top} == {
            species: (1, score) for species, score in expected.items()
        }
        content = response.content.decode()
        rows = f"{changelist(ClipPrediction)}?job__id__exact={job.pk}"
        assert f'<a href="{rows}">{len(expected)} window detections</a>' in content
        assert f"{changelist(SoundEventPrediction)}?job__id__exact={job.pk}" in content
        listed = admin_client.get(changelist(ClipPrediction), {"job__id__exact": job.pk}).context["cl"].result_list
        assert {prediction.job_id for prediction in listed} == {job.pk} and len(listed) == len(expected)


def test_the_job_page_says_how_many_recordings_came_from_stored_model_output(admin_client, field_dataset):
    run = ModelRun.objects.create(name="birdnet", version="2.4", segment_duration=3.0)
    first, second = field_dataset.recordings.order_by("path")
    job = job_with_detections(run, {first: {0.0: {ROBIN: 0.9}}, second: {}}, dataset=field_dataset, reused=(first,))
    content = admin_client.get(change_page(job)).content.decode()
    assert "1 of 2 recordings from stored model output, no model run." in content
    listed = admin_client.get(changelist(JobRecording), {"job__id__exact": job.pk, "reused__exact": "1"})
    assert [row.recording for row in listed.context["cl"].result_list] == [first]


def test_a_species_summary_that_takes_too_long_gives_up_and_the_page_still_shows(admin_client, job, monkeypatch):
    monkeypatch.setattr(inference_admin, "TOP_SPECIES_TIME_LIMIT_MS", 50)
    slow = InferenceJob.objects.raw("SELECT id, pg_sleep(1) FROM inference_inferencejob")
    monkeypatch.setattr(inference_admin, "species_summary", lambda job: slow)
    response = admin_client.get(change_page(job))
    assert response.status_code == 200 and response.context["top_species"] is None
    assert f"export_detections --job {job.uuid}" in response.content.decode()
    assert InferenceJob.objects.get(pk=job.pk) == job  # the connection is still usable


def test_the_settings_form_without_a_fixed_model_asks_for_one_and_gives_create_job_arguments():
    form = InferenceJobForm({**settings_form("birdnet", custom_species_list=" \n"), "model_name": "perch"})
    assert list(form.fields)[0] == "model_name" and form.is_valid(), form.errors
    arguments = form.job_arguments()
    assert arguments["model_name"] == "perch"
    assert "custom_species_list" not in arguments["config"] and "start_now" not in arguments["config"]
    assert arguments["config"]["sensitivity"] == 1.0 and arguments["config"]["use_gpu"] is True
