"""The admin: every model is there, and the big tables never count or scan every row."""

import re
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from echoroo.admin import EXACT_COUNT_LIMIT, JOB_FILTER_CHOICES, EstimatedCountPaginator
from echoroo.models import (
    Clip,
    ClipAnnotation,
    ClipAnnotationTag,
    ClipPrediction,
    ClipPredictionTag,
    Dataset,
    ModelRun,
    Recording,
    Site,
    SoundEvent,
    SoundEventPrediction,
    SoundEventPredictionTag,
    Tag,
)
from inference.models import InferenceJob

pytestmark = pytest.mark.django_db

SHA = "ab" * 32
ALL_MODELS = [
    Dataset,
    Site,
    Recording,
    Clip,
    SoundEvent,
    Tag,
    ModelRun,
    ClipPrediction,
    ClipPredictionTag,
    SoundEventPrediction,
    SoundEventPredictionTag,
    ClipAnnotation,
    ClipAnnotationTag,
]
BIG_MODELS = [
    Recording,
    Clip,
    SoundEvent,
    ClipPrediction,
    ClipPredictionTag,
    SoundEventPrediction,
    SoundEventPredictionTag,
    ClipAnnotation,
    ClipAnnotationTag,
]


def url(model, view: str, *args) -> str:
    return reverse(f"admin:echoroo_{model._meta.model_name}_{view}", args=args)


def add_clips(recording: Recording, n: int, *, first: int = 0) -> list[Clip]:
    return Clip.objects.bulk_create(
        Clip(recording=recording, start_time=3 * i, end_time=3 * i + 3) for i in range(first, first + n)
    )


def add_clip_predictions(clips, run: ModelRun, tags: list[Tag]) -> None:
    predictions = ClipPrediction.objects.bulk_create(ClipPrediction(clip=clip, model_run=run) for clip in clips)
    ClipPredictionTag.objects.bulk_create(
        ClipPredictionTag(clip_prediction=prediction, tag=tag, score=0.5 + 0.1 * i)
        for prediction in predictions
        for i, tag in enumerate(tags)
    )


def add_annotations(clips, by, tags: list[Tag]) -> None:
    annotations = ClipAnnotation.objects.bulk_create(ClipAnnotation(clip=clip, created_by=by) for clip in clips)
    ClipAnnotationTag.objects.bulk_create(
        ClipAnnotationTag(clip_annotation=annotation, tag=tag, created_by=by)
        for annotation in annotations
        for tag in tags
    )


@pytest.fixture
def world(admin_user):
    """One row of every model, linked together."""
    dataset = Dataset.objects.create(name="Field season 2026")
    site = Site.objects.create(dataset=dataset, name="North ridge", latitude=-33.9, longitude=151.2)
    recording = Recording.objects.create(
        dataset=dataset, site=site, path="north/20260401_053000.wav", sha256=SHA, duration=60.0, samplerate=48000,
        channels=1,
    )  # fmt: skip
    clip = Clip.objects.create(recording=recording, start_time=0, end_time=3)
    event = SoundEvent.objects.create(recording=recording, start_time=1, end_time=2, low_freq=1000, high_freq=4000)
    blackbird = Tag.objects.create(key="species", value="Turdus merula_Eurasian Blackbird")
    wren = Tag.objects.create(key="species", value="Troglodytes troglodytes_Eurasian Wren")
    run = ModelRun.objects.create(name="birdnet", version="2.4", embedding_dimension=1024, segment_duration=3.0)
    job = InferenceJob.objects.create(model_run=run, recording=recording, status=InferenceJob.Status.COMPLETED)
    prediction = ClipPrediction.objects.create(clip=clip, model_run=run, job=job)
    ClipPredictionTag.objects.create(clip_prediction=prediction, tag=blackbird, score=0.9)
    ClipPredictionTag.objects.create(clip_prediction=prediction, tag=wren, score=0.4)
    event_prediction = SoundEventPrediction.objects.create(sound_event=event, model_run=run, job=job)
    SoundEventPredictionTag.objects.create(sound_event_prediction=event_prediction, tag=wren, score=0.7)
    annotation = ClipAnnotation.objects.create(clip=clip, created_by=admin_user, notes="two birds overlapping")
    ClipAnnotationTag.objects.create(clip_annotation=annotation, tag=blackbird, created_by=admin_user)
    return SimpleNamespace(
        dataset=dataset, site=site, recording=recording, clip=clip, event=event, blackbird=blackbird, wren=wren,
        run=run, job=job, prediction=prediction, event_prediction=event_prediction, annotation=annotation,
    )  # fmt: skip


