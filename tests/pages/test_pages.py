"""The HTML pages and what they load, through Django's test client, on a real BirdNET job's results."""

from __future__ import annotations

import io
import re
import uuid
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from django.test import Client
from PIL import Image

from echoroo.models import SPECIES, Clip, ClipPrediction, ClipPredictionTag, ModelRun, Recording, Tag
from inference import services
from inference.models import InferenceJob, JobRecording
from tests.pages.detections import classifier_scores, job_with_detections, score_clips

pytestmark = pytest.mark.django_db


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def staff_client(staff):
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def best_clip(birdnet_job) -> Clip:
    """The clip with the highest species score of the job."""
    best = ClipPredictionTag.objects.order_by("-score").select_related("clip_prediction__clip__recording").first()
    return best.clip_prediction.clip


def page_urls(job: InferenceJob, clip: Clip) -> list[str]:
    recording = clip.recording
    return [
        "/",
        "/jobs/",
        "/jobs/new/",
        f"/jobs/{job.uuid}/",
        f"/recordings/{recording.uuid}/",
        f"/search/?clip={clip.uuid}",
    ]


def fetched_urls(job: InferenceJob, clip: Clip) -> list[str]:
    return [
        f"/jobs/progress.json?job={job.uuid}",
        f"/clips/{clip.uuid}/audio.wav",
        f"/clips/{clip.uuid}/spectrogram.png",
        f"/recordings/{clip.recording.uuid}/spectrogram.png?start=0&end=10",
    ]


# --- Login --------------------------------------------------------------------------------------


def test_every_page_sends_anonymous_visitors_to_the_login_page(client, birdnet_job, best_clip):
    for url in page_urls(birdnet_job, best_clip):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url


def test_audio_images_and_progress_answer_401_to_anonymous_visitors(client, birdnet_job, best_clip):
    for url in fetched_urls(birdnet_job, best_clip):
        assert client.get(url).status_code == 401, url


