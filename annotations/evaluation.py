"""A job's merged detections against the sound event annotations of its recordings: per species and threshold.

What is compared: the job's merged detections (SoundEventPrediction with job=job, one species tag
and its score each, a time span on a recording) on its *annotated recordings*: those the job finished
that hold at least one annotation (of the chosen sources and annotator). An annotated recording is
taken as annotated in full: a detection there that no annotation of its species overlaps is a false
positive. Recordings without annotations are left out, whatever the job found on them.

What matches: a detection and an annotation of the same species on the same recording whose time
spans overlap by more than zero (spans that only touch do not), and, with `min_overlap` f > 0, by at
least f times the shorter of the two spans (a 3-s window over a 0.3-s call overlaps it in full).
Frequency is not compared: the models' detections span the whole band. At a threshold t, only the
detections scoring t or more count:
- true positive: a detection that matches at least one annotation (once, however many it matches);
- false positive: a detection that matches none;
- false negative: an annotation that no detection matches (one found by several is found once).
precision = true positives / detections; recall = annotations found / annotations (None when 0/0).
Annotations without a species tag are not counted (they still make their recording annotated).

The thresholds: the job's own, then every multiple of 0.05 above it up to 0.95. The detections are
read in one query (with whether each matches) and the annotations in the same one (with the best
score among the detections that match each); the grid is then counted with numpy, so a threshold
costs no query. The (score, matched?) pairs of each species are the outcomes that calibrate a
detector's scores, as verdicts are in the validation loop (validation.calibration.calibrate).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from django.db import connection

from annotations.models import SoundEventAnnotation
from echoroo.models import SPECIES
from inference.birdnet_formats import split_label
from inference.models import InferenceJob, JobRecording
from validation.calibration import MIN_EACH, Calibration, NoFit, TooFewVerdicts, calibrate

GRID_STEP = 0.05
GRID_TOP = 0.95

MATCH_TEXT = (
    "a detection matches an annotation of the same species on the same recording when their times overlap "
    "(touching is not overlapping; frequency is not compared)"
)


def threshold_grid(job_threshold: float) -> list[float]:
    """The job's threshold, then each multiple of GRID_STEP above it up to GRID_TOP."""
    steps = [round(k * GRID_STEP, 2) for k in range(1, round(GRID_TOP / GRID_STEP) + 1)]
    return [float(job_threshold)] + [step for step in steps if step > job_threshold + 1e-9]


@dataclass(frozen=True)
class AtThreshold:
    threshold: float
    detections: int
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float | None  # None without detections
    recall: float | None  # None without annotations


@dataclass(frozen=True)
class SpeciesAgainstAnnotations:
    species: str  # the model's label
    annotations: int
    # The outcomes: each detection's score and whether it matches an annotation of the species.
    scores: np.ndarray = field(repr=False)
    matched: np.ndarray = field(repr=False)
    by_threshold: list[AtThreshold]
    calibration: Calibration | None  # P(match | score) fitted from the outcomes; no bootstrap intervals
    calibration_problem: str | None  # why there is no calibration

    @property
    def scientific_name(self) -> str:
        return split_label(self.species)[0]

    @property
    def common_name(self) -> str:
        return split_label(self.species)[1]

    def at(self, threshold: float) -> AtThreshold | None:
        """The counts at one of the grid's thresholds."""
        return next((row for row in self.by_threshold if abs(row.threshold - threshold) < 1e-9), None)


@dataclass(frozen=True)
class AnnotationEvaluation:
    job: InferenceJob
    thresholds: list[float]
    min_overlap: float
    sources: tuple[str, ...] | None  # the annotations' sources counted (None: all)
    annotator_id: int | None  # only this person's annotations (None: everyone's)
    recordings: int  # annotated recordings of the job evaluated
    annotations: int  # annotations with a species on them
    species: list[SpeciesAgainstAnnotations]  # annotated or detected there, by label

    @property
    def job_threshold(self) -> float:
        return self.thresholds[0]