def unbounded_counts(queries, table: str) -> list[str]:
    """COUNT(*) queries over `table` with neither a WHERE nor a LIMIT: they read the whole table."""
    pattern = re.compile(rf'COUNT\(\*\).*FROM "{table}"', re.IGNORECASE)
    return [q["sql"] for q in queries if pattern.search(q["sql"]) and not re.search(r"\b(WHERE|LIMIT)\b", q["sql"])]


# --- Every model is there ------------------------------------------------------------------


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda model: model.__name__)
def test_every_model_has_a_changelist_an_add_page_and_a_change_page(admin_client, world, model):
    instance = model.objects.order_by("pk").first()
    assert admin_client.get(url(model, "changelist")).status_code == 200
    assert admin_client.get(url(model, "add")).status_code == 200
    assert admin_client.get(url(model, "change", instance.pk)).status_code == 200


@pytest.mark.parametrize("model", [Recording, Clip, ClipPrediction], ids=lambda model: model.__name__)
def test_people_who_are_not_staff_are_sent_to_log_in(client, user, world, model):
    for logged_in in (False, True):
        if logged_in:
            client.force_login(user)
        response = client.get(url(model, "changelist"))
        assert response.status_code == 302
        assert response.url.startswith(reverse("admin:login"))


# --- Big tables: bounded queries, no full counts ---------------------------------------------


@pytest.mark.parametrize("model", BIG_MODELS, ids=lambda model: model.__name__)
def test_big_changelists_never_count_the_whole_table(admin_client, world, model):
    with CaptureQueriesContext(connection) as context:
        response = admin_client.get(url(model, "changelist"))
    assert response.status_code == 200
    assert unbounded_counts(context.captured_queries, model._meta.db_table) == []


@pytest.mark.parametrize("model", BIG_MODELS, ids=lambda model: model.__name__)
def test_big_changelists_run_a_handful_of_queries(admin_client, world, django_assert_max_num_queries, model):
    with django_assert_max_num_queries(10):
        assert admin_client.get(url(model, "changelist")).status_code == 200


@pytest.mark.parametrize("model", [Clip, ClipPrediction, ClipAnnotation], ids=lambda model: model.__name__)
def test_more_rows_on_the_page_cost_no_more_queries(admin_client, admin_user, world, model):
    def queries_for_one_page() -> int:
        with CaptureQueriesContext(connection) as context:
            assert admin_client.get(url(model, "changelist")).status_code == 200
        return len(context.captured_queries)

    few = queries_for_one_page()
    clips = add_clips(world.recording, 60, first=10)
    add_clip_predictions(clips, world.run, [world.blackbird, world.wren])
    add_annotations(clips, admin_user, [world.blackbird, world.wren])
    assert model.objects.count() > 60
    assert queries_for_one_page() == few


def test_an_unfiltered_big_table_is_paged_by_the_planners_estimate(admin_client, world):
    add_clips(world.recording, 30, first=1)
    with connection.cursor() as cursor:
        cursor.execute('ANALYZE "echoroo_clip"')
    paginator = type("SmallLimit", (EstimatedCountPaginator,), {"exact_limit": 10})(Clip.objects.all(), 10)
    with CaptureQueriesContext(connection) as context:
        assert paginator.count == 31
    assert paginator.is_estimate
    assert paginator.num_pages == 4
    assert [q["sql"] for q in context.captured_queries if "COUNT" in q["sql"].upper()] == []


def test_a_filter_matching_many_rows_is_counted_no_further_than_the_limit(world):
    add_clips(world.recording, 30, first=1)
    paginator = type("SmallLimit", (EstimatedCountPaginator,), {"exact_limit": 10})(
        Clip.objects.filter(recording=world.recording), 10
    )
    with CaptureQueriesContext(connection) as context:
        assert paginator.count > 10
    assert paginator.is_estimate
    assert any("LIMIT 11" in q["sql"] for q in context.captured_queries)


def test_a_small_table_is_counted_exactly(world):
    add_clips(world.recording, 24, first=1)
    paginator = EstimatedCountPaginator(Clip.objects.order_by("pk"), 10)
    assert (paginator.count, paginator.num_pages, paginator.is_estimate) == (25, 3, False)
    assert len(paginator.page(3).object_list) == 5
    assert EXACT_COUNT_LIMIT >= 10_000


