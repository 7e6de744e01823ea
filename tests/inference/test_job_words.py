"""How a job reads on its page, in the job list, the progress JSON and the admin: a completed job that left recordings
failed says so, windows are counted as kept, settings are in words, and each recording's place and week are shown."""

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from inference import services
from inference.models import InferenceJob, JobRecording
from inference.runner import recording_location, recording_week, run_job_recording

pytestmark = pytest.mark.django_db


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


def job_page(client, job: InferenceJob) -> str:
    return client.get(f"/jobs/{job.uuid}/").content.decode()


def recording_row(html: str, path_end: str) -> str:
    rows = re.findall(r"<tr data-status=.*?</tr>", html, re.S)
    (row,) = [row for row in rows if path_end in row.replace("<wbr>", "")]
    return row


@pytest.fixture
def drum_failed_job(field_dataset, admin_user) -> InferenceJob:
    """BirdNET over the field dataset (1min.wav: 20 windows; rugr_drum.wav: 4) with rugr_drum.wav gone: it fails."""
    field_dataset.recordings.get(path__endswith="rugr_drum.wav").absolute_path.unlink()
    job = services.create_job(model_name="birdnet", dataset=field_dataset, config={}, by=admin_user)
    return services.start_job(job, sync=True)


def test_a_completed_job_with_a_failed_recording_says_so_in_a_warning_tone(user_client, drum_failed_job):
    job = drum_failed_job
    assert job.status == InferenceJob.Status.COMPLETED, "one recording of two failed: the job completes"
    badge = '<span class="job-status status-partial">completed with 1 failed recording</span>'
    assert badge in job_page(user_client, job)
    list_row = re.search(rf'<tr data-job="{job.uuid}".*?</tr>', user_client.get("/jobs/").content.decode(), re.S)
    assert badge in list_row.group(0)
    (polled,) = user_client.get("/jobs/progress.json", {"job": str(job.uuid)}).json()["jobs"]
    assert (polled["status"], polled["status_text"], polled["status_tone"]) == (
        "completed",
        "completed with 1 failed recording",
        "partial",
    )


def test_a_job_counts_only_the_windows_of_recordings_it_kept(user_client, drum_failed_job):
    job = drum_failed_job
    assert (job.processed_clips, job.total_clips) == (20, 24), "the failed recording's 4 windows are not processed"
    assert job.progress == pytest.approx(100 * 20 / 24)
    html = job_page(user_client, job)
    assert '<span class="job-clips">20 / 24</span> windows' in html
    assert "(4 in failed or cancelled recordings, none kept)" in html
    failed = recording_row(html, "rugr_drum.wav")
    assert "none of 4 kept" in failed and "4 / 4" not in failed and "0 / 4" not in failed
    assert "20 / 20" in recording_row(html, "1min.wav")


def test_a_recording_that_failed_part_way_adds_none_of_its_windows(field_dataset, admin_user):
    job = services.start_job(services.create_job(model_name="birdnet", dataset=field_dataset, by=admin_user))
    rows = {row.recording.path.rsplit("/", 1)[1]: row for row in job.job_recordings.select_related("recording")}
    # As a worker leaves a file whose decoding broke 36 s in: 12 windows analysed, nothing stored.
    JobRecording.objects.filter(pk=rows["1min.wav"].pk).update(
        status=JobRecording.Status.FAILED, processed_clips=12, error_message="decoding failed after 36.0 s"
    )
    assert run_job_recording(job.pk, rows["rugr_drum.wav"].recording_id) == JobRecording.Status.DONE
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.COMPLETED
    assert (job.processed_clips, job.total_clips) == (4, 24)


def test_a_cancelled_recording_shows_that_nothing_of_it_was_kept(user_client, staff, field_dataset, admin_user):
    job = services.start_job(services.create_job(model_name="birdnet", dataset=field_dataset, by=admin_user))
    services.cancel_job(job)
    # A worker that had analysed all 20 windows of 1min.wav when it saw the cancel: it stores nothing.
    JobRecording.objects.filter(job=job, recording__path__endswith="1min.wav").update(
        status=JobRecording.Status.CANCELLED, processed_clips=20
    )
    html = job_page(user_client, job)
    row = recording_row(html, "1min.wav")
    assert "cancelled" in row and "none of 20 kept" in row and "20 / 20" not in row
    assert re.search(r'title="it stopped after 20 windows; nothing of a cancelled recording is kept', row)
    assert '<span class="job-clips">0 / 24</span>' in html
    admin_page = user_client.get(reverse("admin:inference_inferencejob_change", args=[job.pk]))
    assert admin_page.status_code == 302, "the admin is for staff"
    user_client.force_login(staff)
    staff.is_superuser = True
    staff.save()
    admin_html = user_client.get(reverse("admin:inference_inferencejob_change", args=[job.pk])).content.decode()
    assert "none of 20 kept" in admin_html and "20 / 20" not in admin_html


