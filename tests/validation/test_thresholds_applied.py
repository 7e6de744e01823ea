"""Threshold sets on real BirdNET output: their pages, applied to the job and recording pages and to exports;
verified-only exports; verdicts beside the detections."""

from __future__ import annotations

import csv
from collections import Counter
from io import StringIO

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F
from django.test import Client
from django.test.utils import CaptureQueriesContext

from echoroo.models import Clip, ClipPredictionTag, SoundEventPredictionTag
from inference import services as jobs
from inference.birdnet_formats import species_code
from inference.exports import CSV_HEADER, RAVEN_HEADER, RAVEN_SUFFIX
from validation import services
from validation.calibration import MIN_EACH, probability
from validation.models import ThresholdSet, Verdict

pytestmark = pytest.mark.django_db
THRUSH = "Hylocichla mustelina_Wood Thrush"
WARBLER = "Setophaga citrina_Hooded Warbler"
# Wood Thrush scores 0.40-1.0 and Hooded Warbler 0.10-0.70 on these recordings: each threshold cuts into them.
THRESHOLDS = {THRUSH: 0.8, WARBLER: 0.5}
DEFAULT = 0.3


@pytest.fixture
def job(field_dataset, admin_user):
    created = jobs.create_job(
        model_name="birdnet",
        dataset=field_dataset,
        config={"confidence_threshold": 0.1, "use_metadata_filter": False},
        by=admin_user,
    )
    return jobs.start_job(created, sync=True)


@pytest.fixture
def ecologist():
    return get_user_model().objects.create_user(username="anna", password="pw-anna-1")


@pytest.fixture
def colleague():
    return get_user_model().objects.create_user(username="ben", password="pw-ben-1")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def threshold_set(job, ecologist) -> ThresholdSet:
    return services.save_threshold_set(
        name="field season", default_threshold=DEFAULT, thresholds=dict(THRESHOLDS), by=ecologist
    )


def expected_rows(job, model=ClipPredictionTag, prediction="clip_prediction", span="clip") -> list[dict]:
    """The job's rows passing THRESHOLDS (DEFAULT for the other species), computed in Python."""
    rows = model.objects.filter(**{f"{prediction}__job": job}).values(
        "id",
        "score",
        species=F("tag__value"),
        span_uuid=F(f"{prediction}__{span}__uuid"),
        start_time=F(f"{prediction}__{span}__start_time"),
        end_time=F(f"{prediction}__{span}__end_time"),
        path=F(f"{prediction}__{span}__recording__path"),
    )
    kept = [row for row in rows if row["score"] >= THRESHOLDS.get(row["species"], DEFAULT)]
    assert 0 < len(kept) < len(rows), "the set keeps some rows and drops others"
    return kept


