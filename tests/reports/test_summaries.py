"""Species summaries (species x site x day): figures equal to the ones worked out by hand in tests/reports/marsh.py,
sorting and filters, the pages and the API."""

from __future__ import annotations

import datetime as dt

import pytest

from reports.selection import ReportError, select
from reports.summaries import SummaryFilters, filters_from, summary_page, summary_rows
from tests.reports import marsh as survey
from validation.models import SpeciesThreshold, ThresholdSet, Verdict
from validation.services import species_tag

T = dt.time


@pytest.fixture
def marsh(db):
    return survey.build()


def figures(marsh, job=None, **options) -> list[tuple]:
    """(common name, site, day, detections, recordings, max score, first, last) of every row, in order."""
    sort = options.pop("sort", "species")
    selection = select(
        dataset=marsh.dataset,
        job=job,
        **{k: options.pop(k) for k in ("thresholds", "min_score", "verified") if k in options},
    )
    rows = list(summary_rows(selection, SummaryFilters(sort=sort, **options)))
    return [
        (
            row.names[1],
            row.site,
            row.day and row.day.isoformat(),
            row.detections,
            row.recordings,
            row.max_score,
            row.first_time,
            row.last_time,
        )
        for row in rows
    ]


def test_the_summary_counts_detections_and_recordings_by_species_site_and_day(marsh):
    assert figures(marsh) == [
        ("Blue Jay", "A-north", "2026-04-01", 1, 1, 0.3, T(5, 10), T(5, 10)),
        ("Blue Jay", "A-north", "2026-04-05", 1, 1, 0.7, T(6, 2), T(6, 2)),
        ("Blue Jay", None, "2026-04-01", 1, 1, 0.95, T(12, 0), T(12, 0)),  # a recording at no site
        ("American Robin", "A-north", "2026-04-01", 3, 2, 0.9, T(5, 10), T(5, 35)),
        ("American Robin", "A-north", "2026-04-03", 1, 1, 0.6, T(0, 10), T(0, 10)),  # a3 started on 04-02
        ("American Robin", "A-north", None, 1, 1, 0.4, None, None),  # a recording without a start time
        ("American Robin", "B-south", "2026-04-03", 1, 1, 0.7, T(10, 1), T(10, 1)),
    ]


def test_each_row_names_the_clip_of_its_best_score(marsh):
    row = next(row for row in summary_rows(select(dataset=marsh.dataset), SummaryFilters()) if row.detections == 3)
    best = marsh.clip("a2", 300.0)
    assert (row.max_score_clip, row.recording_uuid, row.max_score_start_s) == (
        str(best.uuid),
        str(marsh.recordings["a2"].uuid),
        300.0,
    )


def test_days_and_times_are_read_in_the_time_zone_asked_for(marsh):
    import zoneinfo

    selection = select(dataset=marsh.dataset, zone=zoneinfo.ZoneInfo("America/New_York"))
    robin = [row for row in summary_rows(selection, SummaryFilters(species="Turdus migratorius")) if row.day]
    assert [(row.site, row.day.isoformat(), row.first_time) for row in robin] == [
        ("A-north", "2026-04-01", T(1, 10)),
        ("A-north", "2026-04-02", T(20, 10)),
        ("B-south", "2026-04-03", T(6, 1)),
    ]


def test_sorting_by_a_figure_keeps_species_site_and_day_as_the_tie_break(marsh):
    descending = figures(marsh, sort="-detections")
    assert descending[0][:4] == ("American Robin", "A-north", "2026-04-01", 3)
    assert [row[:3] for row in descending[1:3]] == [
        ("Blue Jay", "A-north", "2026-04-01"),
        ("Blue Jay", "A-north", "2026-04-05"),
    ]
    assert [row[5] for row in figures(marsh, sort="-max_score")] == [0.95, 0.9, 0.7, 0.7, 0.6, 0.4, 0.3]
    by_day = figures(marsh, sort="day")
    assert [row[2] for row in by_day] == ["2026-04-01"] * 3 + ["2026-04-03"] * 2 + ["2026-04-05", None]


