"""Browsing: the datasets, a dataset's sites and recordings (filters, keyset pages, bounded queries), the recording
page's previous/next recording, and the home page's links into them."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from echoroo.models import Dataset, ModelRun, Recording, Site
from inference.models import InferenceJob, JobRecording
from tests.pages.detections import job_with_detections
from tests.reports.season import add_recordings

pytestmark = pytest.mark.django_db

ROBIN = "Turdus migratorius_American Robin"


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def birdnet_run(db) -> ModelRun:
    return ModelRun.objects.create(name="BirdNET", version="2.4", sample_rate=48_000)


@pytest.fixture
def perch_run(db) -> ModelRun:
    return ModelRun.objects.create(name="Perch", version="2.0", sample_rate=32_000)


@pytest.fixture
def survey(db, birdnet_run, perch_run):
    """A dataset of 7 recordings at two sites and none: BirdNET finished 3 of them, Perch failed on one."""
    dataset = Dataset.objects.create(name="Survey", description="Spring point counts")
    north = Site.objects.create(dataset=dataset, name="North", latitude=42.4712, longitude=-76.4501)
    south = Site.objects.create(dataset=dataset, name="South")
    start = dt.datetime(2026, 5, 1, 5, tzinfo=dt.UTC)
    add_recordings(dataset, 3, site=north, first_start=start, every=dt.timedelta(days=1), prefix="north")
    add_recordings(
        dataset, 2, site=south, first_start=start + dt.timedelta(hours=2), every=dt.timedelta(days=1), prefix="south"
    )
    add_recordings(dataset, 2, first_start=None, prefix="loose", duration_s=1800)
    recordings = {r.path: r for r in dataset.recordings.all()}
    job_with_detections(
        birdnet_run,
        {recordings[path]: {0.0: {ROBIN: 0.9}} for path in ("north/00000.wav", "north/00001.wav", "south/00000.wav")},
        dataset=dataset,
    )
    perch = InferenceJob.objects.create(model_run=perch_run, dataset=dataset, status=InferenceJob.Status.FAILED)
    JobRecording.objects.create(job=perch, recording=recordings["north/00000.wav"], status=JobRecording.Status.FAILED)
    return dataset


def paths(response) -> list[str]:
    return [recording.path for recording in response.context["page"].recordings]


def query_of(url: str) -> dict:
    return {name: values[0] for name, values in parse_qs(urlparse(url).query).items()}


# --- /datasets/ ------------------------------------------------------------------------------------------------


def test_the_pages_send_anonymous_visitors_to_the_login_page(client, survey):
    for url in ("/datasets/", f"/datasets/{survey.uuid}/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), url


def test_the_dataset_list_shows_sites_recordings_hours_dates_and_the_latest_job(user_client, survey, birdnet_run):
    Dataset.objects.create(name="Empty")
    response = user_client.get("/datasets/")
    assert response.status_code == 200
    rows = {dataset.name: dataset for dataset in response.context["datasets"]}
    survey_row = rows["Survey"]
    assert (survey_row.sites_count, survey_row.recordings_count) == (2, 7)
    assert survey_row.hours == pytest.approx((5 * 600 + 2 * 1800) / 3600)
    assert survey_row.first_start == dt.datetime(2026, 5, 1, 5, tzinfo=dt.UTC)
    assert survey_row.last_start == dt.datetime(2026, 5, 3, 5, tzinfo=dt.UTC)
    assert survey_row.latest_job["model"] == "Perch" and survey_row.latest_job["status"] == "failed"
    assert (rows["Empty"].recordings_count, rows["Empty"].hours, rows["Empty"].latest_job) == (0, 0, None)
    html = response.content.decode()
    assert f'href="/datasets/{survey.uuid}/"' in html
    assert "2026-05-01 – 2026-05-03" in html and "no start times" in html


def test_the_dataset_list_takes_as_many_queries_for_many_datasets_as_for_one(user_client, survey):
    with CaptureQueriesContext(connection) as one:
        user_client.get("/datasets/")
    for i in range(20):
        add_recordings(Dataset.objects.create(name=f"More {i}"), 5)
    with CaptureQueriesContext(connection) as many:
        response = user_client.get("/datasets/")
    assert len(response.context["datasets"]) == 21
    assert len(many) == len(one)


# --- A dataset's page --------------------------------------------------------------------------------------------


def test_the_dataset_page_lists_its_sites_with_coordinates_recordings_and_hours(user_client, survey):
    response = user_client.get(f"/datasets/{survey.uuid}/")
    sites = {site.name: site for site in response.context["sites"]}
    assert (sites["North"].recordings_count, sites["South"].recordings_count) == (3, 2)
    assert sites["North"].hours == pytest.approx(0.5)
    assert response.context["unsited_recordings"] == 2
    html = response.content.decode()
    assert "42.4712, -76.4501" in html
    assert f'href="?site={sites["North"].uuid}#recordings"' in html


def test_the_dataset_page_lists_recordings_with_site_start_duration_and_the_models_run_on_them(user_client, survey):
    response = user_client.get(f"/datasets/{survey.uuid}/")
    assert paths(response) == sorted(Recording.objects.filter(dataset=survey).values_list("path", flat=True))
    html = response.content.decode()
    row = re.search(r'<tr data-recording="[^"]+">\s*<td class="path"><a[^>]*>north/00000.wav</a>.*?</tr>', html, re.S)
    row = row.group(0)
    assert "North" in row and "2026-05-01 05:00:00" in row and '<td class="num nowrap">10 min</td>' in row
    assert re.search(r'class="run run-done">BirdNET 2.4 <b>✓</b>', row)
    assert re.search(r'class="run run-failed">Perch 2.0 <b>failed</b>', row)
    loose = re.search(r"<tr data-recording[^>]*>\s*<td class=\"path\"><a[^>]*>loose/00000.wav</a>.*?</tr>", html, re.S)
    assert "not yet analysed" in loose.group(0) and "unknown" in loose.group(0)


def test_a_recording_counts_as_done_by_a_model_if_any_of_its_jobs_finished_it(user_client, survey, birdnet_run):
    recording = survey.recordings.get(path="north/00000.wav")
    newer = InferenceJob.objects.create(model_run=birdnet_run, dataset=survey, status=InferenceJob.Status.RUNNING)
    JobRecording.objects.create(job=newer, recording=recording, status=JobRecording.Status.RUNNING)
    page = user_client.get(f"/datasets/{survey.uuid}/").context["page"]
    runs = next(r for r in page.recordings if r.path == "north/00000.wav").runs
    assert [(run["name"], run["status"]) for run in runs] == [("BirdNET", "done"), ("Perch", "failed")]
    fresh = add_recordings(survey, 1, prefix="fresh")[0]
    JobRecording.objects.create(job=newer, recording=fresh, status=JobRecording.Status.RUNNING)
    page = user_client.get(f"/datasets/{survey.uuid}/?q=fresh").context["page"]
    assert [(run["name"], run["text"]) for run in page.recordings[0].runs] == [("BirdNET", "running")]


def test_the_recordings_are_filtered_by_site_model_dates_and_path(user_client, survey, birdnet_run, perch_run):
    north = survey.sites.get(name="North")
    url = f"/datasets/{survey.uuid}/"
    assert paths(user_client.get(url, {"site": north.uuid})) == [
        "north/00000.wav",
        "north/00001.wav",
        "north/00002.wav",
    ]
    assert paths(user_client.get(url, {"site": "none"})) == ["loose/00000.wav", "loose/00001.wav"]
    analysed = ["north/00000.wav", "north/00001.wav", "south/00000.wav"]
    assert paths(user_client.get(url, {"model": birdnet_run.uuid})) == analysed
    assert paths(user_client.get(url, {"model": perch_run.uuid})) == [], "a failed recording is not analysed"
    assert paths(user_client.get(url, {"model": "none"})) == [
        "loose/00000.wav",
        "loose/00001.wav",
        "north/00002.wav",
        "south/00001.wav",
    ]
    assert paths(user_client.get(url, {"from": "2026-05-02", "to": "2026-05-02"})) == [
        "north/00001.wav",
        "south/00001.wav",
    ]
    assert paths(user_client.get(url, {"from": "2026-05-03"})) == ["north/00002.wav"]
    assert paths(user_client.get(url, {"q": "SOUTH/"})) == ["south/00000.wav", "south/00001.wav"]
    both = user_client.get(url, {"site": north.uuid, "model": "none", "q": "north"})
    assert paths(both) == ["north/00002.wav"]
    assert "1 recording matches these filters" in both.content.decode()


def test_filters_that_do_not_parse_are_ignored_and_named(user_client, survey):
    response = user_client.get(f"/datasets/{survey.uuid}/", {"site": "north", "from": "May 1st", "order": "random"})
    assert len(paths(response)) == 7
    assert response.context["ignored"] == ["site", "from", "order"]
    assert "Ignored what does not parse: site, from, order." in response.content.decode()


def test_the_recordings_in_order_of_start_time_put_those_without_one_last(user_client, survey):
    response = user_client.get(f"/datasets/{survey.uuid}/", {"order": "time"})
    assert paths(response) == [
        "north/00000.wav",
        "south/00000.wav",
        "north/00001.wav",
        "south/00001.wav",
        "north/00002.wav",
        "loose/00000.wav",
        "loose/00001.wav",
    ]


@pytest.mark.parametrize("order", ["path", "time"])
def test_keyset_pages_walk_every_recording_once_forwards_and_backwards(user_client, survey, order, settings):
    add_recordings(survey, 120, first_start=dt.datetime(2026, 5, 1, 5, 30, tzinfo=dt.UTC), prefix="bulk")
    add_recordings(survey, 7, first_start=None, prefix="zz-undated")
    url = f"/datasets/{survey.uuid}/"
    expected = list(
        Recording.objects.filter(dataset=survey)
        .order_by(*(["path"] if order == "path" else [("recorded_at"), "path"]))
        .values_list("path", flat=True)
    )
    if order == "time":
        dated = [p for p in expected if Recording.objects.get(dataset=survey, path=p).recorded_at is not None]
        expected = dated + sorted(set(expected) - set(dated))
    walked, query, pages = [], {"order": order}, 0
    while True:
        response = user_client.get(url, query)
        page = response.context["page"]
        assert page.total == 134
        walked += paths(response)
        pages += 1
        if not page.next_cursor:
            break
        query = query_of("?" + response.context["next_query"])
    assert walked == expected and pages == 3
    assert page.is_last

    backwards, query = [], {"order": order, "last": "1"}
    while True:
        response = user_client.get(url, query)
        page = response.context["page"]
        backwards = paths(response) + backwards
        if not page.previous_cursor:
            break
        query = query_of("?" + response.context["previous_query"])
    assert backwards == expected


def test_a_page_link_keeps_the_filters(user_client, survey):
    north = survey.sites.get(name="North")
    add_recordings(survey, 60, site=north, prefix="north-bulk")
    response = user_client.get(f"/datasets/{survey.uuid}/", {"site": north.uuid, "q": "bulk", "order": "time"})
    assert len(paths(response)) == 50
    following = query_of("?" + response.context["next_query"])
    assert following["site"] == str(north.uuid) and following["q"] == "bulk" and following["order"] == "time"
    response = user_client.get(f"/datasets/{survey.uuid}/", following)
    assert paths(response) == [f"north-bulk/{i:05}.wav" for i in range(50, 60)]


def test_the_dataset_page_takes_as_many_queries_for_thousands_of_recordings_as_for_a_few(
    user_client, survey, birdnet_run, django_assert_max_num_queries
):
    url = f"/datasets/{survey.uuid}/"
    with CaptureQueriesContext(connection) as few:
        user_client.get(url)
    north = survey.sites.get(name="North")
    recordings = add_recordings(survey, 3000, site=north, prefix="many")
    job = InferenceJob.objects.create(model_run=birdnet_run, dataset=survey, status=InferenceJob.Status.COMPLETED)
    JobRecording.objects.bulk_create(
        JobRecording(job=job, recording=recording, status=JobRecording.Status.DONE) for recording in recordings
    )
    for query in ({}, {"order": "time", "model": birdnet_run.uuid}, {"model": "none", "site": north.uuid}):
        with django_assert_max_num_queries(len(few)):
            response = user_client.get(url, query)
        assert response.status_code == 200
    assert len(few) <= 25


def test_the_dataset_page_links_to_the_species_summary_and_exports_its_detections(user_client, survey):
    html = user_client.get(f"/datasets/{survey.uuid}/").content.decode()
    assert f'href="/datasets/{survey.uuid}/species/"' in html
    form = re.search(r'<form method="get" action="([^"]+)" class="filters export-form">(.*?)</form>', html, re.S)
    assert form.group(1) == "/api/v1/exports/detections/"
    assert f'name="dataset" value="{survey.uuid}"' in form.group(2) and 'name="format"' in form.group(2)


def test_an_unknown_dataset_is_not_found(user_client, db):
    assert user_client.get("/datasets/00000000-0000-0000-0000-000000000000/").status_code == 404


# --- The recording page's neighbours ------------------------------------------------------------------------------


def neighbours_of(user_client, recording: Recording, **query) -> tuple[str | None, str | None, str]:
    response = user_client.get(f"/recordings/{recording.uuid}/", query)
    assert response.status_code == 200
    context = response.context
    return context["previous_recording_url"], context["next_recording_url"], context["dataset_url"]


def test_the_recording_page_links_the_previous_and_next_recording_of_its_dataset_by_path(user_client, survey):
    other = Dataset.objects.create(name="Other")
    add_recordings(other, 3, prefix="north")
    by_path = {r.path: r for r in survey.recordings.all()}
    previous, following, listed = neighbours_of(user_client, by_path["north/00000.wav"])
    assert previous == f"/recordings/{by_path['loose/00001.wav'].uuid}/"
    assert following == f"/recordings/{by_path['north/00001.wav'].uuid}/"
    assert listed.startswith(f"/datasets/{survey.uuid}/?after=loose") and listed.endswith("#recordings")
    first, last = by_path["loose/00000.wav"], by_path["south/00001.wav"]
    assert neighbours_of(user_client, first)[0] is None
    assert neighbours_of(user_client, first)[2] == f"/datasets/{survey.uuid}/#recordings"
    assert neighbours_of(user_client, last)[1] is None
    html = user_client.get(f"/recordings/{first.uuid}/").content.decode()
    assert '<span class="button disabled">‹ previous recording</span>' in html
    assert f'class="button next-recording" href="/recordings/{by_path["loose/00001.wav"].uuid}/"' in html


def test_the_recording_pages_neighbours_keep_the_lists_filters_and_order(user_client, survey):
    by_path = {r.path: r for r in survey.recordings.all()}
    north = survey.sites.get(name="North")
    previous, following, listed = neighbours_of(user_client, by_path["south/00000.wav"], order="time")
    assert previous == f"/recordings/{by_path['north/00000.wav'].uuid}/?order=time"
    assert following == f"/recordings/{by_path['north/00001.wav'].uuid}/?order=time"
    previous, following, _ = neighbours_of(user_client, by_path["north/00001.wav"], site=str(north.uuid))
    assert previous == f"/recordings/{by_path['north/00000.wav'].uuid}/?site={north.uuid}"
    assert following == f"/recordings/{by_path['north/00002.wav'].uuid}/?site={north.uuid}"
    # The last dated recording is followed by the undated ones, in path order.
    _, following, _ = neighbours_of(user_client, by_path["north/00002.wav"], order="time")
    assert following == f"/recordings/{by_path['loose/00000.wav'].uuid}/?order=time"
    # The minute links and the forms of the page keep the list too.
    html = user_client.get(f"/recordings/{by_path['north/00001.wav'].uuid}/", {"site": str(north.uuid)}).content
    assert f'<input type="hidden" name="site" value="{north.uuid}">' in html.decode()


def test_the_list_link_opens_the_page_of_the_dataset_that_starts_with_the_recording(user_client, survey):
    recording = survey.recordings.get(path="north/00001.wav")
    _, _, listed = neighbours_of(user_client, recording, order="time")
    response = user_client.get(listed.split("#")[0])
    assert paths(response)[0] == "north/00001.wav"


# --- Home --------------------------------------------------------------------------------------------------------


def test_home_links_each_dataset_to_its_page(user_client, survey):
    html = user_client.get("/").content.decode()
    assert f'<a href="/datasets/{survey.uuid}/"><strong>Survey</strong></a>' in html
    assert 'href="/datasets/"' in html
    assert "first recording" not in html


def test_the_page_of_an_empty_dataset_says_so(user_client, db):
    empty = Dataset.objects.create(name="Empty")
    response = user_client.get(f"/datasets/{empty.uuid}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "No recordings in this dataset yet." in html and "No sites yet." in html
    assert "No job has completed on this dataset yet" in html