def by_species(rows: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for row in rows:
        found.setdefault(row["species"], []).append(row)
    return found


def first_rows_of_the_table(job, recording, count: int) -> list[ClipPredictionTag]:
    """The first rows of the recording page's detections table (by start time, best score first)."""
    rows = ClipPredictionTag.objects.filter(clip_prediction__job=job, clip_prediction__clip__recording=recording)
    ordered = rows.order_by("clip_prediction__clip__start_time", "-score", "tag__value")
    return list(ordered.select_related("tag", "clip_prediction__clip")[:count])


def export(*args) -> str:
    stdout = StringIO()
    call_command("export_detections", *map(str, args), stdout=stdout)
    return stdout.getvalue()


def csv_rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as rows:
        return list(csv.DictReader(rows))


# --- The job and recording pages ------------------------------------------------------------------


def test_a_set_on_the_job_page_keeps_each_species_above_its_own_threshold_and_the_rest_at_the_default(
    job, threshold_set, ecologist
):
    response = logged_in(ecologist).get(f"/jobs/{job.uuid}/", {"thresholds": threshold_set.name})
    assert response.status_code == 200
    kept = by_species(expected_rows(job))
    shown = {row["tag__value"]: row for row in response.context["species"]}
    assert {species: (row["predictions"], row["max_score"]) for species, row in shown.items()} == {
        species: (len(rows), max(row["score"] for row in rows)) for species, rows in kept.items()
    }
    for species, row in shown.items():
        best = sorted(kept[species], key=lambda found: (-found["score"], found["id"]))[:3]
        assert [clip["clip_uuid"] for clip in row["best"]] == [found["span_uuid"] for found in best]
        assert all("thresholds=field+season" in clip["url"] for clip in row["best"])
    assert all("thresholds=field+season" in row.url for row in response.context["recording_rows"])
    page = response.content.decode()
    assert "selected>passing the threshold set field season</option>" in page
    assert "Only detections passing the threshold set" in page


def test_without_a_set_the_job_page_shows_every_detection_and_an_unknown_set_says_so(job, threshold_set, ecologist):
    client = logged_in(ecologist)
    plain = client.get(f"/jobs/{job.uuid}/")
    assert sum(row["predictions"] for row in plain.context["species"]) == ClipPredictionTag.objects.count()
    unknown = client.get(f"/jobs/{job.uuid}/", {"thresholds": "spring"})
    assert "No threshold set is named “spring”" in unknown.content.decode()
    assert unknown.context["species"] == plain.context["species"]
    assert all("thresholds" not in row.url for row in unknown.context["recording_rows"])


def test_the_job_page_links_to_its_review_and_calibration_pages(job, ecologist):
    page = logged_in(ecologist).get(f"/jobs/{job.uuid}/").content.decode()
    assert f'href="/validation/jobs/{job.uuid}/review/"' in page
    assert f'href="/validation/jobs/{job.uuid}/calibration/"' in page
    assert f'href="/validation/thresholds/?job={job.uuid}"' in page


def test_the_job_page_evaluates_each_judged_species_at_the_chosen_sets_threshold(
    job, threshold_set, ecologist, colleague
):
    judge_for_a_calibration(job, (ecologist, colleague))
    client = logged_in(colleague)
    response = client.get(f"/jobs/{job.uuid}/", {"thresholds": "field season"})
    (row,) = response.context["evaluation"]["species"]
    thrush = services.species_tag(THRUSH)
    verdicts = list(Verdict.objects.filter(species=thrush).values_list("clip_id", "verdict"))
    counts = Counter(verdict for _, verdict in verdicts)
    assert row["verdicts"] == {"correct": counts["correct"], "wrong": counts["wrong"], "unsure": 0, "other": 0}
    assert row["detections"] == ClipPredictionTag.objects.filter(tag=thrush).count()

    # Share correct per score bin: ten equal bins from the job's threshold (0.1) to 1.
    scores = dict(ClipPredictionTag.objects.filter(tag=thrush).values_list("clip_prediction__clip_id", "score"))
    per_bin = [Counter() for _ in range(10)]
    for clip_id, verdict in verdicts:
        per_bin[min(int((scores[clip_id] - 0.1) / 0.09), 9)][verdict] += 1
    expected = [f"{round(100 * n['correct'] / n.total())}%" if n.total() else "–" for n in per_bin]
    assert [score_bin["share"] for score_bin in row["bins"]] == expected

    # The estimated precision: the mean fitted P(correct) of the detections at or above the set's threshold.
    passing = np.array([score for score in scores.values() if score >= THRESHOLDS[THRUSH]])
    coefficients = np.array(services.calibrate_species(job, thrush).coefficients)
    assert (row["threshold"], row["detections_at_threshold"]) == (THRESHOLDS[THRUSH], len(passing))
    assert row["precision"] == pytest.approx(probability(coefficients, passing).mean())
    assert 0 < row["precision"] < 1

    without = client.get(f"/jobs/{job.uuid}/").context["evaluation"]["species"][0]
    assert (without["threshold"], without["detections_at_threshold"]) == (pytest.approx(0.1), len(scores))
    html = response.content.decode()
    assert "<h2>Evaluation</h2>" in html and "the threshold set field season's threshold" in html


def test_a_job_without_verdicts_says_so_in_its_evaluation(job, ecologist):
    response = logged_in(ecologist).get(f"/jobs/{job.uuid}/")
    assert response.context["evaluation"]["species"] == []
    assert "No verdicts on this job's detections yet" in response.content.decode()


def test_a_set_on_the_recording_page_filters_boxes_table_and_species_and_its_links_keep_it(
    job, threshold_set, ecologist, field_recording
):
    response = logged_in(ecologist).get(
        f"/recordings/{field_recording.uuid}/", {"job": job.uuid, "thresholds": threshold_set.name}
    )
    kept = [row for row in expected_rows(job) if row["path"] == field_recording.path]
    page = response.context["page"]
    assert page.paginator.count == len(kept)
    shown = {(row["clip_uuid"], row["species"], row["score"]) for row in page.object_list}
    assert shown <= {(row["span_uuid"], row["species"], row["score"]) for row in kept}
    assert len(shown) == min(len(kept), page.paginator.per_page)
    # The recording is a minute long: one view draws every clip with a detection passing the set.
    assert {box["clip_uuid"] for box in response.context["boxes"]} == {row["span_uuid"] for row in kept}
    assert all(
        label["score"] >= THRESHOLDS.get(label["species"], DEFAULT)
        for box in response.context["boxes"]
        for label in box["labels"]
    )
    counts = Counter(row["species"] for row in kept)
    assert [value for value, _ in response.context["species_choices"]] == sorted(counts)
    assert all(label.endswith(f"({counts[value]})") for value, label in response.context["species_choices"])
    assert "thresholds=field+season" in response.context["filter_query"]
    assert "thresholds=field+season" in response.context["table_query"]
    assert response.context["job_url"] == f"/jobs/{job.uuid}/?thresholds=field+season"
    html = response.content.decode()
    assert '<input type="hidden" name="thresholds" value="field season">' in html
    assert '<option value="field season" selected>' in html


def test_an_unknown_set_on_the_recording_page_says_so_and_filters_nothing(job, ecologist, field_recording):
    response = logged_in(ecologist).get(f"/recordings/{field_recording.uuid}/", {"thresholds": "spring"})
    assert "No threshold set is named “spring”" in response.content.decode()
    on_recording = ClipPredictionTag.objects.filter(clip_prediction__clip__recording=field_recording)
    assert response.context["page"].paginator.count == on_recording.count()
    assert "thresholds" not in response.context["filter_query"]


def test_the_recording_page_shows_each_detections_verdicts_in_one_query(job, ecologist, colleague, field_recording):
    first, second, third, fourth = first_rows_of_the_table(job, field_recording, 4)
    for reviewer in (colleague, ecologist):
        services.record_verdict(clip=first.clip_prediction.clip, species=first.tag, verdict="correct", by=reviewer)
    services.record_verdict(clip=second.clip_prediction.clip, species=second.tag, verdict="wrong", by=colleague)
    services.record_verdict(clip=third.clip_prediction.clip, species=third.tag, verdict="unsure", by=ecologist)
    other = services.species_tag("Setophaga citrina")
    services.record_verdict(
        clip=fourth.clip_prediction.clip, species=fourth.tag, verdict="other", other_species=other, by=ecologist
    )
    client = logged_in(ecologist)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/recordings/{field_recording.uuid}/", {"job": job.uuid})
    assert sum("validation_verdict" in query["sql"] for query in queries.captured_queries) == 1
    marks = {
        (row["clip_uuid"], row["species"]): [
            f"{mark['symbol']} {mark['text']} ({mark['reviewers']})" for mark in row["verdicts"]
        ]
        for row in response.context["page"].object_list
    }
    assert marks.pop((first.clip_prediction.clip.uuid, first.tag.value)) == ["✓ correct (anna, ben)"]
    assert marks.pop((second.clip_prediction.clip.uuid, second.tag.value)) == ["✗ wrong (ben)"]
    assert marks.pop((third.clip_prediction.clip.uuid, third.tag.value)) == ["? unsure (anna)"]
    assert marks.pop((fourth.clip_prediction.clip.uuid, fourth.tag.value)) == ["→ Hooded Warbler (anna)"]
    assert not any(marks.values())
    html = response.content.decode()
    assert "✓ correct" in html and '<span class="muted">(anna, ben)</span>' in html


# --- Exports --------------------------------------------------------------------------------------


def test_an_export_with_a_set_keeps_exactly_the_windows_passing_it(job, threshold_set, tmp_path, settings):
    output = export(
        "--job", job.uuid, "--format", "csv", "--output", tmp_path / "kept.csv", "--thresholds", "field season"
    )
    assert "passing the threshold set 'field season'" in output
    assert (tmp_path / "kept.csv").read_text().splitlines()[0] == ",".join(CSV_HEADER)
    written = Counter(
        (
            row["File"],
            row["Start (s)"],
            row["End (s)"],
            f"{row['Scientific name']}_{row['Common name']}",
            row["Confidence"],
        )
        for row in csv_rows(tmp_path / "kept.csv")
    )
    assert written == Counter(
        (
            str(settings.AUDIO_ROOT / row["path"]),
            str(round(row["start_time"], 4)),
            str(round(row["end_time"], 4)),
            row["species"],
            f"{row['score']:.4f}",
        )
        for row in expected_rows(job)
    )


def test_a_merged_export_with_a_set_keeps_exactly_the_detections_passing_it(job, threshold_set, tmp_path):
    export(
        "--job",
        job.uuid,
        "--format",
        "csv",
        "--output",
        tmp_path / "merged.csv",
        "--merged",
        "--thresholds",
        "field season",
    )
    written = Counter(
        (row["Start (s)"], f"{row['Scientific name']}_{row['Common name']}", row["Confidence"])
        for row in csv_rows(tmp_path / "merged.csv")
    )
    kept = expected_rows(job, SoundEventPredictionTag, "sound_event_prediction", "sound_event")
    assert written == Counter((str(round(row["start_time"], 4)), row["species"], f"{row['score']:.4f}") for row in kept)


def test_an_unknown_set_names_the_option_and_the_sets(job, threshold_set, tmp_path):
    with pytest.raises(
        CommandError, match=r"^--thresholds: no threshold set named 'spring'; the sets are: 'field season'$"
    ):
        export("--job", job.uuid, "--format", "csv", "--output", tmp_path / "x.csv", "--thresholds", "spring")


def test_a_verified_export_has_one_row_per_detection_judged_correct_with_its_reviewers(
    job, ecologist, colleague, field_recording, tmp_path
):
    both, wrong, unsure = first_rows_of_the_table(job, field_recording, 3)
    for reviewer in (colleague, ecologist):
        services.record_verdict(clip=both.clip_prediction.clip, species=both.tag, verdict="correct", by=reviewer)
    services.record_verdict(clip=wrong.clip_prediction.clip, species=wrong.tag, verdict="wrong", by=ecologist)
    services.record_verdict(clip=unsure.clip_prediction.clip, species=unsure.tag, verdict="unsure", by=colleague)
    scientific, common = both.tag.value.split("_")
    start = str(round(both.clip_prediction.clip.start_time, 4))

    output = export("--job", job.uuid, "--format", "raven", "--output", tmp_path / "tables", "--verified")
    assert "Wrote 1 verified window prediction of" in output
    table = (tmp_path / "tables" / f"{field_recording.path.removesuffix('.wav')}{RAVEN_SUFFIX}").read_text()
    header, row = table.splitlines()
    assert header.split("\t") == [*RAVEN_HEADER, "Reviewer"]
    fields = row.split("\t")
    assert fields[3] == start and fields[7:10] == [common, species_code(both.tag.value), f"{both.score:.4f}"]
    assert fields[-1] == "anna, ben"
    empty = (tmp_path / "tables" / f"Field_season/rugr_drum{RAVEN_SUFFIX}").read_text()
    header, nocall = empty.splitlines()  # BirdNET-Analyzer's row for a file without detections
    assert header == "\t".join([*RAVEN_HEADER, "Reviewer"])
    assert nocall.split("\t")[7:10] == ["nocall", "nocall", "1.0"] and nocall.endswith("\t")

    export("--job", job.uuid, "--format", "csv", "--output", tmp_path / "verified.csv", "--verified")
    (verified,) = csv_rows(tmp_path / "verified.csv")
    assert list(verified) == [*CSV_HEADER, "Reviewer"]
    assert (verified["Start (s)"], verified["Scientific name"], verified["Reviewer"]) == (
        start,
        scientific,
        "anna, ben",
    )


def test_verified_and_thresholds_together_keep_the_verified_rows_passing_the_set(
    job, threshold_set, ecologist, field_recording, tmp_path
):
    rows = first_rows_of_the_table(job, field_recording, 10)
    for row in rows:
        services.record_verdict(clip=row.clip_prediction.clip, species=row.tag, verdict="correct", by=ecologist)
    export(
        "--job",
        job.uuid,
        "--format",
        "csv",
        "--output",
        tmp_path / "both.csv",
        "--verified",
        "--thresholds",
        "field season",
    )
    written = sorted((row["Start (s)"], row["Confidence"]) for row in csv_rows(tmp_path / "both.csv"))
    passing = [row for row in rows if row.score >= THRESHOLDS.get(row.tag.value, DEFAULT)]
    assert 0 < len(passing) < len(rows)
    assert written == sorted(
        (str(round(row.clip_prediction.clip.start_time, 4)), f"{row.score:.4f}") for row in passing
    )


def test_verified_merged_detections_are_refused_naming_the_option(job, tmp_path):
    with pytest.raises(CommandError, match="^--verified: verdicts are given on windows"):
        export("--job", job.uuid, "--format", "csv", "--output", tmp_path / "x.csv", "--verified", "--merged")


def test_without_verified_the_birdnet_analyzer_formats_are_unchanged(job, ecologist, field_recording, tmp_path):
    (row,) = first_rows_of_the_table(job, field_recording, 1)
    services.record_verdict(clip=row.clip_prediction.clip, species=row.tag, verdict="correct", by=ecologist)
    export("--job", job.uuid, "--format", "raven", "--output", tmp_path / "tables")
    table = (tmp_path / "tables" / f"{field_recording.path.removesuffix('.wav')}{RAVEN_SUFFIX}").read_text()
    assert table.splitlines()[0].split("\t") == list(RAVEN_HEADER)
    assert all(len(line.split("\t")) == len(RAVEN_HEADER) for line in table.splitlines())


# --- The threshold-set pages ----------------------------------------------------------------------

CSV_FILE = "species,threshold\nHylocichla mustelina,0.8\nSetophaga citrina_Hooded Warbler,0.5\n"
CSV_EXPORTED = "species,threshold\nHylocichla mustelina_Wood Thrush,0.8\nSetophaga citrina_Hooded Warbler,0.5\n"


def test_a_csv_file_imports_as_a_set_and_exports_as_the_same_rows(job, ecologist):
    client = logged_in(ecologist)
    upload = SimpleUploadedFile("season.csv", CSV_FILE.encode(), content_type="text/csv")
    response = client.post("/validation/thresholds/", {"name": "imported", "default_threshold": "0.3", "file": upload})
    imported = ThresholdSet.objects.get(name="imported")
    assert response.status_code == 302 and response.url == f"/validation/thresholds/{imported.uuid}/"
    exported = client.get(f"/validation/thresholds/{imported.uuid}/thresholds.csv")
    assert exported["Content-Type"].startswith("text/csv")
    assert 'filename="imported.csv"' in exported["Content-Disposition"]
    assert exported.content.decode() == CSV_EXPORTED
    again = SimpleUploadedFile("again.csv", exported.content, content_type="text/csv")
    client.post("/validation/thresholds/", {"name": "again", "default_threshold": "0.3", "file": again})
    copy = ThresholdSet.objects.get(name="again")
    assert client.get(f"/validation/thresholds/{copy.uuid}/thresholds.csv").content == exported.content


def test_a_set_typed_by_hand_is_listed_with_its_default_species_count_and_creator(job, ecologist, colleague):
    lines = "Hylocichla mustelina,0.8\nSetophaga citrina,0.5\n"
    response = logged_in(ecologist).post(
        "/validation/thresholds/", {"name": "by hand", "default_threshold": "0.25", "thresholds": lines}
    )
    assert response.status_code == 302
    listed = logged_in(colleague).get("/validation/thresholds/")
    row = next(found for found in listed.context["sets"] if found.name == "by hand")
    assert (row.default_threshold, row.species_count, row.created_by.username) == (0.25, 2, "anna")
    html = listed.content.decode()
    assert '<tr data-set="by hand">' in html and "<td>anna</td>" in html


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"thresholds": "Nonexistent bird,0.5"}, "thresholds", "no species 'Nonexistent bird' has been detected yet"),
        ({"thresholds": "Hylocichla mustelina,1.5"}, "thresholds", "must be a number from 0 to 1"),
        ({"thresholds": "Hylocichla mustelina,high"}, "thresholds", "'high' is not a number"),
        ({"default_threshold": "2"}, "default_threshold", "less than or equal to 1"),
        ({"name": "field season"}, "name", "exists already"),
    ],
)
def test_a_bad_set_is_refused_on_its_field(job, threshold_set, ecologist, data, field, message):
    response = logged_in(ecologist).post(
        "/validation/thresholds/", {"name": "new", "default_threshold": "0.3", "thresholds": "", **data}
    )
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert ThresholdSet.objects.count() == 1