def test_filters_keep_a_species_a_site_and_a_range_of_days(marsh):
    assert [row[2] for row in figures(marsh, species="Turdus migratorius")] == [
        "2026-04-01",
        "2026-04-03",
        None,
        "2026-04-03",
    ]
    assert [row[:3] for row in figures(marsh, species=survey.ROBIN, site="B-south")] == [
        ("American Robin", "B-south", "2026-04-03")
    ]
    # A date range leaves out the rows of unknown days.
    assert [row[2] for row in figures(marsh, start=dt.date(2026, 4, 3))] == ["2026-04-05", "2026-04-03", "2026-04-03"]
    assert [row[2] for row in figures(marsh, end=dt.date(2026, 4, 1))] == ["2026-04-01"] * 3


def test_thresholds_a_minimum_score_and_verdicts_narrow_the_detections(marsh, user):
    robin = species_tag(survey.ROBIN)
    strict = ThresholdSet.objects.create(name="strict", default_threshold=0.65)
    SpeciesThreshold.objects.create(threshold_set=strict, species=robin, threshold=0.75)
    assert figures(marsh, thresholds="strict") == [
        ("Blue Jay", "A-north", "2026-04-05", 1, 1, 0.7, T(6, 2), T(6, 2)),
        ("Blue Jay", None, "2026-04-01", 1, 1, 0.95, T(12, 0), T(12, 0)),
        ("American Robin", "A-north", "2026-04-01", 2, 2, 0.9, T(5, 10), T(5, 35)),
    ]
    assert [row[3] for row in figures(marsh, min_score=0.7)] == [1, 1, 2, 1]
    Verdict.objects.create(clip=marsh.clip("a2", 300.0), species=robin, verdict="correct", reviewer=user)
    Verdict.objects.create(clip=marsh.clip("a1", 600.0), species=robin, verdict="wrong", reviewer=user)
    assert figures(marsh, verified=True) == [("American Robin", "A-north", "2026-04-01", 1, 1, 0.9, T(5, 35), T(5, 35))]


def test_a_dataset_reads_its_newest_completed_job_unless_one_is_named(marsh):
    assert select(dataset=marsh.dataset).job == marsh.job
    assert figures(marsh, job=str(marsh.older_job.uuid)) == [
        ("American Robin", "B-south", "2026-04-04", 1, 1, 0.99, T(8, 30), T(8, 30))
    ]


def test_pages_of_the_summary_share_one_count(marsh):
    selection = select(dataset=marsh.dataset)
    first, total = summary_page(selection, SummaryFilters(), number=1, size=3)
    last, _ = summary_page(selection, SummaryFilters(), number=3, size=3)
    assert (len(first), len(last), total) == (3, 1, 7)
    assert summary_page(selection, SummaryFilters(), number=4, size=3) == ([], 7)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "colour"}, "sort"),
        ({"start": "April"}, "start"),
        ({"start": "2026-04-05", "end": "2026-04-01"}, "end"),
    ],
)
def test_bad_filters_name_the_field(params, field):
    with pytest.raises(ReportError) as raised:
        filters_from(params)
    assert raised.value.field == field


# --- The API -------------------------------------------------------------------------------------------


