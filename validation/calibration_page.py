"""The calibration view: P(correct) against the score for one species of a job, fitted from the verdicts,
drawn as inline SVG with the thresholds at 0.90 / 0.95 / 0.99, their bootstrap intervals and precision."""

from __future__ import annotations

import numpy as np
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from echoroo.models import Tag
from echoroo.pages import page_login_required, species_names
from inference.models import InferenceJob
from inference.queries import job_predictions
from validation import services
from validation.calibration import MIN_EACH, TARGETS, Calibration, NoFit, TooFewVerdicts, calibrate
from validation.calibration_plot import calibration_plot, score_text
from validation.review_queries import (
    chosen_species,
    get_job,
    job_title,
    needed_text,
    review_url,
    species_choices,
    verdict_counts,
)


@require_GET
@page_login_required
def calibration_page(request: HttpRequest, job_uuid) -> HttpResponse:
    """P(correct) against the score for a species, fitted from the verdicts, with the thresholds it gives."""
    job = get_job(job_uuid)
    species, problem_text = chosen_species(request, job)
    context = {
        "job": job,
        "job_title": job_title(job),
        "choices": species_choices(job),
        "problem": problem_text,
        "species": species,
    }
    if species is not None:
        context |= calibration_context(job, species)
    return render(request, "validation/calibration.html", context)


def calibration_context(job: InferenceJob, species: Tag) -> dict:
    """The verdicts, the fit (when there are enough of them) and the plot, in three queries."""
    counts = verdict_counts(job, species)
    scores, correct = services.calibration_inputs(job, species)
    detection_scores = np.fromiter(
        job_predictions(job).filter(tag=species).values_list("score", flat=True), dtype=np.float64
    )
    fitted: Calibration | None = None
    reason = needed_text(counts)
    if not reason:
        try:
            fitted = calibrate(scores, correct, detection_scores=detection_scores)
        except (TooFewVerdicts, NoFit) as error:
            reason = str(error)
    low = float(job.settings.confidence_threshold)
    rows = [threshold_row(fitted, key, detection_scores) for key in (f"{t:g}" for t in TARGETS)] if fitted else []
    common, scientific = species_names(species.value)
    query = scientific or species.value
    return {
        "common_name": common,
        "scientific_name": scientific,
        "counts": counts,
        "detections": len(detection_scores),
        "needed": needed_text(counts),
        "reason": reason,
        "calibration": fitted,
        "rows": rows,
        "plot": calibration_plot(scores, correct, fitted, low=low),
        "min_each": MIN_EACH,
        "review_url": review_url(job, query),
        "species_query": query,
    }


def threshold_row(fitted: Calibration, key: str, detection_scores: np.ndarray) -> dict:
    """One line of the thresholds table: where P(correct) reaches `key`, its interval, what passes it."""
    threshold = fitted.thresholds[key]
    low, high = fitted.intervals[key]
    precision = fitted.precision_above[key]
    return {
        "target": key,
        "threshold": threshold,
        "threshold_text": score_text(threshold),
        "interval": (low, high),
        "interval_text": f"{score_text(low)} – {score_text(high)}" if low is not None else "–",
        "precision_pct": None if precision is None else f"{100 * precision:.1f}",
        "detections": int((detection_scores >= threshold).sum()) if threshold is not None else None,
    }
