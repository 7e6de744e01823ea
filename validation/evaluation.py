"""What the verdicts say about a job, species by species: counts, share correct per score bin, calibration, precision.

Read in a few queries whatever the number of species: the verdicts on the job's detections with
their scores (one query), the detections per species and score bin (one), the scores at or above
each calibrated species' chosen threshold (one), the labels and the threshold set's thresholds.
The bins are the review sample's (validation.sampling): equal widths from the job's threshold to 1.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from django.db import connection

from echoroo.models import ClipPredictionTag, Tag
from inference.models import InferenceJob
from validation.calibration import Calibration, NoFit, TooFewVerdicts, calibrate, probability
from validation.calibration import judged as outcomes
from validation.models import ThresholdSet, Verdict
from validation.sampling import DEFAULT_BINS, SCORE_BIN, bin_edges

# The score bin of a ClipPredictionTag row `t`, as validation.sampling numbers them (0 = lowest).
VERDICTS = tuple(Verdict.Value.values)


@dataclass(frozen=True)
class BinEvaluation:
    low: float
    high: float
    detections: int
    verdicts: dict[str, int]  # correct / wrong / unsure / other

    @property
    def share_correct(self) -> float | None:
        """Correct among the judged detections (unsure left out; "other" is wrong for this species)."""
        judged = sum(n for verdict, n in self.verdicts.items() if verdict != Verdict.Value.UNSURE)
        return self.verdicts[Verdict.Value.CORRECT] / judged if judged else None


@dataclass(frozen=True)
class SpeciesEvaluation:
    species: str  # the model's label
    detections: int
    verdicts: dict[str, int]
    bins: list[BinEvaluation]
    calibration: Calibration | None  # thresholds and coefficients; no bootstrap intervals here
    calibration_problem: str | None  # why there is no calibration
    threshold: float  # the chosen set's threshold for the species, or the job's own
    detections_at_threshold: int
    # The mean fitted P(correct) over the detections at or above the threshold; None without a calibration.
    precision_at_threshold: float | None


@dataclass(frozen=True)
class JobEvaluation:
    job: InferenceJob
    threshold_set: ThresholdSet | None
    bin_edges: list[float]
    species: list[SpeciesEvaluation]  # the species with verdicts, by label


def evaluate_job(
    job: InferenceJob, threshold_set: ThresholdSet | None = None, *, bins: int = DEFAULT_BINS
) -> JobEvaluation:
    """Each species with verdicts on the job's detections: counts, share correct per bin, fit, precision at a threshold.

    The threshold is the set's for the species (its default for species it does not name), or the
    job's own confidence threshold when no set is given.
    """
    low = float(job.settings.confidence_threshold)
    edges = bin_edges(low, bins)
    judged = _judged_detections(job, low=low, bins=bins)
    tag_ids = sorted(judged)
    counts = _detections_per_bin(job, tag_ids, low=low, bins=bins)
    labels = dict(Tag.objects.filter(pk__in=tag_ids).values_list("pk", "value"))
    calibrations, problems = _calibrations(judged)
    thresholds = _thresholds(threshold_set, tag_ids, default=low)
    passing_scores = _scores_at_or_above(job, {tag_id: thresholds[tag_id] for tag_id in tag_ids})

    evaluated = []
    for tag_id in tag_ids:
        per_bin: list[dict[str, int]] = [dict.fromkeys(VERDICTS, 0) for _ in range(bins)]
        for _, verdict, bin_index in judged[tag_id]:
            per_bin[bin_index][verdict] += 1
        calibration = calibrations.get(tag_id)
        passing = passing_scores.get(tag_id, np.empty(0))
        evaluated.append(
            SpeciesEvaluation(
                species=labels[tag_id],
                detections=sum(counts[tag_id]),
                verdicts={verdict: sum(b[verdict] for b in per_bin) for verdict in VERDICTS},
                bins=[
                    BinEvaluation(low=edges[i], high=edges[i + 1], detections=counts[tag_id][i], verdicts=per_bin[i])
                    for i in range(bins)
                ],
                calibration=calibration,
                calibration_problem=problems.get(tag_id),
                threshold=thresholds[tag_id],
                detections_at_threshold=len(passing),
                precision_at_threshold=(
                    float(probability(np.array(calibration.coefficients), passing).mean())
                    if calibration is not None and len(passing)
                    else None
                ),
            )
        )
    evaluated.sort(key=lambda species: species.species)
    return JobEvaluation(job=job, threshold_set=threshold_set, bin_edges=edges, species=evaluated)


def calibrated_thresholds(job: InferenceJob, target: str) -> tuple[dict[str, float], dict[str, str]]:
    """The threshold where P(correct) reaches `target` ("0.9", "0.95", "0.99") for each species of the job that can
    be calibrated, by label; and every other species of the job with the reason it has none."""
    judged = _judged_detections(job, low=float(job.settings.confidence_threshold), bins=DEFAULT_BINS)
    calibrations, problems = _calibrations(judged)
    species = (
        ClipPredictionTag.objects.filter(clip_prediction__job=job)
        .values_list("tag_id", "tag__value")
        .distinct()
        .order_by("tag__value")
    )
    thresholds: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for tag_id, label in species:
        if tag_id not in judged:
            skipped[label] = "no verdicts"
        elif tag_id in problems:
            skipped[label] = problems[tag_id]
        elif calibrations[tag_id].thresholds[target] is None:
            skipped[label] = f"the fitted P(correct) never reaches {target} at a score the model gives"
        else:
            thresholds[label] = calibrations[tag_id].thresholds[target]
    return thresholds, skipped


def _judged_detections(job: InferenceJob, *, low: float, bins: int) -> dict[int, list[tuple[float, str, int]]]:
    """Species tag id -> (score, verdict, bin) of every verdict on the job's detections, one per reviewer."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.tag_id, t.score, v.verdict, {SCORE_BIN}"
            " FROM validation_verdict v"
            " JOIN echoroo_clipprediction p ON p.clip_id = v.clip_id AND p.job_id = %(job)s"
            " JOIN echoroo_clippredictiontag t ON t.clip_prediction_id = p.id AND t.tag_id = v.species_id",
            {"job": job.pk, "low": low, "bins": bins},
        )
        rows = cursor.fetchall()
    judged: dict[int, list[tuple[float, str, int]]] = defaultdict(list)
    for tag_id, score, verdict, bin_index in rows:
        judged[tag_id].append((score, verdict, bin_index))
    return dict(judged)