def test_the_api_lists_the_rows_in_pages(marsh, api_client):
    query = {"dataset": marsh.dataset.uuid, "timezone": "UTC", "page_size": 3}
    body = api_client.get("/api/v1/species-summary/", query).json()
    assert (body["count"], body["job"], len(body["results"])) == (7, str(marsh.job.uuid), 3)
    assert body["chosen"] == "the newest completed job on dataset 'Marsh 2026'"
    assert body["results"][0] == {
        "species": survey.BLUE_JAY,
        "scientific_name": "Cyanocitta cristata",
        "common_name": "Blue Jay",
        "site": "A-north",
        "day": "2026-04-01",
        "detections": 1,
        "recordings": 1,
        "max_score": 0.3,
        "max_score_clip": str(marsh.clip("a1", 600.0).uuid),
        "max_score_recording": str(marsh.recordings["a1"].uuid),
        "max_score_recording_path": "marsh/a1.wav",
        "max_score_start_s": 600.0,
        "first_time": "05:10:00",
        "last_time": "05:10:00",
    }
    last = api_client.get(body["next"].replace("page=2", "page=3")).json()
    assert (len(last["results"]), last["next"], last["results"][0]["site"]) == (1, None, "B-south")


def test_the_api_takes_a_job_and_the_same_filters(marsh, api_client):
    query = {"job": marsh.job.uuid, "species": "Turdus migratorius", "sort": "-detections", "end": "2026-04-03"}
    results = api_client.get("/api/v1/species-summary/", query).json()["results"]
    assert [(row["site"], row["day"], row["detections"]) for row in results] == [
        ("A-north", "2026-04-01", 3),
        ("A-north", "2026-04-03", 1),
        ("B-south", "2026-04-03", 1),
    ]


def test_the_api_downloads_every_row_as_csv(marsh, api_client):
    response = api_client.get("/api/v1/species-summary/", {"dataset": marsh.dataset.uuid, "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0] == (
        "species,scientific_name,common_name,site,day,detections,recordings,max_score,max_score_clip,"
        "max_score_recording,max_score_start_s,first_time,last_time"
    )
    assert len(lines) == 8
    assert lines[4] == (
        f"{survey.ROBIN},Turdus migratorius,American Robin,A-north,2026-04-01,3,2,0.9000,"
        f"{marsh.clip('a2', 300.0).uuid},marsh/a2.wav,300.0,05:10:00,05:35:00"
    )
    assert lines[6] == (
        f"{survey.ROBIN},Turdus migratorius,American Robin,A-north,,1,1,0.4000,"
        f"{marsh.clip('a-unknown', 30.0).uuid},marsh/a-unknown.wav,30.0,,"
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "dataset"),
        ({"dataset": "x"}, "dataset"),
        ({"job": "00000000-0000-0000-0000-000000000000"}, "job"),
        ({"sort": "-colour"}, "sort"),
        ({"thresholds": "none such"}, "thresholds"),
        ({"page": "0"}, "page"),
        ({"page_size": "5000"}, "page_size"),
        ({"start": "2026-13-01"}, "start"),
        ({"species": "Turdus\x00"}, "species"),
        ({"timezone": "America"}, "timezone"),
    ],
)
def test_the_api_answers_400_naming_the_field(marsh, api_client, query, field):
    given = {"dataset": str(marsh.dataset.uuid), **query} if query else {}
    response = api_client.get("/api/v1/species-summary/", given)
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_the_api_refuses_anonymous_visitors(marsh, client):
    assert client.get("/api/v1/species-summary/", {"dataset": marsh.dataset.uuid}).status_code == 403


# --- The pages -----------------------------------------------------------------------------------------


def test_the_dataset_page_shows_its_newest_jobs_rows(marsh, client, user):
    client.force_login(user)
    response = client.get(f"/datasets/{marsh.dataset.uuid}/species/")
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("<tr>") == 8  # the header and 7 rows
    assert "day unknown" in page and "no site" in page
    assert f"/recordings/{marsh.recordings['a2'].uuid}/" in page  # the best clip's recording
    assert "/api/v1/species-summary/?" in page and "format=csv" in page
    assert response.context["job"] == marsh.job