def test_the_changelist_pages_a_filtered_big_table(admin_client, world):
    other = Recording.objects.create(
        dataset=world.dataset, path="south/a.wav", sha256=SHA, duration=900.0, samplerate=32000, channels=1
    )
    add_clips(other, 130)
    response = admin_client.get(url(Clip, "changelist"), {"recording__id__exact": other.pk, "p": 2})
    assert response.status_code == 200
    changelist = response.context["cl"]
    assert (changelist.result_count, changelist.paginator.num_pages) == (130, 2)
    assert len(changelist.result_list) == 30
    assert {clip.recording_id for clip in changelist.result_list} == {other.pk}


def test_the_samplerate_and_site_filters_narrow_the_recordings(admin_client, world):
    Recording.objects.create(
        dataset=world.dataset, path="south/b.wav", sha256=SHA, duration=60.0, samplerate=32000, channels=1
    )
    by_rate = admin_client.get(url(Recording, "changelist"), {"samplerate": "32000"}).context["cl"]
    assert [r.path for r in by_rate.result_list] == ["south/b.wav"]
    by_site = admin_client.get(url(Recording, "changelist"), {"site__id__exact": world.site.pk}).context["cl"]
    assert [r.path for r in by_site.result_list] == [world.recording.path]


# --- Search -------------------------------------------------------------------------------


def test_a_clip_is_found_by_its_uuid(admin_client, world):
    add_clips(world.recording, 5, first=1)
    response = admin_client.get(url(Clip, "changelist"), {"q": str(world.clip.uuid)})
    assert list(response.context["cl"].result_list) == [world.clip]


def test_clips_are_found_by_the_start_of_their_recordings_path(admin_client, world):
    other = Recording.objects.create(
        dataset=world.dataset, path="south/a.wav", sha256=SHA, duration=60.0, samplerate=48000, channels=1
    )
    add_clips(other, 3)
    response = admin_client.get(url(Clip, "changelist"), {"q": "SOUTH/"})
    assert {clip.recording_id for clip in response.context["cl"].result_list} == {other.pk}
    assert response.context["cl"].result_count == 3


def test_a_recording_is_found_by_its_sha256(admin_client, world):
    response = admin_client.get(url(Recording, "changelist"), {"q": SHA})
    assert list(response.context["cl"].result_list) == [world.recording]


def test_tags_are_found_by_value(admin_client, world):
    response = admin_client.get(url(Tag, "changelist"), {"q": "merula"})
    assert list(response.context["cl"].result_list) == [world.blackbird]


def test_the_recording_autocomplete_searches_paths(admin_client, world):
    response = admin_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "echoroo", "model_name": "clip", "field_name": "recording", "term": "north"},
    )
    assert [row["text"] for row in response.json()["results"]] == [world.recording.path]


# --- What the pages show --------------------------------------------------------------------


def test_a_recordings_page_links_to_its_clips_instead_of_listing_them(admin_client, world):
    add_clips(world.recording, 40, first=1)
    page = admin_client.get(url(Recording, "change", world.recording.pk)).content.decode()
    assert f"{url(Clip, 'changelist')}?recording__id__exact={world.recording.pk}" in page
    assert "41 clips" in page
    assert "clips-TOTAL_FORMS" not in page


def test_the_prediction_list_shows_the_best_tags_first(admin_client, world):
    page = admin_client.get(url(ClipPrediction, "changelist")).content.decode()
    assert "Turdus merula_Eurasian Blackbird (0.90), Troglodytes troglodytes_Eurasian Wren (0.40)" in page


