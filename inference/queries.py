"""Read-only questions about jobs that the admin and the pages both ask: what a job found, and where it stands."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError, connection, transaction
from django.db.models import Count, F, Max, Q, QuerySet, Sum, Window
from django.db.models.functions import RowNumber

from echoroo.models import SPECIES, ClipPredictionTag, Recording
from inference.models import InferenceJob, JobRecording
from validation.models import ThresholdSet
from validation.services import passing

TOP_SPECIES = 20
BEST_CLIPS_PER_SPECIES = 3

T = TypeVar("T")


def species_summary(job: InferenceJob, limit: int = TOP_SPECIES, threshold_set: ThresholdSet | None = None) -> QuerySet:
    """The species this job detected (those passing the threshold set, given one): its clip predictions of each and
    the best score, most first."""
    return (
        job_predictions(job, threshold_set)
        .values("tag__value")
        .annotate(predictions=Count("id"), max_score=Max("score"))
        .order_by("-predictions", "-max_score", "tag__value")[:limit]
    )


def job_predictions(job: InferenceJob, threshold_set: ThresholdSet | None = None) -> QuerySet:
    """The species scores of this job's window detections, and of no other job's (nor a classifier's scores);
    given a threshold set, only those at or above their species' threshold in it."""
    # Other jobs of the same model run on the same recordings have their own rows, with their own
    # thresholds and sensitivities: reading by model run and recording would mix them in.
    scores = ClipPredictionTag.objects.filter(tag__key=SPECIES, clip_prediction__job=job)
    return scores if threshold_set is None else passing(scores, threshold_set)


def best_clips(
    job: InferenceJob,
    species: list[str],
    per_species: int = BEST_CLIPS_PER_SPECIES,
    threshold_set: ThresholdSet | None = None,
) -> dict[str, list]:
    """The highest-scored clips of each of these species on the job's recordings (passing the threshold set, given
    one), best first (one query)."""
    if not species:
        return {}
    ranked = (
        job_predictions(job, threshold_set)
        .filter(tag__value__in=species)
        .annotate(rank=Window(RowNumber(), partition_by=[F("tag_id")], order_by=[F("score").desc(), F("id")]))
        .filter(rank__lte=per_species)
        .values(
            "tag__value",
            "score",
            clip_uuid=F("clip_prediction__clip__uuid"),
            start_time=F("clip_prediction__clip__start_time"),
            end_time=F("clip_prediction__clip__end_time"),
            recording_uuid=F("clip_prediction__clip__recording__uuid"),
            recording_path=F("clip_prediction__clip__recording__path"),
        )
        .order_by("tag__value", "rank")
    )
    found: dict[str, list] = {}
    for row in ranked:
        found.setdefault(row["tag__value"], []).append(row)
    return found


def within_time_limit(query: Callable[[], T], limit_ms: int) -> T | None:
    """query()'s result, or None when its SQL runs past limit_ms: a summary of a huge job gives up, the page shows."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(limit_ms)}")
            result = query()
            cursor.execute("SET LOCAL statement_timeout = DEFAULT")
    except OperationalError:
        return None
    return result


def recording_counts(job: InferenceJob) -> list[dict]:
    """The job's recordings by status, in the order of JobRecording.Status: recordings, clips processed and total,
    and how many of them were read from stored model output (reused) instead of running the model."""
    order = list(JobRecording.Status.values)
    return sorted(
        JobRecording.objects.filter(job=job)
        .order_by()
        .values("status")
        .annotate(
            recordings=Count("id"),
            processed=Sum("processed_clips"),
            total=Sum("total_clips"),
            reused=Count("id", filter=Q(reused=True)),
        ),
        key=lambda state: order.index(state["status"]),
    )


def recording_jobs(recording: Recording) -> QuerySet:
    """The jobs that finished this recording (whether or not they finished the rest), newest first."""
    done = JobRecording.objects.filter(recording=recording, status=JobRecording.Status.DONE)
    return (
        InferenceJob.objects.filter(pk__in=done.values("job_id"))
        .select_related("model_run")
        .order_by("-created_at", "-pk")
    )


def shown_job_recordings(job: InferenceJob, total: int, limit: int) -> list[JobRecording]:
    """All of a job's recordings when there are at most `limit`, else the failed and then the running ones."""
    # With the site and dataset: the place the species filter used is the recording's, else theirs.
    rows = JobRecording.objects.filter(job=job).select_related("recording__site", "recording__dataset")
    if total <= limit:
        return list(rows.order_by("recording__path"))
    shown = list(rows.filter(status=JobRecording.Status.FAILED).order_by("id")[:limit])
    shown += rows.filter(status=JobRecording.Status.RUNNING).order_by("id")[: limit - len(shown)]
    return shown


def left_unfinished(job_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per job, how many of its recordings failed and how many were cancelled (one query): what a completed job's
    state must say it left undone."""
    left = (
        JobRecording.objects.filter(
            job_id__in=job_ids, status__in=[JobRecording.Status.FAILED, JobRecording.Status.CANCELLED]
        )
        .order_by()
        .values("job_id")
        .annotate(
            failed=Count("id", filter=Q(status=JobRecording.Status.FAILED)),
            cancelled=Count("id", filter=Q(status=JobRecording.Status.CANCELLED)),
        )
    )
    return {row["job_id"]: (row["failed"], row["cancelled"]) for row in left}