def test_posts_that_change_a_job_need_a_login(client, birdnet_job):
    response = client.post(f"/jobs/{birdnet_job.uuid}/cancel/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_login_page_logs_a_user_in_and_goes_back_where_they_were(client, user):
    assert client.get("/login/?next=/jobs/").status_code == 200
    response = client.post("/login/", {"username": "ecologist", "password": "pw-ecologist-1", "next": "/jobs/"})
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    assert client.get("/jobs/").status_code == 200


def test_every_page_renders_for_a_logged_in_user_with_the_navigation(admin_client, birdnet_job, best_clip):
    for url in page_urls(birdnet_job, best_clip):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for link in ('href="/"', 'href="/jobs/"', 'href="/search/"', 'href="/admin/"', 'href="/api/docs/"'):
            assert link in html, (url, link)


# --- Home and jobs --------------------------------------------------------------------------------


def test_home_lists_datasets_with_recording_counts_and_hours_and_recent_jobs(user_client, birdnet_job, field_dataset):
    response = user_client.get("/")
    dataset = next(d for d in response.context["datasets"] if d.pk == field_dataset.pk)
    assert dataset.recordings_count == 2
    assert dataset.hours == pytest.approx((60.0 + 10.0) / 3600, abs=1e-3)
    assert [job.uuid for job in response.context["jobs"]] == [birdnet_job.uuid]
    html = response.content.decode()
    assert "Field season" in html and f'data-job="{birdnet_job.uuid}"' in html
    assert "Start a job" in html, "anyone logged in may create jobs (inference.services.may_create_jobs)"


def test_the_start_button_is_for_those_logged_in(client, db):
    response = client.get("/")
    assert response.status_code == 302 and "Start a job" not in response.content.decode()


def test_the_job_list_shows_model_target_status_progress_and_duration(user_client, birdnet_job):
    html = user_client.get("/jobs/").content.decode()
    row = re.search(rf'<tr data-job="{birdnet_job.uuid}".*?</tr>', html, re.S).group(0)
    assert "birdnet" in row and "1min.wav" in row and "completed" in row
    assert '<progress max="100" value="100.0">' in row and "100 %" in row
    assert "20 / 20" in row
    assert re.search(r'class="job-duration">\d+(\.\d+)? (s|min)<', row)


def test_the_job_list_filters_by_status(user_client, birdnet_job):
    assert len(user_client.get("/jobs/?status=completed").context["jobs"]) == 1
    assert len(user_client.get("/jobs/?status=running").context["jobs"]) == 0


def test_progress_json_gives_each_asked_job_status_and_progress(user_client, birdnet_job):
    response = user_client.get("/jobs/progress.json", {"job": [str(birdnet_job.uuid), str(uuid.uuid4())]})
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    (job,) = response.json()["jobs"]
    assert job["uuid"] == str(birdnet_job.uuid)
    assert job["status"] == "completed" and job["finished"] and job["percent"] == 100
    assert job["processed_clips"] == job["total_clips"] == 20
    assert user_client.get("/jobs/progress.json?job=not-a-uuid").status_code == 400


def test_progress_is_rounded_down_so_a_job_at_99_6_percent_is_not_done(user_client, birdnet_job):
    InferenceJob.objects.filter(pk=birdnet_job.pk).update(progress=99.6, status="running")
    (job,) = user_client.get("/jobs/progress.json", {"job": str(birdnet_job.uuid)}).json()["jobs"]
    assert job["percent"] == 99 and not job["finished"]


def test_the_job_page_shows_recordings_settings_and_species_with_links_to_their_best_clips(user_client, birdnet_job):
    response = user_client.get(f"/jobs/{birdnet_job.uuid}/")
    html = response.content.decode()
    assert [row.recording.path for row in response.context["recording_rows"]] == ["Field_season/1min.wav"]
    species = response.context["species"]
    assert species, "BirdNET finds birds in 1min.wav"
    top = species[0]
    assert top["predictions"] >= 1 and 0 < top["max_score"] <= 1
    best = top["best"][0]
    assert best["score"] == pytest.approx(top["max_score"])
    recording = Recording.objects.get(path__endswith="1min.wav")
    assert best["url"].startswith(f"/recordings/{recording.uuid}/?t=")
    assert best["url"] in html.replace("&amp;", "&")
    assert "scores of at least 0.1" in html, "the settings, in words"


def test_a_failed_recording_shows_its_error_on_the_job_page(user_client, field_recording, admin_user):
    job = services.create_job(model_name="birdnet", recording=field_recording, config={}, by=admin_user)
    field_recording.absolute_path.unlink()
    job = services.start_job(job, sync=True)
    html = user_client.get(f"/jobs/{job.uuid}/").content.decode()
    assert "failed" in html and "no such file" in html


# --- Start, cancel, retry: staff only, with CSRF -----------------------------------------------------


def test_only_those_who_may_change_a_job_see_its_buttons(user_client, staff_client, field_recording, admin_user):
    job = services.create_job(model_name="birdnet", recording=field_recording, config={}, by=admin_user)
    user_html = user_client.get(f"/jobs/{job.uuid}/").content.decode()
    assert f"/jobs/{job.uuid}/start/" not in user_html and f"/jobs/{job.uuid}/cancel/" not in user_html
    staff_html = staff_client.get(f"/jobs/{job.uuid}/").content.decode()
    assert f"/jobs/{job.uuid}/start/" in staff_html and f"/jobs/{job.uuid}/cancel/" in staff_html


def test_a_user_who_may_not_change_a_job_is_refused(user_client, field_recording, admin_user):
    job = services.create_job(model_name="birdnet", recording=field_recording, config={}, by=admin_user)
    assert user_client.post(f"/jobs/{job.uuid}/cancel/").status_code == 403
    job.refresh_from_db()
    assert job.status == "pending"


def test_a_post_without_the_csrf_token_is_refused(staff, field_recording, admin_user):
    job = services.create_job(model_name="birdnet", recording=field_recording, config={}, by=admin_user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post(f"/jobs/{job.uuid}/cancel/").status_code == 403
    job.refresh_from_db()
    assert job.status == "pending"

    page = client.get(f"/jobs/{job.uuid}/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(f"/jobs/{job.uuid}/cancel/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.uuid}/"
    job.refresh_from_db()
    assert job.status == "cancelled"


def test_staff_start_a_pending_job_and_retry_its_failed_recordings(staff_client, field_recording, admin_user):
    job = services.create_job(model_name="birdnet", recording=field_recording, config={}, by=admin_user)
    staff_client.post(f"/jobs/{job.uuid}/start/")
    job.refresh_from_db()
    assert job.status == "running" and job.job_recordings.count() == 1
    staff_client.post(f"/jobs/{job.uuid}/cancel/")
    job.refresh_from_db()
    assert job.status == "cancelled"
    response = staff_client.post(f"/jobs/{job.uuid}/retry/", follow=True)
    job.refresh_from_db()
    assert job.status == "running"
    assert "Retrying" in response.content.decode()


def test_starting_a_job_that_is_not_pending_says_why(staff_client, birdnet_job):
    response = staff_client.post(f"/jobs/{birdnet_job.uuid}/start/", follow=True)
    assert "only a pending job can be started" in response.content.decode()


def test_the_start_job_page_is_for_anyone_logged_in_as_the_api_is(user_client, staff_client, db):
    assert user_client.get("/jobs/new/").status_code == 200
    assert staff_client.get("/jobs/new/").status_code == 200


def test_the_start_job_page_creates_a_job_on_a_recording_and_shows_it(admin_client, field_recording):
    response = admin_client.get(f"/jobs/new/?recording={field_recording.uuid}")
    assert response.status_code == 200
    assert response.context["target_form"]["recording"].value() == str(field_recording.uuid)
    response = admin_client.post(
        "/jobs/new/",
        {
            "model_name": "birdnet",
            "target": "recording",
            "recording": field_recording.path,
            "confidence_threshold": "0.3",
            "overlap": "0",
            "batch_size": "16",
            "sensitivity": "1.0",
            "species_filter_threshold": "0.03",
            "store_embeddings": "on",
            "store_predictions": "on",
        },
    )
    job = InferenceJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.uuid}/"
    assert job.recording == field_recording and job.status == "pending"
    assert job.config["confidence_threshold"] == 0.3 and job.config["batch_size"] == 16


def test_the_start_job_page_creates_a_job_on_a_dataset_and_starts_it(admin_client, field_dataset):
    # Its tasks would be queued when the transaction commits: never, in this test.
    data = {
        "model_name": "birdnet",
        "target": "dataset",
        "dataset": str(field_dataset.uuid),
        "confidence_threshold": "0.5",
        "overlap": "0",
        "batch_size": "32",
        "sensitivity": "1",
        "species_filter_threshold": "0.03",
        "store_predictions": "on",
        "start_now": "on",
    }
    response = admin_client.post("/jobs/new/", data)
    job = InferenceJob.objects.get()
    assert response.status_code == 302
    assert job.dataset == field_dataset and job.status == "running"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"confidence_threshold": "2"}, "confidence_threshold", "must be in [0, 1]"),
        ({"overlap": "3"}, "overlap", "smaller than"),
        ({"target": "recording", "recording": "no/such.wav"}, "recording", "No recording has"),
        ({"target": "dataset", "dataset": ""}, "dataset", "Pick the dataset"),
    ],
)
def test_the_start_job_page_shows_bad_settings_on_their_field(admin_client, field_recording, changes, field, message):
    data = {
        "model_name": "birdnet",
        "target": "recording",
        "recording": str(field_recording.uuid),
        "confidence_threshold": "0.5",
        "overlap": "0",
        "batch_size": "32",
        "sensitivity": "1",
        "species_filter_threshold": "0.03",
        "store_predictions": "on",
        **changes,
    }
    response = admin_client.post("/jobs/new/", data)
    assert response.status_code == 200 and not InferenceJob.objects.exists()
    forms = [response.context["form"], response.context["target_form"]]
    errors = " ".join(" ".join(form.errors.get(field, [])) for form in forms)
    assert message in errors