def evaluate_against_annotations(
    job: InferenceJob,
    *,
    sources: tuple[str, ...] | list[str] | None = None,
    annotator_id: int | None = None,
    min_overlap: float = 0.0,
) -> AnnotationEvaluation:
    """Per species, the job's detections on its annotated recordings against those annotations, at every threshold."""
    if not 0 <= min_overlap <= 1:
        raise ValueError(f"min_overlap is a fraction of the shorter span, from 0 to 1; got {min_overlap}")
    sources = tuple(sources) if sources else None
    thresholds = threshold_grid(float(job.settings.confidence_threshold))
    recordings, detections, truth = _read(job, sources=sources, annotator_id=annotator_id, min_overlap=min_overlap)
    grid = np.asarray(thresholds, dtype=np.float64)[:, None]
    species = []
    for label in sorted(set(detections) | set(truth)):
        pairs = detections.get(label, [])
        scores = np.array([score for score, _ in pairs], dtype=np.float64)
        matched = np.array([hit for _, hit in pairs], dtype=bool)
        best = np.asarray(truth.get(label, []), dtype=np.float64)  # -inf: no detection matches it
        passing = scores[None, :] >= grid
        found = (best[None, :] >= grid).sum(axis=1)
        true_positives = (passing & matched[None, :]).sum(axis=1)
        rows = []
        for i, threshold in enumerate(thresholds):
            n, tp, hits = int(passing[i].sum()), int(true_positives[i]), int(found[i])
            rows.append(
                AtThreshold(
                    threshold=threshold,
                    detections=n,
                    true_positives=tp,
                    false_positives=n - tp,
                    false_negatives=len(best) - hits,
                    precision=tp / n if n else None,
                    recall=hits / len(best) if len(best) else None,
                )
            )
        calibration, problem = fit_calibration(scores, matched)
        species.append(
            SpeciesAgainstAnnotations(
                species=label,
                annotations=len(best),
                scores=scores,
                matched=matched,
                by_threshold=rows,
                calibration=calibration,
                calibration_problem=problem,
            )
        )
    return AnnotationEvaluation(
        job=job,
        thresholds=thresholds,
        min_overlap=float(min_overlap),
        sources=sources,
        annotator_id=annotator_id,
        recordings=recordings,
        annotations=sum(item.annotations for item in species),
        species=species,
    )


def fit_calibration(scores: np.ndarray, matched: np.ndarray) -> tuple[Calibration | None, str | None]:
    """validation.calibration's fit of P(correct | score) from (score, matched) outcomes, or why it cannot be fitted."""
    try:
        return calibrate(scores, matched, rounds=0), None
    except TooFewVerdicts as error:
        return None, (
            f"calibration needs at least {MIN_EACH} detections that match an annotation and {MIN_EACH} that do "
            f"not; there are {error.n_correct} and {error.n_wrong}"
        )
    except NoFit as error:
        return None, str(error)


def calibration_outcomes(evaluation: AnnotationEvaluation) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """label -> (scores, matched): what validation.calibration.calibrate fits, as it fits (score, correct) verdicts."""
    return {item.species: (item.scores, item.matched) for item in evaluation.species if len(item.scores)}


def calibrated_thresholds(job: InferenceJob, target: str, **filters) -> tuple[dict[str, float], dict[str, str]]:
    """As validation.evaluation.calibrated_thresholds, from annotations instead of verdicts: the score where the
    fitted P(match) reaches `target` ("0.9", "0.95", "0.99") per species, by label; the others with the reason."""
    thresholds: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for item in evaluate_against_annotations(job, **filters).species:
        if item.calibration is None:
            skipped[item.species] = item.calibration_problem or "no fit"
        elif item.calibration.thresholds.get(target) is None:
            skipped[item.species] = f"the fitted P(match) never reaches {target} at a score the model gives"
        else:
            thresholds[item.species] = item.calibration.thresholds[target]
    return thresholds, skipped