def test_the_admin_job_list_says_a_completed_job_left_a_recording_failed(admin_client, drum_failed_job):
    html = admin_client.get(reverse("admin:inference_inferencejob_changelist")).content.decode()
    assert '<strong style="color: #b26a00">completed with 1 failed recording</strong>' in html
    assert "20 / 24" in html


def test_settings_read_in_words_not_as_keys(user_client, field_recording, admin_user):
    config = {"confidence_threshold": 0.1, "overlap": 1.5, "use_gpu": False, "store_embeddings": False}
    job = services.create_job(model_name="birdnet", recording=field_recording, config=config, by=admin_user)
    settings_cell = re.search(r'<td class="settings">(.*?)</td>', job_page(user_client, job), re.S).group(1)
    for words in (
        "scores of at least 0.1",
        "sensitivity 1",
        "species likely at each recording&#x27;s place and week",
        "windows overlap 1.5 s",
        "32 windows a batch",
        "CPU only",
        "stores detections, no embeddings",
    ):
        assert words in settings_cell, words
    for key in ("use_gpu", "confidence_threshold", "True", "False", "None"):
        assert key not in settings_cell, key


def test_a_species_list_is_named_in_the_settings_and_no_place_is_shown(user_client, field_dataset, admin_user):
    species = ["Hylocichla mustelina_Wood Thrush", "Bonasa umbellus_Ruffed Grouse"]
    config = {"custom_species_list": species}
    job = services.start_job(
        services.create_job(model_name="birdnet", dataset=field_dataset, config=config, by=admin_user)
    )
    html = job_page(user_client, job)
    assert "only 2 species: Hylocichla mustelina_Wood Thrush, Bonasa umbellus_Ruffed Grouse" in html
    assert "species filter at" not in html and "species likely" not in html


def test_each_recording_shows_the_place_and_week_its_species_filter_used(user_client, field_dataset, admin_user):
    one_minute = field_dataset.recordings.get(path__endswith="1min.wav")
    one_minute.recorded_at = timezone.make_aware(dt.datetime(2026, 4, 9, 5, 30))
    one_minute.save(update_fields=["recorded_at"])
    job = services.start_job(services.create_job(model_name="birdnet", dataset=field_dataset, by=admin_user))
    html = job_page(user_client, job)
    assert "species filter at" in html
    row = recording_row(html, "1min.wav")
    # The site's place (North transect) and the week of the recording's date: what the runner gives the model.
    assert recording_location(one_minute, job.settings) == (42.47, -76.45)
    assert recording_week(one_minute, job.settings) == 14
    assert "42.47, -76.45" in row and "week 14 (8–14 Apr)" in row
    assert "42.47, -76.45" in recording_row(html, "rugr_drum.wav")
    assert "the whole year" in recording_row(html, "rugr_drum.wav"), "no recording time: BirdNET's whole year"

    config = {"latitude": 10.5, "longitude": 20.25, "week": 30}
    moved = services.start_job(
        services.create_job(model_name="birdnet", dataset=field_dataset, config=config, by=admin_user)
    )
    row = recording_row(job_page(user_client, moved), "1min.wav")
    assert "10.5, 20.25" in row and "week 30 (8–14 Aug)" in row


def test_cancelling_from_the_job_page_asks_first(staff_client_of, field_recording, admin_user):
    job = services.start_job(services.create_job(model_name="birdnet", recording=field_recording, by=admin_user))
    html = staff_client_of(admin_user).get(f"/jobs/{job.uuid}/").content.decode()
    form = re.search(rf'<form method="post" action="/jobs/{job.uuid}/cancel/"[^>]*>', html).group(0)
    assert 'data-confirm="Cancel this job?' in form


@pytest.fixture
def staff_client_of(client):
    def logged_in(user):
        client.force_login(user)
        return client

    return logged_in


def test_every_page_names_an_icon_and_favicon_ico_leads_to_it(user_client, settings):
    html = user_client.get("/").content.decode()
    icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html).group(1)
    assert icon.endswith("echoroo/favicon.svg")
    response = user_client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == icon
    svg = (settings.BASE_DIR / "static" / "echoroo" / "favicon.svg").read_text()
    assert svg.startswith("<svg") and "viewBox" in svg
