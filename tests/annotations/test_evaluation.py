"""A job's merged detections against sound event annotations: counts, precision and recall equal hand-computed ones."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotations.evaluation import (
    calibrated_thresholds,
    calibration_outcomes,
    evaluate_against_annotations,
    threshold_grid,
)
from annotations.services import confirm_detection, create_annotation
from echoroo.models import SoundEventPrediction
from inference import services as jobs
from inference.models import InferenceJob, JobRecording
from inference.pipeline import Detection
from inference.storage import RecordingResults, store_recording_results
from tests.conftest import import_field_recordings
from validation.calibration import calibrate

ROBIN = "Turdus migratorius_American Robin"
THRUSH = "Hylocichla mustelina_Wood Thrush"
JAY = "Cyanocitta cristata_Blue Jay"
GROUSE = "Bonasa umbellus_Ruffed Grouse"
LABELS = (ROBIN, THRUSH, JAY, GROUSE)

# The boxes drawn (seconds) on 1min.wav, the annotated recording; rugr_drum.wav is left unannotated.
#   ROBIN   d1 0-6 (0.90)       a1 1-2, a2 2.5-3.5   one detection on two annotations
#   ROBIN   d2 18-21 (0.40)     a3 20.5-22            two detections on one annotation (d2 overlaps it by 0.5 s,
#   ROBIN   d3 21-24 (0.60)                           d3 by 1 s: a third and two thirds of its 1.5 s)
#   ROBIN   d4 30-33 (0.75)     -                     matches nothing
#   ROBIN   -                   a4 40-41 (by staff)   found by nothing (another job's detection does not count)
#   JAY     d5 9-12 (0.50)      THRUSH a5 9-10        another species' detection over an annotation
#   THRUSH  d6 45-48 (0.35)     a6 46-47
#   THRUSH  d7 48-51 (0.80)     a7 51-52              only touching: no match
#   -                           a8 55-56 call type only, no species: not counted
ANNOTATED = [(ROBIN, 0, 6, 0.90), (ROBIN, 18, 21, 0.40), (ROBIN, 21, 24, 0.60), (ROBIN, 30, 33, 0.75)]
ANNOTATED += [(JAY, 9, 12, 0.50), (THRUSH, 45, 48, 0.35), (THRUSH, 48, 51, 0.80)]
UNANNOTATED = [(ROBIN, 0, 3, 0.95), (GROUSE, 3, 6, 0.90)]
GRID = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]

# threshold -> (detections, tp, fp, fn, precision, recall), counted by hand from the boxes above.
ROBIN_EXPECTED = {
    0.3: (4, 3, 1, 1, 3 / 4, 3 / 4),
    0.4: (4, 3, 1, 1, 3 / 4, 3 / 4),  # d2 scores exactly 0.40: still in
    0.45: (3, 2, 1, 1, 2 / 3, 3 / 4),  # d2 out; a3 still found by d3
    0.6: (3, 2, 1, 1, 2 / 3, 3 / 4),
    0.65: (2, 1, 1, 2, 1 / 2, 2 / 4),  # d3 out: a3 lost
    0.75: (2, 1, 1, 2, 1 / 2, 2 / 4),
    0.8: (1, 1, 0, 2, 1.0, 2 / 4),  # d4 out
    0.9: (1, 1, 0, 2, 1.0, 2 / 4),
    0.95: (0, 0, 0, 4, None, 0.0),  # the unannotated recording's 0.95 robin is not here
}
THRUSH_EXPECTED = {
    0.3: (2, 1, 1, 2, 1 / 2, 1 / 3),
    0.35: (2, 1, 1, 2, 1 / 2, 1 / 3),
    0.4: (1, 0, 1, 3, 0.0, 0.0),
    0.8: (1, 0, 1, 3, 0.0, 0.0),
    0.85: (0, 0, 0, 3, None, 0.0),
}
JAY_EXPECTED = {0.3: (1, 0, 1, 0, 0.0, None), 0.5: (1, 0, 1, 0, 0.0, None), 0.55: (0, 0, 0, 0, None, None)}


def write_detections(job: InferenceJob, recording, detections: list[tuple[str, float, float, float]]) -> None:
    """The job's merged detections of one recording, written by the storage code the workers use; the recording done."""
    results = RecordingResults(
        starts_s=np.empty(0),
        ends_s=np.empty(0),
        hits=[],
        detections=[Detection(LABELS.index(label), start, end, score) for label, start, end, score in detections],
        label_names=LABELS,
    )
    store_recording_results(recording.pk, job.model_run_id, job.pk, results, config=job.settings)
    JobRecording.objects.update_or_create(job=job, recording=recording, defaults={"status": JobRecording.Status.DONE})