# --- The recording page -----------------------------------------------------------------------------


def test_the_recording_page_draws_the_detections_of_the_minute_as_labelled_boxes(user_client, birdnet_job, best_clip):
    recording = best_clip.recording
    response = user_client.get(f"/recordings/{recording.uuid}/")
    assert response.status_code == 200
    boxes = response.context["boxes"]
    assert len(boxes) == ClipPrediction.objects.count() > 0, "a box for each clip with detections"
    html = response.content.decode()
    assert html.count('class="box lane-') == len(boxes)
    box = next(box for box in boxes if box["clip_uuid"] == best_clip.uuid)
    clip_detections = ClipPredictionTag.objects.filter(clip_prediction__clip=best_clip).order_by("-score")
    assert [label["score"] for label in box["labels"]] == [tag.score for tag in clip_detections][:4]
    assert box["more"] == max(0, clip_detections.count() - 4)
    assert float(box["left_pct"]) == pytest.approx(100 * best_clip.start_time / 60, abs=0.01)
    assert float(box["width_pct"]) == pytest.approx(100 * 3 / 60, abs=0.01)
    label = box["labels"][0]
    assert f'<span class="name">{label["common_name"]}</span> <span class="score">{label["score"]:.2f}</span>' in html
    src = (
        f"/recordings/{recording.uuid}/spectrogram.png"
        "?start=0&amp;end=60&amp;width=1200&amp;min_freq=0&amp;max_freq=16000"
    )
    assert f'src="{src}"' in html
    assert f'data-audio="/clips/{best_clip.uuid}/audio.wav"' in html
    assert f"/search/?clip={best_clip.uuid}" in html, "find similar"


def test_clips_that_overlap_in_time_are_drawn_in_two_lanes(user_client, field_recording, admin_user):
    job = services.create_job(
        model_name="birdnet", recording=field_recording, config={"confidence_threshold": 0.1, "overlap": 1.5}
    )
    services.start_job(job, sync=True)
    boxes = user_client.get(f"/recordings/{field_recording.uuid}/").context["boxes"]
    assert {box["lane"] for box in boxes} == {0, 1}
    for earlier, later in zip(boxes, boxes[1:], strict=False):
        if float(later["left_pct"]) < float(earlier["left_pct"]) + float(earlier["width_pct"]) - 1e-6:
            assert later["lane"] != earlier["lane"]