def test_the_prediction_lists_link_each_row_to_its_job_and_filter_by_job(admin_client, world):
    other_job = InferenceJob.objects.create(model_run=world.run, recording=world.recording, status="completed")
    other_clip = add_clips(world.recording, 1, first=5)[0]
    other = ClipPrediction.objects.create(clip=other_clip, model_run=world.run, job=other_job)
    classifier = ModelRun.objects.create(name="Robin song", version="v1", kind="classifier", source=world.run)
    score = ClipPrediction.objects.create(clip=world.clip, model_run=classifier)
    job_page = reverse("admin:inference_inferencejob_change", args=[world.job.pk])
    page = admin_client.get(url(ClipPrediction, "changelist")).content.decode()
    # A job is named by its model and when it was created, not by its database id.
    created = f"{timezone.localtime(world.job.created_at):%Y-%m-%d %H:%M}"
    assert f'<a href="{job_page}">birdnet 2.4 {created}</a>' in page
    assert f"job {world.job.pk}<" not in page
    assert "no job (a classifier&#x27;s scores)" in page
    for lookup, expected in (
        ({"job__id__exact": world.job.pk}, [world.prediction]),
        ({"job__id__exact": other_job.pk}, [other]),
        ({"job__isnull": "True"}, [score]),
    ):
        response = admin_client.get(url(ClipPrediction, "changelist"), lookup)
        assert list(response.context["cl"].result_list) == expected, lookup
    response = admin_client.get(url(SoundEventPrediction, "changelist"), {"job__id__exact": world.job.pk})
    assert list(response.context["cl"].result_list) == [world.event_prediction]
    assert (
        not admin_client.get(url(SoundEventPrediction, "changelist"), {"job__id__exact": other_job.pk})
        .context["cl"]
        .result_list
    )


@pytest.mark.parametrize("model", [ClipPrediction, SoundEventPrediction], ids=lambda model: model.__name__)
def test_more_jobs_to_filter_by_cost_no_more_queries(admin_client, world, model):
    def queries() -> int:
        with CaptureQueriesContext(connection) as context:
            assert admin_client.get(url(model, "changelist")).status_code == 200
        return len(context.captured_queries)

    few = queries()
    InferenceJob.objects.bulk_create(
        InferenceJob(model_run=world.run, dataset=world.dataset) for _ in range(JOB_FILTER_CHOICES + 5)
    )
    InferenceJob.objects.bulk_create(InferenceJob(model_run=world.run, recording=world.recording) for _ in range(5))
    assert queries() == few
    html = admin_client.get(url(model, "changelist")).content.decode()
    assert html.count("?job__id__exact=") == JOB_FILTER_CHOICES


def test_datasets_list_their_recordings_and_hours(admin_client, world):
    Recording.objects.create(
        dataset=world.dataset, path="south/a.wav", sha256=SHA, duration=7140.0, samplerate=48000, channels=1
    )
    row = admin_client.get(url(Dataset, "changelist")).context["cl"].result_list[0]
    assert (row.recording_count, row.duration_s) == (2, 7200.0)


def test_an_estimated_count_says_about(admin_client, world, monkeypatch):
    add_clips(world.recording, 30, first=1)
    monkeypatch.setattr(EstimatedCountPaginator, "exact_limit", 10)
    page = admin_client.get(url(Clip, "changelist")).content.decode()
    assert re.search(r"about \d+ clips", page)


def test_an_annotation_added_in_the_admin_belongs_to_its_author(admin_client, admin_user, world):
    response = admin_client.post(
        url(ClipAnnotation, "add"),
        {
            "clip": world.clip.pk,
            "notes": "",
            "tags-TOTAL_FORMS": "1",
            "tags-INITIAL_FORMS": "0",
            "tags-0-tag": world.wren.pk,
        },
    )
    assert response.status_code == 302
    annotation = ClipAnnotation.objects.exclude(pk=world.annotation.pk).get()
    assert annotation.created_by == admin_user
    assert [(row.tag, row.created_by) for row in annotation.tags.all()] == [(world.wren, admin_user)]


def test_changing_an_annotations_tags_in_the_admin_goes_through_the_service(admin_client, admin_user, world):
    """A tag changed in the inline replaces the old one, a deleted row goes, each new row is the editor's."""
    blackbird = world.blackbird
    annotation = ClipAnnotation.objects.create(clip=world.clip)
    kept = ClipAnnotationTag.objects.create(clip_annotation=annotation, tag=world.wren)
    response = admin_client.post(
        url(ClipAnnotation, "change", annotation.pk),
        {
            "clip": world.clip.pk,
            "notes": "",
            "tags-TOTAL_FORMS": "2",
            "tags-INITIAL_FORMS": "1",
            "tags-0-id": kept.pk,
            "tags-0-clip_annotation": annotation.pk,
            "tags-0-tag": blackbird.pk,
            "tags-1-tag": world.wren.pk,
        },
    )
    assert response.status_code == 302, response.context["errors"] if response.context else response
    rows = sorted((row.tag.value, row.created_by) for row in annotation.tags.select_related("tag"))
    assert rows == sorted([(blackbird.value, admin_user), (world.wren.value, admin_user)])
