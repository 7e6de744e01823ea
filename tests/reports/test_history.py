"""Detection histories and effort: matrices equal to the ones worked out by hand in tests/reports/marsh.py."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from reports.history import detection_history, occasions_from, parse_hours, species_of
from reports.selection import ReportError, parse_zone, select
from tests.reports import marsh as survey
from validation.models import SpeciesThreshold, ThresholdSet, Verdict

NA = None
DAYS = ["2026-04-01", "2026-04-02", "2026-04-03", "2026-04-04", "2026-04-05"]


@pytest.fixture
def marsh(db):
    return survey.build()


def history(marsh, *, species="Turdus migratorius", timezone="UTC", job=None, **given):
    """The Robin's history from the newest job (or `job`), with occasions and filters as a user gives them."""
    selection_options = {name: given.pop(name) for name in ("thresholds", "min_score", "verified") if name in given}
    selection = select(dataset=marsh.dataset, job=job, zone=parse_zone(timezone), **selection_options)
    return detection_history(selection, species_of(species, selection), occasions_from(**given))


def dated(found) -> list[str]:
    return [day.isoformat() for day in found.occasions]


def test_one_day_occasions_give_1_0_and_NA_where_no_audio_was_recorded(marsh):
    found = history(marsh)
    assert found.sites == ["A-north", "B-south", "C-west"]
    assert dated(found) == DAYS
    assert found.detection_matrix() == [
        [1, 0, 1, NA, 0],  # 04-04: the job failed A-north's only recording of that day
        [0, NA, 1, 0, 0],  # 04-02: no audio at B-south
        [NA, NA, NA, NA, NA],  # no audio at C-west at all
    ]


def test_effort_merges_overlapping_recordings_and_splits_a_recording_over_midnight(marsh):
    assert history(marsh).effort_matrix() == [
        [90, 30, 30, 0, 30],  # a1 and a2 overlap by 30 min: 90, not 120; a3 23:30-00:30: 30 + 30
        [120, 0, 10, 60, 60],
        [0, 0, 0, 0, 0],
    ]


def test_occasions_of_several_days_are_named_by_their_first_day(marsh):
    found = history(marsh, days=2)
    assert dated(found) == ["2026-04-01", "2026-04-03", "2026-04-05"]
    assert found.detection_matrix() == [[1, 1, 0], [0, 1, 0], [NA, NA, NA]]
    assert found.effort_matrix() == [[120, 30, 30], [120, 70, 60], [0, 0, 0]]


def test_a_window_of_hours_counts_only_the_audio_and_detections_inside_it(marsh):
    found = history(marsh, hours="5-6", start="2026-04-01", end="2026-04-02")
    assert dated(found) == ["2026-04-01", "2026-04-02"]
    assert found.effort_matrix() == [[60, 0], [60, 0], [0, 0]]  # a1+a2 05:00-06:30 and b1 04:00-06:00, cut to 5-6
    assert found.detection_matrix() == [[1, NA], [0, NA], [NA, NA]]


def test_a_window_past_midnight_belongs_to_the_day_it_starts(marsh):
    found = history(marsh, hours="23-6")
    # 03-31's window runs to 06:00 on 04-01 and holds a1, a2 and b1; 04-02's holds a3 (23:30-00:30).
    assert dated(found) == ["2026-03-31", "2026-04-01", "2026-04-02"]
    assert found.effort_matrix() == [[60, 0, 60], [120, 0, 0], [0, 0, 0]]
    assert found.detection_matrix() == [[1, NA, 1], [0, NA, NA], [NA, NA, NA]]
    assert found.cells[0][0].detections == 3


def test_days_are_local_dates_in_the_time_zone_asked_for(marsh):
    found = history(marsh, timezone="America/New_York")  # UTC-4 in April
    assert dated(found) == DAYS
    # a3 (23:30-00:30 UTC) is 19:30-20:30 on 04-02 in New York, its Robin at 20:10.
    assert found.detection_matrix() == [[1, 1, NA, NA, 0], [0, NA, 1, 0, 0], [NA] * 5]
    assert found.effort_matrix() == [[90, 60, 0, 0, 30], [120, 0, 10, 60, 60], [0] * 5]


def test_the_best_detection_of_each_cell_is_in_the_long_table(marsh):
    cell = history(marsh).cells[0][0]
    assert (cell.site, cell.occasion.isoformat(), cell.detections, cell.max_conf) == ("A-north", "2026-04-01", 3, 0.9)
    assert cell.max_conf_clip == str(marsh.clip("a2", 300.0).uuid)