def _read(
    job: InferenceJob, *, sources: tuple[str, ...] | None, annotator_id: int | None, min_overlap: float
) -> tuple[int, dict[str, list[tuple[float, bool]]], dict[str, list[float]]]:
    """(annotated recordings, label -> [(score, matched)] of the detections, label -> [best matching score] of the
    annotations), in one query: the annotations' and the detections' species tags joined on recording and species."""
    overlap = (
        "d.recording_id = n.recording_id AND d.tag_id = n.tag_id"
        " AND LEAST(d.end_time, n.end_time) - GREATEST(d.start_time, n.start_time) > 0"
        " AND LEAST(d.end_time, n.end_time) - GREATEST(d.start_time, n.start_time)"
        "  >= %(min_overlap)s * LEAST(d.end_time - d.start_time, n.end_time - n.start_time)"
    )
    sql = (
        "WITH annotated AS MATERIALIZED ("
        "  SELECT a.id, a.recording_id, e.start_time, e.end_time"
        f"  FROM {SoundEventAnnotation._meta.db_table} a"
        f"  JOIN {JobRecording._meta.db_table} r ON r.recording_id = a.recording_id"
        "   AND r.job_id = %(job)s AND r.status = %(done)s"
        "  JOIN echoroo_soundevent e ON e.id = a.sound_event_id"
        "  WHERE (%(sources)s::text[] IS NULL OR a.source = ANY(%(sources)s::text[]))"
        "   AND (%(annotator)s::bigint IS NULL OR a.created_by_id = %(annotator)s::bigint)),"
        " recordings AS MATERIALIZED (SELECT DISTINCT recording_id FROM annotated),"
        " truth AS MATERIALIZED ("
        "  SELECT n.id, n.recording_id, n.start_time, n.end_time, t.tag_id FROM annotated n"
        "  JOIN annotations_soundeventannotationtag t ON t.annotation_id = n.id"
        "  JOIN echoroo_tag g ON g.id = t.tag_id AND g.key = %(species)s),"
        " detections AS MATERIALIZED ("
        "  SELECT p.id, e.recording_id, e.start_time, e.end_time, pt.tag_id, pt.score"
        "  FROM recordings r JOIN echoroo_soundevent e ON e.recording_id = r.recording_id"
        "  JOIN echoroo_soundeventprediction p ON p.sound_event_id = e.id AND p.job_id = %(job)s"
        "  JOIN echoroo_soundeventpredictiontag pt ON pt.sound_event_prediction_id = p.id"
        "  JOIN echoroo_tag g ON g.id = pt.tag_id AND g.key = %(species)s),"
        " found AS ("
        "  SELECT 'detection' AS kind, d.tag_id, d.score, count(n.id) > 0 AS matched"
        f"  FROM detections d LEFT JOIN truth n ON {overlap} GROUP BY d.id, d.tag_id, d.score"
        "  UNION ALL"
        "  SELECT 'annotation', n.tag_id, max(d.score), NULL"
        f"  FROM truth n LEFT JOIN detections d ON {overlap} GROUP BY n.id, n.tag_id)"
        " SELECT f.kind, g.value, f.score, f.matched FROM found f JOIN echoroo_tag g ON g.id = f.tag_id"
        " UNION ALL SELECT 'recordings', NULL, count(*), NULL FROM recordings"
    )
    params = {
        "job": job.pk,
        "done": JobRecording.Status.DONE,
        "sources": list(sources) if sources else None,
        "annotator": annotator_id,
        "species": SPECIES,
        "min_overlap": float(min_overlap),
    }
    detections: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    truth: dict[str, list[float]] = defaultdict(list)
    recordings = 0
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for kind, label, score, matched in cursor.fetchall():
            if kind == "detection":
                detections[label].append((float(score), bool(matched)))
            elif kind == "annotation":
                truth[label].append(-np.inf if score is None else float(score))
            else:
                recordings = int(score)
    return recordings, dict(detections), dict(truth)