def test_the_recording_page_moves_through_time_a_minute_at_a_time(user_client, field_dataset):
    long_one = Recording.objects.get(path__endswith="1min.wav")
    Recording.objects.filter(pk=long_one.pk).update(duration=150.0)
    url = f"/recordings/{long_one.uuid}/"
    first = user_client.get(url).context
    assert (first["view_from"], first["view_to"], first["prev_url"]) == (0, 60, None)
    assert first["next_url"] == f"{url}?t=60"
    middle = user_client.get(url, {"t": "75.5"}).context
    assert (middle["view_from"], middle["view_to"]) == (60, 120)
    last = user_client.get(url, {"t": "150"}).context
    assert (last["view_from"], last["view_to"], last["next_url"]) == (120, 150, None)
    for bad in ("-5", "nan", "soon", "1e9"):
        assert user_client.get(url, {"t": bad}).status_code == 200


def test_the_detections_table_filters_by_species_and_minimum_score(user_client, birdnet_job, best_clip):
    url = f"/recordings/{best_clip.recording.uuid}/"
    everything = user_client.get(url).context["page"].paginator.count
    assert everything == ClipPredictionTag.objects.count()
    species = ClipPredictionTag.objects.order_by("-score").values_list("tag__value", flat=True).first()
    one_species = user_client.get(url, {"species": species}).context["page"]
    assert one_species.paginator.count == ClipPredictionTag.objects.filter(tag__value=species).count()
    assert {row["species"] for row in one_species.object_list} == {species}
    strong = user_client.get(url, {"min_score": "0.5"}).context["page"]
    assert strong.paginator.count == ClipPredictionTag.objects.filter(score__gte=0.5).count()
    assert all(row["score"] >= 0.5 for row in strong.object_list)
    assert user_client.get(url, {"job": str(birdnet_job.uuid)}).context["page"].paginator.count == everything
    assert user_client.get(url, {"min_score": "x"}).context["page"].paginator.count == everything
    boxes = user_client.get(url, {"species": species}).context["boxes"]
    assert {label["species"] for box in boxes for label in box["labels"]} == {species}, "boxes follow the filters"


def many_detections(recording: Recording, n_clips: int, species_per_clip: int) -> InferenceJob:
    """A finished job with n_clips 3-second clips with species_per_clip species scores each, written in bulk."""
    run, _ = ModelRun.objects.get_or_create(name="bulk", version="1")
    job = InferenceJob.objects.create(model_run=run, recording=recording, status=InferenceJob.Status.COMPLETED)
    JobRecording.objects.create(job=job, recording=recording, status=JobRecording.Status.DONE)
    names = [f"Genus species{i}_Bird {i}" for i in range(species_per_clip)]
    Tag.objects.bulk_create([Tag(key=SPECIES, value=name) for name in names], ignore_conflicts=True)
    tags = list(Tag.objects.filter(key=SPECIES, value__in=names))
    clips = Clip.objects.bulk_create(
        [Clip(recording=recording, start_time=3.0 * i, end_time=3.0 * i + 3) for i in range(n_clips)]
    )
    predictions = ClipPrediction.objects.bulk_create(
        [ClipPrediction(clip=clip, model_run=run, job=job) for clip in clips]
    )
    ClipPredictionTag.objects.bulk_create(
        [
            ClipPredictionTag(clip_prediction=prediction, tag=tag, score=(i % 100) / 100)
            for prediction in predictions
            for i, tag in enumerate(tags)
        ]
    )
    return job


def test_the_recording_page_takes_as_many_queries_for_thousands_of_detections_as_for_a_few(
    user_client, field_dataset, django_assert_max_num_queries
):
    few, many = Recording.objects.order_by("path")
    Recording.objects.filter(pk=many.pk).update(duration=3600.0)
    many_detections(few, n_clips=2, species_per_clip=2)
    many_detections(many, n_clips=1200, species_per_clip=5)
    for recording in (few, many):
        # 12: the page's own, one for the previous and next recording of its dataset, one for its annotations.
        with django_assert_max_num_queries(12):
            response = user_client.get(f"/recordings/{recording.uuid}/", {"t": 30})
        assert response.status_code == 200
    assert response.context["page"].paginator.count == 6000
    assert len(response.context["page"].object_list) == 50