def finished_job(target, threshold: float) -> InferenceJob:
    job = jobs.create_job(
        model_name="birdnet", dataset=target, config={"confidence_threshold": threshold, "use_metadata_filter": False}
    )
    job.status = InferenceJob.Status.COMPLETED
    job.save(update_fields=["status"])
    return job


@pytest.fixture
def recordings(field_dataset):
    return field_dataset.recordings.get(path__endswith="1min.wav"), field_dataset.recordings.get(
        path__endswith="rugr_drum.wav"
    )


@pytest.fixture
def drawn(field_dataset, recordings, audio_root, user, staff):
    """The job at threshold 0.3 with the boxes above, another job, and an annotation on a recording of no job."""
    annotated, unannotated = recordings
    job = finished_job(field_dataset, 0.3)
    write_detections(job, annotated, ANNOTATED)
    write_detections(job, unannotated, UNANNOTATED)
    other_job = finished_job(field_dataset, 0.3)
    write_detections(other_job, annotated, [(ROBIN, 39, 42, 0.99)])

    def box(start, end, species=(ROBIN,), by=user, **more):
        return create_annotation(annotated, by=by, start_time=start, end_time=end, species=list(species), **more)

    box(1, 2)
    box(2.5, 3.5)
    box(20.5, 22)
    box(40, 41, by=staff)
    box(9, 10, species=[THRUSH])
    box(46, 47, species=[THRUSH])
    box(51, 52, species=[THRUSH])
    box(55, 56, species=[], tags=[("call_type", "song")])
    elsewhere = import_field_recordings(audio_root, ["metadata.wav"], dataset="Elsewhere").recordings.get()
    create_annotation(elsewhere, by=user, start_time=1, end_time=2, species=[ROBIN])
    return job


def as_tuple(row) -> tuple:
    return (row.detections, row.true_positives, row.false_positives, row.false_negatives, row.precision, row.recall)


def test_the_grid_runs_from_the_jobs_threshold_by_steps_of_005_to_095():
    assert threshold_grid(0.3) == GRID
    assert threshold_grid(0.33)[:3] == [0.33, 0.35, 0.4]
    assert threshold_grid(0.1)[0] == 0.1 and threshold_grid(0.1)[-1] == 0.95 and len(threshold_grid(0.1)) == 18
    assert threshold_grid(0.97) == [0.97]


def test_counts_precision_and_recall_per_species_and_threshold_equal_the_hand_counted_ones(drawn):
    evaluation = evaluate_against_annotations(drawn)

    assert evaluation.thresholds == GRID
    assert evaluation.recordings == 1  # rugr_drum.wav holds no annotation: left out, its grouse with it
    assert evaluation.annotations == 7  # a8 has no species
    assert [species.species for species in evaluation.species] == [JAY, THRUSH, ROBIN]
    by_label = {species.species: species for species in evaluation.species}
    assert [by_label[ROBIN].annotations, by_label[THRUSH].annotations, by_label[JAY].annotations] == [4, 3, 0]
    for label, expected in ((ROBIN, ROBIN_EXPECTED), (THRUSH, THRUSH_EXPECTED), (JAY, JAY_EXPECTED)):
        for threshold, counts in expected.items():
            assert as_tuple(by_label[label].at(threshold)) == pytest.approx(counts), (label, threshold)


def test_a_minimum_overlap_is_a_fraction_of_the_shorter_span(drawn):
    by_label = {item.species: item for item in evaluate_against_annotations(drawn, min_overlap=0.5).species}
    # d2 overlaps a3 by a third of a3's 1.5 s: no longer a match; d3 (two thirds) still finds a3.
    assert as_tuple(by_label[ROBIN].at(0.3)) == pytest.approx((4, 2, 2, 1, 2 / 4, 3 / 4))
    assert as_tuple(by_label[THRUSH].at(0.3)) == pytest.approx((2, 1, 1, 2, 1 / 2, 1 / 3))  # a6 lies inside d6