def test_a_minimum_score_a_threshold_set_and_verdicts_narrow_the_detections(marsh, user):
    assert history(marsh, min_score=0.85).detection_matrix()[:2] == [[1, 0, 0, NA, 0], [0, NA, 0, 0, 0]]
    robin = species_of(survey.ROBIN, select(job=str(marsh.job.uuid)))
    strict = ThresholdSet.objects.create(name="strict", default_threshold=0.5)
    SpeciesThreshold.objects.create(threshold_set=strict, species=robin, threshold=0.75)
    assert history(marsh, thresholds="strict").detection_matrix()[:2] == [[1, 0, 0, NA, 0], [0, NA, 0, 0, 0]]
    Verdict.objects.create(clip=marsh.clip("a3", 2400.0), species=robin, verdict="correct", reviewer=user)
    Verdict.objects.create(clip=marsh.clip("a2", 300.0), species=robin, verdict="wrong", reviewer=user)
    assert history(marsh, verified=True).detection_matrix()[:2] == [[0, 0, 1, NA, 0], [0, NA, 0, 0, 0]]


def test_an_older_job_has_its_own_detections_and_its_own_effort(marsh):
    found = history(marsh, job=str(marsh.older_job.uuid))
    # It finished A-north's recording of 04-04, which the newest job failed: 0, not NA, there.
    assert found.detection_matrix() == [[0, 0, 0, 0, 0], [0, NA, 0, 1, 0], [NA] * 5]
    assert found.effort_matrix()[0] == [90, 30, 30, 60, 30]


def test_recordings_without_a_start_time_or_a_site_are_left_out_and_counted(marsh):
    assert history(marsh).left_out == {"no start time": 1, "no site": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4-9", (240, 300)), ("04:30-09:00", (270, 270)), ("20-6", (1200, 600)), ("0-24", (0, 1440)), ("", (0, 1440))],
)
def test_hours_read_as_a_window_of_minutes(text, expected):
    assert parse_hours(text) == expected


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"days": 0}, "occasion_days"),
        ({"days": "two"}, "occasion_days"),
        ({"hours": "25-3"}, "hours"),
        ({"hours": "5-5"}, "hours"),
        ({"hours": "dawn"}, "hours"),
        ({"start": "2026-04-31"}, "start"),
        ({"start": "2026-04-05", "end": "2026-04-01"}, "end"),
    ],
)
def test_bad_occasions_name_the_field(given, field):
    with pytest.raises(ReportError) as raised:
        occasions_from(**given)
    assert raised.value.field == field


# --- The command ---------------------------------------------------------------------------------------


def test_the_command_writes_the_matrices_and_the_long_table(marsh, tmp_path):
    output, effort, long = tmp_path / "y.csv", tmp_path / "effort.csv", tmp_path / "long.csv"
    call_command(
        "detection_history",
        "--dataset=Marsh 2026",
        "--species=Turdus migratorius",
        "--occasion-days=1",
        f"--output={output}",
        f"--effort={effort}",
        f"--long={long}",
        "--timezone=UTC",
    )
    header = "site," + ",".join(DAYS) + "\n"
    assert output.read_text() == header + "A-north,1,0,1,NA,0\nB-south,0,NA,1,0,0\nC-west,NA,NA,NA,NA,NA\n"
    assert effort.read_text() == header + "A-north,90,30,30,0,30\nB-south,120,0,10,60,60\nC-west,0,0,0,0,0\n"
    best_a, best_b = marsh.clip("a2", 300.0).uuid, marsh.clip("b3", 60.0).uuid
    assert long.read_text() == (
        "site,occasion,n_detections,max_conf,max_conf_clip\n"
        f"A-north,2026-04-01,3,0.9000,{best_a}\n"
        "A-north,2026-04-02,0,,\n"
        f"A-north,2026-04-03,1,0.6000,{marsh.clip('a3', 2400.0).uuid}\n"
        "A-north,2026-04-04,NA,,\n"
        "A-north,2026-04-05,0,,\n"
        "B-south,2026-04-01,0,,\n"
        "B-south,2026-04-02,NA,,\n"
        f"B-south,2026-04-03,1,0.7000,{best_b}\n"
        "B-south,2026-04-04,0,,\n"
        "B-south,2026-04-05,0,,\n"
        "C-west,2026-04-01,NA,,\n"
        "C-west,2026-04-02,NA,,\n"
        "C-west,2026-04-03,NA,,\n"
        "C-west,2026-04-04,NA,,\n"
        "C-west,2026-04-05,NA,,\n"
    )