def test_the_recording_page_takes_as_many_queries_for_sixty_jobs_as_for_one(
    user_client, field_recording, django_assert_max_num_queries
):
    first = many_detections(field_recording, n_clips=3, species_per_clip=2)
    with django_assert_max_num_queries(12):
        assert user_client.get(f"/recordings/{field_recording.uuid}/").context["job"] == first
    run = ModelRun.objects.get(name="bulk")
    for age in range(1, 60):
        job_with_detections(run, {field_recording: {0.0: {ROBIN: 0.5}}}, age_s=age)
    with django_assert_max_num_queries(12):
        response = user_client.get(f"/recordings/{field_recording.uuid}/", {"job": str(first.uuid)})
    assert response.context["job"] == first
    assert len(response.context["jobs"]) == 50, "the picker lists the newest 50"
    # The first job is the newest: the oldest of the others, asked for by name, is shown and offered too.
    oldest = InferenceJob.objects.order_by("created_at").first()
    with django_assert_max_num_queries(13):
        response = user_client.get(f"/recordings/{field_recording.uuid}/", {"job": str(oldest.uuid)})
    assert response.context["job"] == oldest and response.context["jobs"][-1] == oldest


# --- One job's detections at a time -----------------------------------------------------------------

ROBIN = "Turdus migratorius_American Robin"
WREN = "Troglodytes aedon_House Wren"
THRUSH = "Hylocichla mustelina_Wood Thrush"
CLASSIFIER_LABEL = "Robin song (classifier)"


@pytest.fixture
def birdnet_run(db) -> ModelRun:
    return ModelRun.objects.create(name="birdnet", version="2.4", segment_duration=3.0, sample_rate=48000)


@pytest.fixture
def two_jobs(field_recording, birdnet_run) -> SimpleNamespace:
    """Two BirdNET jobs on 1min.wav an hour apart, with different thresholds: each found its own species."""
    older = job_with_detections(
        birdnet_run,
        {field_recording: {0.0: {ROBIN: 0.9}, 3.0: {WREN: 0.4}}},
        config={"confidence_threshold": 0.3},
        age_s=3600,
    )
    newer = job_with_detections(
        birdnet_run, {field_recording: {0.0: {ROBIN: 0.8}, 6.0: {THRUSH: 0.7}}}, config={"confidence_threshold": 0.6}
    )
    return SimpleNamespace(older=older, newer=newer)


def shown_species(context) -> dict[str, set[str]]:
    """The species a recording page shows, in each of the places it shows them."""
    return {
        "boxes": {label["species"] for box in context["boxes"] for label in box["labels"]},
        "table": {row["species"] for row in context["page"].object_list},
        "dropdown": {value for value, _ in context["species_choices"]},
    }


def test_each_job_page_lists_only_the_species_that_job_found(user_client, two_jobs):
    for job, expected in ((two_jobs.older, {ROBIN: 0.9, WREN: 0.4}), (two_jobs.newer, {ROBIN: 0.8, THRUSH: 0.7})):
        species = user_client.get(f"/jobs/{job.uuid}/").context["species"]
        assert {row["tag__value"]: row["max_score"] for row in species} == expected
        assert all(row["predictions"] == 1 for row in species), "the other job's robin is not counted"
        assert all(clip["score"] == expected[row["tag__value"]] for row in species for clip in row["best"])


def test_a_running_jobs_species_are_its_own_not_an_earlier_jobs(user_client, two_jobs, field_recording):
    running = InferenceJob.objects.create(
        model_run=two_jobs.newer.model_run, recording=field_recording, status=InferenceJob.Status.RUNNING
    )
    JobRecording.objects.create(job=running, recording=field_recording, status=JobRecording.Status.RUNNING)
    html = user_client.get(f"/jobs/{running.uuid}/").content.decode()
    assert "No species found yet." in html and "Wood Thrush" not in html


def test_the_recording_page_shows_the_newest_jobs_detections_by_default(user_client, two_jobs, field_recording):
    response = user_client.get(f"/recordings/{field_recording.uuid}/")
    context = response.context
    assert context["job"] == two_jobs.newer
    assert context["jobs"] == [two_jobs.newer, two_jobs.older]
    assert shown_species(context) == {"boxes": {ROBIN, THRUSH}, "table": {ROBIN, THRUSH}, "dropdown": {ROBIN, THRUSH}}
    html = response.content.decode()
    assert f'<option value="{two_jobs.newer.uuid}" selected>' in html
    assert f'<option value="{two_jobs.older.uuid}">birdnet 2.4 · ' in html and "threshold 0.3</option>" in html
    assert f'href="/jobs/{two_jobs.newer.uuid}/"' in html


def test_the_recording_page_shows_the_job_asked_for_and_its_links_stay_on_it(user_client, two_jobs, field_recording):
    Recording.objects.filter(pk=field_recording.pk).update(duration=150.0)
    response = user_client.get(f"/recordings/{field_recording.uuid}/", {"job": str(two_jobs.older.uuid)})
    context = response.context
    assert context["job"] == two_jobs.older and not context["unknown_job"]
    assert shown_species(context) == {"boxes": {ROBIN, WREN}, "table": {ROBIN, WREN}, "dropdown": {ROBIN, WREN}}
    assert [row["score"] for row in context["page"].object_list if row["species"] == ROBIN] == [0.9]
    assert f"job={two_jobs.older.uuid}" in context["next_url"]
    assert (
        f"job={two_jobs.older.uuid}" in context["filter_query"]
        and f"job={two_jobs.older.uuid}" in context["table_query"]
    )
    assert f'<option value="{two_jobs.older.uuid}" selected>' in response.content.decode()