def test_the_page_filters_sorts_and_pages(marsh, client, user):
    client.force_login(user)
    url = f"/datasets/{marsh.dataset.uuid}/species/"
    response = client.get(url, {"species": "Turdus migratorius", "site": "A-north", "sort": "-max_score"})
    rows = [shown["row"] for shown in response.context["page"].object_list]
    assert [(row.day and row.day.isoformat(), row.max_score) for row in rows] == [
        ("2026-04-01", 0.9),
        ("2026-04-03", 0.6),
        (None, 0.4),
    ]
    # The max score's header sorts the other way round next, keeping the filters.
    header = next(column for column in response.context["columns"] if column["label"] == "max score")
    assert "sort=max_score" in header["url"] and "species=Turdus+migratorius" in header["url"]


def test_the_job_page_and_an_older_job_picked_on_the_dataset_page(marsh, client, user):
    client.force_login(user)
    job_page = client.get(f"/jobs/{marsh.older_job.uuid}/species/")
    assert job_page.status_code == 200
    assert [shown["row"].max_score for shown in job_page.context["page"].object_list] == [0.99]
    picked = client.get(f"/datasets/{marsh.dataset.uuid}/species/", {"job": marsh.older_job.uuid})
    assert picked.context["job"] == marsh.older_job


def test_the_page_says_what_is_wrong_with_a_filter(marsh, client, user):
    client.force_login(user)
    response = client.get(f"/datasets/{marsh.dataset.uuid}/species/", {"start": "someday"})
    assert response.status_code == 200
    assert "is not a date" in response.content.decode()
    unknown = client.get(f"/datasets/{marsh.dataset.uuid}/species/", {"thresholds": "none such"})
    assert "No threshold set is named" in unknown.content.decode()
    assert unknown.context["page"].paginator.count == 7


def test_a_dataset_without_a_completed_job_says_so(db, client, user):
    from echoroo.models import Dataset

    client.force_login(user)
    empty = Dataset.objects.create(name="Empty")
    response = client.get(f"/datasets/{empty.uuid}/species/")
    assert response.status_code == 200
    assert "no job with detections has completed" in response.content.decode()


def test_a_summary_that_takes_too_long_says_how_to_narrow_it_down(marsh, client, user, monkeypatch):
    from django.db import connection

    from reports import summary_pages

    def slow(*args, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(1)")

    monkeypatch.setattr(summary_pages, "TIME_LIMIT_MS", 50)
    monkeypatch.setattr(summary_pages.summaries, "summary_page", slow)
    client.force_login(user)
    page = client.get(f"/datasets/{marsh.dataset.uuid}/species/").content.decode()
    assert "took longer than 0.05 s: narrow them down by species, site or dates" in page


def test_a_nul_character_in_a_filter_is_a_bad_request(marsh, client, user):
    client.force_login(user)
    response = client.get(f"/datasets/{marsh.dataset.uuid}/species/", {"thresholds": "a\x00b"})
    assert response.status_code == 400


def test_an_error_asked_for_as_csv_is_answered_as_json(marsh, api_client):
    response = api_client.get("/api/v1/species-summary/", {"dataset": marsh.dataset.uuid, "sort": "x", "format": "csv"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert "sort" in response.json()


def test_a_tie_for_the_best_score_names_the_same_clip_on_a_page_and_in_the_csv(marsh):
    from echoroo.models import Clip, ClipPrediction, ClipPredictionTag

    tied = Clip.objects.create(recording=marsh.recordings["a1"], start_time=1200.0, end_time=1203.0)
    prediction = ClipPrediction.objects.create(clip=tied, model_run=marsh.job.model_run, job=marsh.job)
    ClipPredictionTag.objects.create(clip_prediction=prediction, tag=species_tag(survey.ROBIN), score=0.9)
    selection, robin = select(dataset=marsh.dataset), SummaryFilters(species=survey.ROBIN)
    on_page = summary_page(selection, robin, number=1, size=50)[0][0]
    in_csv = next(iter(summary_rows(selection, robin)))
    first = marsh.clip("a2", 300.0)  # the older clip of the two at 0.9
    assert (on_page.detections, on_page.max_score_clip, in_csv.max_score_clip) == (4, str(first.uuid), str(first.uuid))