def test_only_the_chosen_annotators_annotations_count(drawn, user, staff):
    mine = {item.species: item for item in evaluate_against_annotations(drawn, annotator_id=user.pk).species}
    assert mine[ROBIN].annotations == 3  # a4 is staff's
    assert as_tuple(mine[ROBIN].at(0.3)) == pytest.approx((4, 3, 1, 0, 3 / 4, 1.0))

    theirs = {item.species: item for item in evaluate_against_annotations(drawn, annotator_id=staff.pk).species}
    # The recording is annotated (a4), so every detection there that no annotation of staff's matches is wrong.
    assert as_tuple(theirs[ROBIN].at(0.3)) == pytest.approx((4, 0, 4, 1, 0.0, 0.0))
    assert as_tuple(theirs[THRUSH].at(0.3)) == pytest.approx((2, 0, 2, 0, 0.0, None))

    assert evaluate_against_annotations(drawn, sources=["raven"]).species == []


def test_the_outcomes_are_each_detections_score_and_whether_it_matches(drawn):
    outcomes = calibration_outcomes(evaluate_against_annotations(drawn))
    as_pairs = {
        label: sorted(zip(scores.tolist(), matched.tolist(), strict=True))
        for label, (scores, matched) in outcomes.items()
    }
    assert as_pairs == {
        ROBIN: [(0.4, True), (0.6, True), (0.75, False), (0.9, True)],
        THRUSH: [(0.35, True), (0.8, False)],
        JAY: [(0.5, False)],
    }


def test_enough_outcomes_fit_the_validation_calibration_and_its_thresholds(recordings, field_dataset, user):
    annotated, _ = recordings
    job = finished_job(field_dataset, 0.3)
    # 24 two-second robin detections, 0.5 s apart, scores rising; 13 of them hold an annotation, mostly the higher.
    matched = [0, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1]
    scores = [round(0.3 + 0.025 * i, 3) for i in range(24)]
    write_detections(job, annotated, [(ROBIN, 2.5 * i, 2.5 * i + 2, scores[i]) for i in range(24)])
    write_detections(job, recordings[1], [])
    for i, hit in enumerate(matched):
        if hit:
            create_annotation(annotated, by=user, start_time=2.5 * i + 0.5, end_time=2.5 * i + 1.5, species=[ROBIN])
    create_annotation(annotated, by=user, start_time=59, end_time=59.5, species=[THRUSH])

    robin, thrush = sorted(evaluate_against_annotations(job).species, key=lambda item: item.species != ROBIN)
    expected = calibrate(np.array(scores), np.array(matched, dtype=bool), rounds=0)
    assert (robin.calibration.n_correct, robin.calibration.n_wrong) == (13, 11)
    assert robin.calibration.coefficients == pytest.approx(expected.coefficients)
    assert robin.calibration.thresholds == pytest.approx(expected.thresholds)
    assert thrush.calibration is None and "at least 10" in thrush.calibration_problem

    thresholds, skipped = calibrated_thresholds(job, "0.9")
    if expected.thresholds["0.9"] is None:
        assert ROBIN in skipped
    else:
        assert thresholds == {ROBIN: pytest.approx(expected.thresholds["0.9"])}
    assert "at least 10" in skipped[THRUSH]


@pytest.fixture
def birdnet_job(field_dataset):
    """BirdNET at threshold 0.1 on the two field recordings (as the validation tests run it)."""
    created = jobs.create_job(
        model_name="birdnet", dataset=field_dataset, config={"confidence_threshold": 0.1, "use_metadata_filter": False}
    )
    return jobs.start_job(created, sync=True)


