"""The job page's "Against annotations" section: the evaluation at one threshold of its grid, as rows to show."""

from __future__ import annotations

from annotations.evaluation import MATCH_TEXT, evaluate_against_annotations
from inference.models import InferenceJob


def against_annotations(job: InferenceJob, wanted_threshold: str | None = None) -> dict:
    """The rows at the picked threshold (the job's own unless `wanted_threshold` is one of the grid's);
    `recordings` is 0 when none of the job's finished recordings holds an annotation (nothing to show)."""
    evaluation = evaluate_against_annotations(job)
    threshold = evaluation.job_threshold
    try:
        wanted = float(wanted_threshold or "")
    except ValueError:
        wanted = None
    if wanted is not None:
        threshold = next((value for value in evaluation.thresholds if abs(value - wanted) < 1e-9), threshold)
    rows = []
    for species in evaluation.species:
        counts = species.at(threshold)
        calibration = species.calibration
        rows.append(
            {
                "label": species.species,
                "common_name": species.common_name,
                "scientific_name": species.scientific_name if species.scientific_name != species.common_name else "",
                "annotations": species.annotations,
                "counts": counts,
                "calibrated": calibration.thresholds if calibration else None,
                "problem": species.calibration_problem,
            }
        )
    return {
        "recordings": evaluation.recordings,
        "annotations": evaluation.annotations,
        "threshold": threshold,
        "thresholds": evaluation.thresholds,
        "job_threshold": evaluation.job_threshold,
        "match": MATCH_TEXT,
        "species": rows,
    }