def _detections_per_bin(job: InferenceJob, tag_ids: list[int], *, low: float, bins: int) -> dict[int, list[int]]:
    counts = {tag_id: [0] * bins for tag_id in tag_ids}
    if not tag_ids:
        return counts
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.tag_id, {SCORE_BIN}, count(*)"
            " FROM echoroo_clippredictiontag t JOIN echoroo_clipprediction p ON p.id = t.clip_prediction_id"
            " WHERE p.job_id = %(job)s AND t.tag_id = ANY(%(tags)s) GROUP BY 1, 2",
            {"job": job.pk, "tags": tag_ids, "low": low, "bins": bins},
        )
        for tag_id, bin_index, n in cursor.fetchall():
            counts[tag_id][bin_index] = int(n)
    return counts


def _calibrations(judged: dict[int, list[tuple[float, str, int]]]) -> tuple[dict[int, Calibration], dict[int, str]]:
    """The fit of each species (as validation.services.calibrate_species, without bootstrap), or why it has none."""
    calibrations: dict[int, Calibration] = {}
    problems: dict[int, str] = {}
    for tag_id, rows in judged.items():
        scores, correct = outcomes((score, verdict) for score, verdict, _ in rows)
        try:
            calibrations[tag_id] = calibrate(scores, correct, rounds=0)
        except (TooFewVerdicts, NoFit) as error:
            problems[tag_id] = str(error)
    return calibrations, problems


def _thresholds(threshold_set: ThresholdSet | None, tag_ids: list[int], *, default: float) -> dict[int, float]:
    if threshold_set is None:
        return dict.fromkeys(tag_ids, default)
    named = dict(threshold_set.species.filter(species_id__in=tag_ids).values_list("species_id", "threshold"))
    return {tag_id: named.get(tag_id, threshold_set.default_threshold) for tag_id in tag_ids}


def _scores_at_or_above(job: InferenceJob, thresholds: dict[int, float]) -> dict[int, np.ndarray]:
    """The scores of the job's detections of each species at or above that species' threshold."""
    if not thresholds:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.tag_id, t.score"
            " FROM echoroo_clippredictiontag t JOIN echoroo_clipprediction p ON p.id = t.clip_prediction_id"
            " JOIN unnest(%(tags)s::bigint[], %(thresholds)s::float8[]) AS chosen(tag_id, threshold)"
            "  ON chosen.tag_id = t.tag_id"
            " WHERE p.job_id = %(job)s AND t.score >= chosen.threshold",
            {"job": job.pk, "tags": list(thresholds), "thresholds": list(thresholds.values())},
        )
        rows = cursor.fetchall()
    scores: dict[int, list[float]] = defaultdict(list)
    for tag_id, score in rows:
        scores[tag_id].append(score)
    return {tag_id: np.array(values, dtype=np.float64) for tag_id, values in scores.items()}