def test_an_unknown_job_shows_the_newest_and_says_so(user_client, two_jobs, field_recording):
    for asked in (str(uuid.uuid4()), "not-a-uuid"):
        response = user_client.get(f"/recordings/{field_recording.uuid}/", {"job": asked})
        assert response.status_code == 200
        assert response.context["job"] == two_jobs.newer and response.context["unknown_job"]
        assert "No job with that UUID has finished this recording" in response.content.decode()


def test_only_jobs_that_finished_the_recording_are_offered(user_client, two_jobs, field_recording, field_dataset):
    other = field_dataset.recordings.exclude(pk=field_recording.pk).get()
    running = job_with_detections(
        two_jobs.newer.model_run,
        {field_recording: {9.0: {WREN: 0.9}}},
        status=InferenceJob.Status.RUNNING,
        recording_status=JobRecording.Status.RUNNING,
    )
    elsewhere = job_with_detections(two_jobs.newer.model_run, {other: {0.0: {WREN: 0.9}}})
    context = user_client.get(f"/recordings/{field_recording.uuid}/").context
    assert context["jobs"] == [two_jobs.newer, two_jobs.older]
    for job in (running, elsewhere):
        context = user_client.get(f"/recordings/{field_recording.uuid}/", {"job": str(job.uuid)}).context
        assert context["job"] == two_jobs.newer and context["unknown_job"]


def test_a_recording_no_job_has_finished_says_so(user_client, field_recording, birdnet_run):
    classifier_scores(birdnet_run, field_recording, {0.0: {CLASSIFIER_LABEL: 0.99}})
    response = user_client.get(f"/recordings/{field_recording.uuid}/")
    assert response.status_code == 200
    context = response.context
    assert context["job"] is None and context["jobs"] == []
    assert shown_species(context) == {"boxes": set(), "table": set(), "dropdown": set()}
    html = response.content.decode()
    assert "No job has finished this recording yet" in html and CLASSIFIER_LABEL not in html


def test_a_classifiers_scores_are_never_shown_as_species(user_client, two_jobs, field_recording, birdnet_run):
    classifier_scores(birdnet_run, field_recording, {0.0: {CLASSIFIER_LABEL: 0.99}, 6.0: {CLASSIFIER_LABEL: 0.95}})
    for job in (two_jobs.older, two_jobs.newer):
        response = user_client.get(f"/recordings/{field_recording.uuid}/", {"job": str(job.uuid)})
        assert CLASSIFIER_LABEL not in set().union(*shown_species(response.context).values())
        assert CLASSIFIER_LABEL not in response.content.decode()
        assert CLASSIFIER_LABEL not in user_client.get(f"/jobs/{job.uuid}/").content.decode()


def test_the_job_page_counts_the_recordings_read_from_stored_model_output(user_client, field_dataset, birdnet_run):
    first, second = field_dataset.recordings.order_by("path")
    job = job_with_detections(
        birdnet_run, {first: {0.0: {ROBIN: 0.9}}, second: {}}, dataset=field_dataset, reused=(second,)
    )
    html = user_client.get(f"/jobs/{job.uuid}/").content.decode()
    assert "1 of 2 recordings from stored model output, no model run" in html


def test_the_job_page_opens_recordings_and_best_clips_on_that_job(user_client, two_jobs, field_recording):
    response = user_client.get(f"/jobs/{two_jobs.older.uuid}/")
    (row,) = response.context["recording_rows"]
    assert row.url == f"/recordings/{field_recording.uuid}/?t=0&job={two_jobs.older.uuid}"
    best = [clip["url"] for species in response.context["species"] for clip in species["best"]]
    assert best and all(url.endswith(f"&job={two_jobs.older.uuid}") for url in best)
    older_page = user_client.get(best[0]).context
    assert older_page["job"] == two_jobs.older


# --- Audio and spectrograms ---------------------------------------------------------------------


def test_a_clip_plays_as_16_bit_wav_at_the_recordings_rate_and_length(user_client, best_clip):
    response = user_client.get(f"/clips/{best_clip.uuid}/audio.wav")
    assert response.status_code == 200 and response["Content-Type"] == "audio/wav"
    # Served as audio and nothing else: browsers may not sniff it into a script or a page.
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Accept-Ranges"] == "bytes"
    samples, rate = sf.read(io.BytesIO(response.content), dtype="float32")
    info = sf.info(io.BytesIO(response.content))
    recording = best_clip.recording
    assert rate == recording.samplerate == 32000 and info.subtype == "PCM_16" and info.channels == 1
    assert len(samples) == round((best_clip.end_time - best_clip.start_time) * rate)
    original, _ = sf.read(recording.absolute_path, dtype="float32")
    first = round(best_clip.start_time * rate)
    assert np.allclose(samples, original[first : first + len(samples)], atol=1 / 32767)