def test_a_real_birdnet_jobs_counts_equal_a_pair_by_pair_count(birdnet_job, recordings, user):
    """Confirmed detections and drawn boxes on one recording, counted against every pair by hand in Python."""
    annotated, _ = recordings
    assert birdnet_job.status == InferenceJob.Status.COMPLETED
    predictions = list(
        SoundEventPrediction.objects.filter(job=birdnet_job, sound_event__recording=annotated)
        .select_related("sound_event")
        .prefetch_related("tags__tag")
        .order_by("-tags__score")
    )
    assert len(predictions) > 4
    for prediction in predictions[:3]:  # the three best become annotations of their species
        confirm_detection(prediction, by=user)
    best_label = predictions[0].tags.all()[0].tag.value
    create_annotation(annotated, by=user, start_time=0.2, end_time=0.4, species=[best_label])  # likely missed
    create_annotation(annotated, by=user, start_time=10, end_time=11, species=[ROBIN])

    evaluation = evaluate_against_annotations(birdnet_job)
    boxes = [
        (row.tag.value, annotation.sound_event.start_time, annotation.sound_event.end_time)
        for annotation in annotated.sound_event_annotations.select_related("sound_event").prefetch_related("tags__tag")
        for row in annotation.tags.all()
    ]
    found = [
        (row.tag.value, p.sound_event.start_time, p.sound_event.end_time, row.score)
        for p in predictions
        for row in p.tags.all()
    ]

    def overlaps(a, b) -> bool:
        return a[0] == b[0] and min(a[2], b[2]) - max(a[1], b[1]) > 0

    assert {item.species for item in evaluation.species} == {label for label, *_ in boxes + found}
    for item in evaluation.species:
        for threshold in (0.1, 0.5, 0.8):
            passing = [d for d in found if d[0] == item.species and d[3] >= threshold]
            tp = sum(any(overlaps(d, a) for a in boxes) for d in passing)
            truth = [a for a in boxes if a[0] == item.species]
            hits = sum(any(overlaps(d, a) for d in passing) for a in truth)
            row = item.at(threshold)
            assert (row.detections, row.true_positives, row.false_negatives) == (len(passing), tp, len(truth) - hits)
    assert ROBIN in {item.species for item in evaluation.species}  # annotated, whether BirdNET found it or not


def test_the_api_answers_per_species_and_threshold(drawn, api_client):
    url = reverse("inference-job-annotation-evaluation", args=[drawn.uuid])
    response = api_client.get(url)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["job"] == str(drawn.uuid) and body["thresholds"] == GRID and body["job_threshold"] == 0.3
    assert (body["recordings"], body["annotations"]) == (1, 7)
    assert "overlap" in body["match"]
    robin = next(item for item in body["species"] if item["label"] == ROBIN)
    assert (robin["common_name"], robin["scientific_name"], robin["annotations"]) == (
        "American Robin",
        "Turdus migratorius",
        4,
    )
    at = {row["threshold"]: row for row in robin["by_threshold"]}
    assert {name: at[0.45][name] for name in ("detections", "tp", "fp", "fn")} == {
        "detections": 3,
        "tp": 2,
        "fp": 1,
        "fn": 1,
    }
    assert (at[0.45]["precision"], at[0.45]["recall"]) == pytest.approx((2 / 3, 3 / 4))
    assert at[0.95]["precision"] is None
    assert robin["calibration"] is None and "at least 10" in robin["calibration_problem"]

    narrowed = api_client.get(url, {"min_overlap": 0.5, "annotator": "ecologist"}).json()
    robin = next(item for item in narrowed["species"] if item["label"] == ROBIN)
    assert robin["annotations"] == 3 and robin["by_threshold"][0]["tp"] == 2


def test_the_api_refuses_bad_parameters_and_unknown_jobs(drawn, api_client):
    url = reverse("inference-job-annotation-evaluation", args=[drawn.uuid])
    assert api_client.get(url, {"min_overlap": 2}).status_code == 400
    assert "annotator" in api_client.get(url, {"annotator": "nobody"}).json()
    assert "source" in api_client.get(url, {"source": "paper"}).json()
    unknown = reverse("inference-job-annotation-evaluation", args=["00000000-0000-0000-0000-000000000000"])
    assert api_client.get(unknown).status_code == 404
    assert APIClient().get(url).status_code == 403


def test_the_job_page_shows_the_section_only_where_its_recordings_hold_annotations(drawn, client, user, field_dataset):
    client.force_login(user)
    page = client.get(reverse("job", args=[drawn.uuid])).content.decode()
    assert "Against annotations" in page and "touching is not overlapping" in page
    robin_row = page.split(f'data-species="{ROBIN}"')[1].split("</tr>")[0]
    assert '<td class="num tp">3</td><td class="num fp">1</td><td class="num fn">1</td>' in robin_row
    assert '<td class="num precision">0.750</td>' in robin_row

    picked = client.get(reverse("job", args=[drawn.uuid]), {"against": "0.65"}).content.decode()
    robin_row = picked.split(f'data-species="{ROBIN}"')[1].split("</tr>")[0]
    assert '<td class="num tp">1</td><td class="num fp">1</td><td class="num fn">2</td>' in robin_row
    assert '<option value="0.65" selected>' in picked

    plain = finished_job(field_dataset, 0.3)
    assert "Against annotations" not in client.get(reverse("job", args=[plain.uuid])).content.decode()