def test_the_command_takes_a_job_a_threshold_dates_and_hours(marsh, tmp_path):
    output = tmp_path / "y.csv"
    call_command(
        "detection_history",
        "--dataset=Marsh 2026",
        f"--species={survey.ROBIN}",
        "--occasion-days=2",
        f"--output={output}",
        f"--job={marsh.job.uuid}",
        "--threshold=0.65",
        "--start=2026-04-01",
        "--end=2026-04-04",
        "--hours=0-12",
    )
    # 0-12: a3 (23:30-00:30) leaves 30 min on 04-03 with its Robin at 00:10 (0.6, under 0.65).
    assert output.read_text() == "site,2026-04-01,2026-04-03\nA-north,1,0\nB-south,0,1\nC-west,NA,NA\n"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"dataset": "Nowhere"}, "--dataset"),
        ({"species": "Gallus gallus"}, "--species"),
        ({"occasion_days": 0}, "--occasion-days"),
        ({"hours": "9"}, "--hours"),
        ({"threshold": "2"}, "--threshold"),
        ({"thresholds": "none such"}, "--thresholds"),
        ({"job": "not-a-uuid"}, "--job"),
        ({"start": "yesterday"}, "--start"),
        ({"timezone": "Mars/Olympus"}, "--timezone"),
    ],
)
def test_the_command_names_the_option_at_fault(marsh, tmp_path, options, named):
    given = {"dataset": "Marsh 2026", "species": "Turdus migratorius", "output": str(tmp_path / "y.csv"), **options}
    with pytest.raises(CommandError) as raised:
        call_command("detection_history", **given)
    assert str(raised.value).startswith(f"{named}: ")


# --- The API -------------------------------------------------------------------------------------------


def test_the_api_answers_the_matrix_as_json(marsh, api_client):
    query = {"dataset": marsh.dataset.uuid, "species": "Turdus migratorius", "timezone": "UTC"}
    body = api_client.get("/api/v1/detection-history/", query).json()
    assert (body["job"], body["occasions"], body["sites"]) == (
        str(marsh.job.uuid),
        DAYS,
        ["A-north", "B-south", "C-west"],
    )
    assert body["values"] == [[1, 0, 1, None, 0], [0, None, 1, 0, 0], [None] * 5]
    effort = api_client.get("/api/v1/detection-history/", {**query, "matrix": "effort", "occasion_days": 2}).json()
    assert effort["values"] == [[120, 30, 30], [120, 70, 60], [0, 0, 0]]
    long = api_client.get("/api/v1/detection-history/", {**query, "matrix": "long"}).json()
    assert long["rows"][0] == {
        "site": "A-north",
        "occasion": "2026-04-01",
        "n_detections": 3,
        "max_conf": 0.9,
        "max_conf_clip": str(marsh.clip("a2", 300.0).uuid),
    }
    assert long["rows"][3]["n_detections"] is None


def test_the_api_answers_the_csv_files_the_command_writes(marsh, api_client, tmp_path):
    call_command(
        "detection_history",
        "--dataset=Marsh 2026",
        "--species=Turdus migratorius",
        f"--output={tmp_path / 'y.csv'}",
        f"--effort={tmp_path / 'effort.csv'}",
        f"--long={tmp_path / 'long.csv'}",
        "--hours=4-9",
    )
    query = {"dataset": marsh.dataset.uuid, "species": "Turdus migratorius", "hours": "4-9", "format": "csv"}
    for matrix, name in (("detections", "y.csv"), ("effort", "effort.csv"), ("long", "long.csv")):
        response = api_client.get("/api/v1/detection-history/", {**query, "matrix": matrix})
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert response.content.decode() == (tmp_path / name).read_text()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"species": None}, "species"),
        ({"species": "Gallus gallus"}, "species"),
        ({"occasion_days": "0"}, "occasion_days"),
        ({"hours": "4-"}, "hours"),
        ({"matrix": "wide"}, "matrix"),
        ({"dataset": "nope"}, "dataset"),
        ({"dataset": None}, "dataset"),
        ({"thresholds": "none such"}, "thresholds"),
        ({"min_score": "1.5"}, "min_score"),
        ({"verified": "maybe"}, "verified"),
        ({"end": "2026-02-30"}, "end"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ],
)
def test_the_api_answers_400_naming_the_field(marsh, api_client, query, field):
    given = {"dataset": str(marsh.dataset.uuid), "species": "Turdus migratorius", **query}
    response = api_client.get("/api/v1/detection-history/", {k: v for k, v in given.items() if v is not None})
    assert response.status_code == 400, response.content
    assert field in response.json()