def test_a_range_request_gets_206_with_those_bytes(user_client, best_clip):
    url = f"/clips/{best_clip.uuid}/audio.wav"
    whole = user_client.get(url).content
    response = user_client.get(url, HTTP_RANGE="bytes=0-99")
    assert response.status_code == 206 and response["Content-Type"] == "audio/wav"
    assert response.content == whole[:100]
    assert response["Content-Range"] == f"bytes 0-99/{len(whole)}" and response["Content-Length"] == "100"
    tail = user_client.get(url, HTTP_RANGE="bytes=-10")
    assert tail.status_code == 206 and tail.content == whole[-10:]
    rest = user_client.get(url, HTTP_RANGE=f"bytes={len(whole) - 5}-")
    assert (
        rest.content == whole[-5:] and rest["Content-Range"] == f"bytes {len(whole) - 5}-{len(whole) - 1}/{len(whole)}"
    )
    past_end = user_client.get(url, HTTP_RANGE=f"bytes=100-{len(whole) + 1000}")
    assert past_end.status_code == 206 and past_end.content == whole[100:]


def test_a_range_past_the_end_gets_416_and_a_malformed_one_the_whole_file(user_client, best_clip):
    url = f"/clips/{best_clip.uuid}/audio.wav"
    length = len(user_client.get(url).content)
    for unsatisfiable in (f"bytes={length}-", f"bytes={length + 10}-{length + 20}", "bytes=-0"):
        response = user_client.get(url, HTTP_RANGE=unsatisfiable)
        assert response.status_code == 416, unsatisfiable
        assert response["Content-Range"] == f"bytes */{length}"
    for ignored in ("bytes=20-10", "items=0-5", "bytes=0-5,10-20", "nonsense"):
        response = user_client.get(url, HTTP_RANGE=ignored)
        assert response.status_code == 200 and len(response.content) == length, ignored


def png_size(content: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(content))
    assert image.format == "PNG"
    return image.size


def test_a_recording_range_spectrogram_is_a_png_drawn_once_and_then_read_from_the_cache(
    user_client, field_recording, spectrogram_cache
):
    url = f"/recordings/{field_recording.uuid}/spectrogram.png"
    response = user_client.get(url, {"start": "0", "end": "60"})
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert png_size(b"".join(response.streaming_content)) == (1200, 256)
    (cached,) = spectrogram_cache.rglob("*.png")
    assert cached.name.startswith(field_recording.sha256)
    drawn_at = cached.stat().st_mtime_ns
    again = user_client.get(url, {"start": "0", "end": "60"})
    assert again.status_code == 200 and cached.stat().st_mtime_ns == drawn_at
    assert png_size(b"".join(user_client.get(url, {"start": "30", "end": "40"}).streaming_content)) == (200, 256)
    assert png_size(b"".join(user_client.get(url).streaming_content)) == (1200, 256), "the first minute by default"


@pytest.mark.parametrize(
    "params",
    [
        {"start": "50", "end": "61"},
        {"start": "-1", "end": "10"},
        {"start": "20", "end": "10"},
        {"start": "10", "end": "10"},
        {"start": "nan", "end": "10"},
        {"start": "zero", "end": "10"},
    ],
)
def test_a_spectrogram_outside_the_recording_is_refused_with_400(user_client, field_recording, params):
    response = user_client.get(f"/recordings/{field_recording.uuid}/spectrogram.png", params)
    assert response.status_code == 400


def test_a_spectrogram_longer_than_two_minutes_is_refused(user_client, field_recording):
    Recording.objects.filter(pk=field_recording.pk).update(duration=600.0)
    response = user_client.get(f"/recordings/{field_recording.uuid}/spectrogram.png", {"start": "0", "end": "121"})
    assert response.status_code == 400 and b"at most 120 s" in response.content