def test_lines_and_a_file_together_are_refused(job, ecologist):
    upload = SimpleUploadedFile("season.csv", CSV_FILE.encode())
    response = logged_in(ecologist).post(
        "/validation/thresholds/",
        {"name": "both", "default_threshold": "0.3", "thresholds": "Hylocichla mustelina,0.8", "file": upload},
    )
    assert response.status_code == 400 and "not both" in response.context["form"].errors["file"][0]


def test_sets_are_shared_and_changed_only_by_their_creator_or_staff(job, threshold_set, ecologist, colleague, staff):
    page = f"/validation/thresholds/{threshold_set.uuid}/"
    change = {"name": "field season", "default_threshold": "0.4", "thresholds": "Hylocichla mustelina,0.9"}
    other = logged_in(colleague)
    seen = other.get(page)
    assert (
        seen.status_code == 200
        and not seen.context["can_change"]
        and "Replace its thresholds" not in seen.content.decode()
    )
    assert (
        other.get(f"/recordings/{Clip.objects.first().recording.uuid}/", {"thresholds": "field season"}).context[
            "threshold_set"
        ]
        == threshold_set
    )
    assert other.post(page, change).status_code == 403
    assert other.post(f"{page}delete/").status_code == 403
    threshold_set.refresh_from_db()
    assert threshold_set.default_threshold == DEFAULT

    assert logged_in(ecologist).post(page, change).status_code == 302
    threshold_set.refresh_from_db()
    assert threshold_set.default_threshold == 0.4
    assert dict(threshold_set.species.values_list("species__value", "threshold")) == {THRUSH: 0.9}

    assert logged_in(staff).post(page, {**change, "default_threshold": "0.5"}).status_code == 302
    assert logged_in(staff).post(f"{page}delete/").status_code == 302
    assert not ThresholdSet.objects.exists()
    assert Client().get("/validation/thresholds/").status_code == 302  # to the login page


