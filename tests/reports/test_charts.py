"""The charts: counts by date and hour from SQL, and PNG images for a real BirdNET job's detections, for data with
nothing to draw, and for parameters that name nothing."""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo

import pytest
from PIL import Image

from echoroo.models import ClipPredictionTag, Dataset, Site
from inference import services
from inference.models import InferenceJob
from reports import activity, charts
from reports.selection import select
from tests.reports.season import add_recordings, import_season

pytestmark = pytest.mark.django_db

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UTC = zoneinfo.ZoneInfo("UTC")


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def season(audio_root):
    return import_season(audio_root)


@pytest.fixture
def season_job(season, admin_user) -> InferenceJob:
    """BirdNET run to the end in this process over the whole season, with a low threshold: many detections."""
    job = services.create_job(model_name="birdnet", dataset=season, config={"confidence_threshold": 0.1}, by=admin_user)
    job = services.start_job(job, sync=True)
    assert job.status == InferenceJob.Status.COMPLETED
    return job


def image_of(response, *, status: int = 200) -> Image.Image:
    assert response.status_code == status, response.content[:200]
    assert response["Content-Type"] == "image/png"
    assert response.content.startswith(PNG_MAGIC)
    return Image.open(io.BytesIO(response.content))


def chart(dataset: Dataset, name: str) -> str:
    return f"/datasets/{dataset.uuid}/charts/{name}.png"


def detections_of(job: InferenceJob):
    return ClipPredictionTag.objects.filter(clip_prediction__job=job, tag__key="species")


def top_species(job: InferenceJob) -> str:
    return activity.top_species(detections_of(job), 1)[0][0]


# --- Counting in SQL ---------------------------------------------------------------------------------------------


def test_detections_are_counted_by_the_hour_their_window_began(season, season_job):
    selection = select(dataset=season, zone=UTC)
    rows = activity.selected(selection, None)
    counts = activity.by_date_and_hour(rows, UTC)
    undated = activity.unplaced(rows)
    assert sum(counts.values()) + undated == detections_of(season_job).count()
    assert undated == detections_of(season_job).filter(clip_prediction__clip__recording__recorded_at=None).count() > 0
    # 1 May 05:30 + a minute, 1 May 07:00 + 10 s, 2 May 06:00 + a minute: those hours and no others.
    assert set(counts) <= {(dt.date(2026, 5, 1), 5), (dt.date(2026, 5, 1), 7), (dt.date(2026, 5, 2), 6)}
    assert counts[(dt.date(2026, 5, 1), 5)] > 0 and counts[(dt.date(2026, 5, 2), 6)] > 0
    # New York is 4 hours behind UTC in May.
    new_york = zoneinfo.ZoneInfo("America/New_York")
    assert set(activity.by_date_and_hour(rows, new_york)) <= {
        (dt.date(2026, 5, 1), 1),
        (dt.date(2026, 5, 1), 3),
        (dt.date(2026, 5, 2), 2),
    }


def test_detections_of_one_species_at_one_site(season, season_job):
    selection = select(dataset=season, zone=UTC)
    species = top_species(season_job)
    south = Site.objects.get(dataset=season, name="South ridge")
    everywhere = sum(activity.by_date_and_hour(activity.selected(selection, None, species), UTC).values())
    at_south = activity.by_date_and_hour(activity.selected(selection, south, species), UTC)
    expected = detections_of(season_job).filter(tag__value=species, clip_prediction__clip__recording__site=south)
    assert sum(at_south.values()) == expected.count()
    assert set(at_south) <= {(dt.date(2026, 5, 1), 7)}
    assert everywhere >= sum(at_south.values())


def test_effort_counts_the_seconds_recorded_in_each_hour_and_splits_recordings_at_midnight(db):
    dataset = Dataset.objects.create(name="Effort")
    site = Site.objects.create(dataset=dataset, name="Ridge")
    # 23:30 to 01:00 (90 min) at the ridge, with a second recorder there from 00:00 to 00:30 (counted once);
    # 05:00 to 05:10 at no site; one with no start time, which no chart can place.
    add_recordings(dataset, 1, site=site, first_start=dt.datetime(2026, 5, 1, 23, 30, tzinfo=dt.UTC), duration_s=5400)
    add_recordings(
        dataset, 1, site=site, first_start=dt.datetime(2026, 5, 2, tzinfo=dt.UTC), duration_s=1800, prefix="a"
    )
    add_recordings(dataset, 1, first_start=dt.datetime(2026, 5, 2, 5, tzinfo=dt.UTC), duration_s=600, prefix="b")
    add_recordings(dataset, 1, first_start=None, prefix="c")
    recordings = dataset.recordings.all()
    may1, may2 = dt.date(2026, 5, 1), dt.date(2026, 5, 2)
    assert activity.effort(recordings, UTC) == {(may1, 23): 1800.0, (may2, 0): 3600.0, (may2, 5): 600.0}
    assert activity.effort(recordings, UTC, grain="day") == {(may1, None): 1800.0, (may2, None): 4200.0}
    assert activity.effort(recordings, UTC, grain="day", by_site=True) == {
        (site.pk, may1, None): 1800.0,
        (site.pk, may2, None): 3600.0,
        (None, may2, None): 600.0,
    }
    berlin = activity.effort(recordings, zoneinfo.ZoneInfo("Europe/Berlin"), grain="day")
    assert berlin == {(may2, None): 5400.0 + 600.0}, "01:30 to 03:00 and 07:00 in Berlin, all on 2 May"
    assert activity.unplaced_recordings(recordings) == 1


# --- The images ---------------------------------------------------------------------------------------------------