def test_a_clip_spectrogram_is_a_thumbnail(user_client, best_clip):
    response = user_client.get(f"/clips/{best_clip.uuid}/spectrogram.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert png_size(b"".join(response.streaming_content)) == (240, 128)


def test_only_files_under_audio_root_are_served(user_client, field_recording, audio_root, tmp_path):
    outside = tmp_path / "outside.wav"
    sf.write(outside, np.zeros(32000, dtype=np.float32), 32000)
    Recording.objects.filter(pk=field_recording.pk).update(path="../outside.wav", duration=1.0)
    clip = Clip.objects.create(recording=field_recording, start_time=0, end_time=1)
    assert user_client.get(f"/clips/{clip.uuid}/audio.wav").status_code == 404
    assert user_client.get(f"/recordings/{field_recording.uuid}/spectrogram.png?start=0&end=1").status_code == 404
    (audio_root / "link.wav").symlink_to(outside)
    Recording.objects.filter(pk=field_recording.pk).update(path="link.wav")
    assert user_client.get(f"/clips/{clip.uuid}/audio.wav").status_code == 404


def test_a_missing_file_or_clip_is_404(user_client, best_clip):
    assert user_client.get(f"/clips/{uuid.uuid4()}/audio.wav").status_code == 404
    best_clip.recording.absolute_path.unlink()
    assert user_client.get(f"/clips/{best_clip.uuid}/audio.wav").status_code == 404


# --- Search -------------------------------------------------------------------------------------


def test_find_similar_shows_cards_with_a_thumbnail_a_player_similarity_and_a_link_to_the_time(user_client, best_clip):
    run = ModelRun.objects.get(name="birdnet")
    response = user_client.get(
        "/search/",
        {"clip": str(best_clip.uuid), "model": str(run.uuid), "min_similarity": 0, "exclude_own_recording": "false"},
    )
    assert response.status_code == 200
    cards = response.context["cards"]
    assert cards, "the other 19 clips of the recording"
    assert len(cards) == 19 and best_clip.uuid not in {card["clip"].uuid for card in cards}
    similarities = [card["similarity"] for card in cards]
    assert similarities == sorted(similarities, reverse=True)
    html = response.content.decode()
    card = cards[0]
    assert f'src="/clips/{card["clip"].uuid}/spectrogram.png"' in html
    assert f'data-audio="/clips/{card["clip"].uuid}/audio.wav"' in html
    assert card["recording_url"].replace("&", "&amp;") in html
    assert card["recording_url"].startswith(f"/recordings/{best_clip.recording.uuid}/?t=")
    # The results can be labelled for a classifier in one go.
    label_link = f"/classifiers/label/?clips={best_clip.uuid},{cards[0]['clip'].uuid},"
    assert label_link in html


def test_search_cards_name_a_species_a_job_detected_never_a_classifiers_label(user_client, birdnet_job, best_clip):
    run = ModelRun.objects.get(name="birdnet")
    every_window = {clip: {CLASSIFIER_LABEL: 1.0} for clip in Clip.objects.all()}
    # Rows without a job, even on the searched model run itself, score labels that are not species.
    score_clips(every_window, run, None)
    response = user_client.get(
        "/search/",
        {"clip": str(best_clip.uuid), "model": str(run.uuid), "min_similarity": 0, "exclude_own_recording": "false"},
    )
    cards = response.context["cards"]
    detections = ClipPrediction.objects.filter(job=birdnet_job)
    detected = set(detections.values_list("clip_id", flat=True))
    assert {bool(card["species"]) for card in cards if card["clip"].pk in detected} == {True}
    assert CLASSIFIER_LABEL not in {card["species"] for card in cards}
    assert CLASSIFIER_LABEL not in response.content.decode()


def test_search_can_leave_out_the_query_clips_own_recording(user_client, best_clip):
    response = user_client.get(
        "/search/", {"clip": str(best_clip.uuid), "min_similarity": 0, "exclude_own_recording": "on"}
    )
    assert response.status_code == 200 and response.context["cards"] == []


def test_search_says_why_a_clip_cannot_be_searched(user_client, field_recording):
    clip = Clip.objects.create(recording=field_recording, start_time=0, end_time=3)
    response = user_client.get("/search/", {"clip": str(clip.uuid)})
    assert response.status_code == 200 and response.context["cards"] is None
    assert "has no embedding" in response.content.decode()


def test_search_by_an_uploaded_snippet(user_client, birdnet_job, best_clip):
    from django.core.files.uploadedfile import SimpleUploadedFile

    samples, rate = sf.read(best_clip.recording.absolute_path, dtype="float32")
    first = round(best_clip.start_time * rate)
    buffer = io.BytesIO()
    sf.write(buffer, samples[first : first + 3 * rate], rate, format="WAV")
    upload = SimpleUploadedFile("snippet.wav", buffer.getvalue(), content_type="audio/wav")
    run = ModelRun.objects.get(name="birdnet")
    response = user_client.post(
        "/search/", {"file": upload, "model": str(run.uuid), "min_similarity": "0.9", "limit": "5"}
    )
    assert response.status_code == 200, response.content
    cards = response.context["cards"]
    assert cards and cards[0]["clip"].uuid == best_clip.uuid and cards[0]["similarity"] > 0.99


def test_the_search_page_without_a_query_shows_the_form(user_client, db):
    response = user_client.get("/search/")
    assert response.status_code == 200 and response.context["cards"] is None
    assert 'name="file"' in response.content.decode()