def species_of_job(job) -> int:
    return ClipPredictionTag.objects.filter(clip_prediction__job=job).values("tag_id").distinct().count()


def judge_for_a_calibration(job, reviewers) -> None:
    """Two reviewers judge every Wood Thrush detection: wrong below the middle score, correct above, and disagree
    on a few in between (so that no score separates correct from wrong)."""
    thrush = services.species_tag(THRUSH)
    rows = list(
        ClipPredictionTag.objects.filter(clip_prediction__job=job, tag=thrush)
        .select_related("clip_prediction__clip")
        .order_by("score")
    )
    middle = len(rows) // 2
    first, second = reviewers
    for rank, row in enumerate(rows):
        clip = row.clip_prediction.clip
        services.record_verdict(clip=clip, species=thrush, verdict="correct" if rank >= middle else "wrong", by=first)
        agrees = rank < middle - 2 or rank >= middle + 2
        second_says = (
            ("correct" if rank >= middle else "wrong") if agrees else ("wrong" if rank >= middle else "correct")
        )
        services.record_verdict(clip=clip, species=thrush, verdict=second_says, by=second)


def test_a_set_filled_from_calibrations_takes_each_calibrated_species_threshold_and_lists_the_skipped(
    job, ecologist, colleague
):
    judge_for_a_calibration(job, (ecologist, colleague))
    warbler = services.species_tag(WARBLER)
    for row in ClipPredictionTag.objects.filter(clip_prediction__job=job, tag=warbler).select_related(
        "clip_prediction__clip"
    )[:4]:
        services.record_verdict(clip=row.clip_prediction.clip, species=warbler, verdict="correct", by=ecologist)
    expected = services.calibrate_species(job, services.species_tag(THRUSH)).thresholds["0.9"]
    assert expected is not None

    client = logged_in(ecologist)
    form = client.get("/validation/thresholds/", {"job": job.uuid}).context["calibrations_form"]
    assert str(job.uuid) in {str(value) for value, _ in form.fields["job"].choices}
    response = client.post(
        "/validation/thresholds/from-calibrations/",
        {"job": job.uuid, "target": "0.9", "name": "calibrated", "default_threshold": "0.4"},
        follow=True,
    )
    created = ThresholdSet.objects.get(name="calibrated")
    assert (created.default_threshold, created.created_by) == (0.4, ecologist)
    assert dict(created.species.values_list("species__value", "threshold")) == pytest.approx({THRUSH: expected})
    said = [str(message) for message in response.context["messages"]]
    assert f"Created 'calibrated': 1 species calibrated at P(correct) ≥ 0.9; {species_of_job(job) - 1} take" in said[0]
    (skipped,) = [message for message in said if message.startswith("Skipped")]
    assert skipped.startswith(f"Skipped {WARBLER}: ")
    assert f"there are 4 correct and 0 wrong: review {MIN_EACH - 4} more correct and {MIN_EACH} more wrong" in skipped
    assert f"{species_of_job(job) - 2} species of the job have no verdicts yet." in said
    assert f"skipped: {WARBLER}" in created.description

    # The set works as any other: the thrush at its calibrated threshold, everything else at the default.
    shown = logged_in(colleague).get(f"/jobs/{job.uuid}/", {"thresholds": "calibrated"}).context["species"]
    counts = {row["tag__value"]: row["predictions"] for row in shown}
    assert counts.get(THRUSH, 0) == ClipPredictionTag.objects.filter(tag__value=THRUSH, score__gte=expected).count()
    assert counts.get(WARBLER, 0) == ClipPredictionTag.objects.filter(tag__value=WARBLER, score__gte=0.4).count()


def test_filling_from_a_job_without_a_species_to_calibrate_says_why_and_creates_nothing(job, ecologist):
    warbler = services.species_tag(WARBLER)
    clip = ClipPredictionTag.objects.filter(tag=warbler).first().clip_prediction.clip
    services.record_verdict(clip=clip, species=warbler, verdict="wrong", by=ecologist)
    response = logged_in(ecologist).post(
        "/validation/thresholds/from-calibrations/",
        {"job": job.uuid, "target": "0.95", "name": "nothing yet", "default_threshold": "0.5"},
    )
    assert response.status_code == 400
    (error,) = response.context["calibrations_form"].errors["job"]
    assert error.startswith(f"No species of this job can be calibrated yet ({WARBLER}: calibration needs at least")
    assert not ThresholdSet.objects.exists()