def test_the_charts_of_a_real_birdnet_job_are_pngs(user_client, season, season_job):
    species = top_species(season_job)
    for name, query, min_height in (
        ("activity", {"species": species}, 400),
        ("activity", {}, 400),
        ("phenology", {"species": species}, 350),
        ("species", {}, 250),
        ("species", {"by": "day", "top": "3"}, 250),
        ("effort", {}, 200),
    ):
        response = user_client.get(chart(season, name), query)
        image = image_of(response)
        assert image.width == 1100 and image.height >= min_height, (name, query, image.size)
        assert len(response.content) > 15_000, (name, query)
        assert response["Cache-Control"] == "private, max-age=300"


def test_a_chart_is_downloaded_as_a_file_named_after_the_dataset_and_species(user_client, season, season_job):
    response = user_client.get(chart(season, "activity"), {"species": top_species(season_job), "download": "1"})
    image_of(response)
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="season-2026-activity-') and disposition.endswith('.png"')


def test_a_chart_shows_the_job_asked_for_or_the_newest_completed_one(user_client, season, season_job, admin_user):
    older = season_job
    newer = services.start_job(
        services.create_job(model_name="birdnet", dataset=season, config={"confidence_threshold": 0.9}, by=admin_user),
        sync=True,
    )
    page = user_client.get(f"/datasets/{season.uuid}/")
    assert page.context["charts"]["selection"].job == newer
    page = user_client.get(f"/datasets/{season.uuid}/", {"job": str(older.uuid)})
    assert page.context["charts"]["selection"].job == older
    assert f"job={older.uuid}" in page.context["charts"]["species_url"]
    image_of(user_client.get(chart(season, "species"), {"job": str(older.uuid)}))


def test_charts_without_detections_or_recordings_are_images_that_say_so(user_client, season):
    empty = Dataset.objects.create(name="Nothing yet")
    for dataset, name in ((season, "activity"), (season, "phenology"), (season, "species"), (empty, "effort")):
        image = image_of(user_client.get(chart(dataset, name), {"species": "Turdus migratorius_American Robin"}))
        assert image.size == (1100, 220), (dataset.name, name)


def test_a_species_that_was_not_detected_draws_an_empty_grid(user_client, season, season_job):
    image = image_of(user_client.get(chart(season, "activity"), {"species": "Nomen nescio_Nobody"}))
    assert image.height >= 400, "the hours recorded are there, grey and white, without detections"


def test_chart_parameters_that_name_nothing_answer_400_with_an_image(user_client, season, season_job):
    other = Dataset.objects.create(name="Elsewhere")
    elsewhere = Site.objects.create(dataset=other, name="Far")
    for name, query in (
        ("activity", {"site": str(elsewhere.uuid)}),
        ("activity", {"site": "north"}),
        ("phenology", {"job": "not-a-uuid"}),
        ("species", {"job": "00000000-0000-0000-0000-000000000000"}),
        ("species", {"by": "week"}),
        ("species", {"top": "many"}),
        ("effort", {"timezone": "Mars/Olympus"}),
    ):
        image_of(user_client.get(chart(season, name), query), status=400)


def test_charts_answer_401_to_anonymous_visitors(client, season):
    for name in ("activity", "phenology", "species", "effort"):
        assert client.get(chart(season, name)).status_code == 401


def test_the_dataset_page_shows_the_charts_of_the_species_detected_most(user_client, season, season_job):
    response = user_client.get(f"/datasets/{season.uuid}/")
    charts_section = response.context["charts"]
    species = top_species(season_job)
    assert charts_section["wanted"]["species"] == species
    assert charts_section["species_choices"][0][0] == species
    html = response.content.decode()
    for name in ("activity", "phenology", "species", "effort"):
        assert f'src="/datasets/{season.uuid}/charts/{name}.png' in html, name
    assert "the newest completed job on dataset" in html


def test_the_dataset_page_without_a_job_says_so_and_still_shows_the_effort(user_client, season):
    response = user_client.get(f"/datasets/{season.uuid}/")
    html = response.content.decode()
    assert "No job has completed on this dataset yet" in html
    assert f'src="/datasets/{season.uuid}/charts/effort.png"' in html
    assert "charts/activity.png" not in html


# --- Drawing without the database ---------------------------------------------------------------------------------


def test_a_heat_map_of_a_single_hour_and_a_season_long_one_both_draw():
    one = charts.activity_heatmap({(dt.date(2026, 5, 1), 5): 3}, {}, title="One hour", zone="UTC")
    days = {(dt.date(2026, 3, 1) + dt.timedelta(days=i), h): 3600.0 for i in range(200) for h in (4, 5, 6)}
    season_long = charts.activity_heatmap({}, days, title="A season, nothing heard", zone="UTC")
    for png in (one, season_long):
        assert Image.open(io.BytesIO(png)).size == (1100, 460)


def test_the_dataset_pages_export_form_downloads_the_detections_the_charts_show(user_client, season, season_job):
    html = user_client.get(f"/datasets/{season.uuid}/").content.decode()
    assert f'<input type="hidden" name="dataset" value="{season.uuid}">' in html
    response = user_client.get(
        "/api/v1/exports/detections/", {"dataset": season.uuid, "format": "csv", "combined": "true"}
    )
    assert response.status_code == 200
    rows = b"".join(response.streaming_content if response.streaming else [response.content]).decode().splitlines()
    assert len(rows) - 1 == ClipPredictionTag.objects.filter(clip_prediction__job=season_job).count()


def test_a_chart_whose_counting_runs_too_long_is_an_image_that_says_so(user_client, season, season_job, monkeypatch):
    from reports import chart_pages

    monkeypatch.setattr(chart_pages, "within_time_limit", lambda query, limit_ms: None)
    for name in ("activity", "phenology", "species", "effort"):
        assert image_of(user_client.get(chart(season, name)), status=503).size == (1100, 220)
