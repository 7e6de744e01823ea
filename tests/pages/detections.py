"""Jobs with detections, and classifier scores, written through the ORM: page and admin tests without a model."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from echoroo.models import SPECIES, Clip, ClipPrediction, ClipPredictionTag, ModelRun, Recording, Tag
from inference.models import InferenceJob, JobRecording

# Per recording: window start (s) -> {species: score}.
Detections = dict[Recording, dict[float, dict[str, float]]]


def window(recording: Recording, start_s: float, length_s: float = 3.0) -> Clip:
    clip, _ = Clip.objects.get_or_create(recording=recording, start_time=start_s, end_time=start_s + length_s)
    return clip


def score_clips(clip_scores: dict[Clip, dict[str, float]], model_run: ModelRun, job: InferenceJob | None) -> None:
    """One ClipPrediction per clip (of the job, or of no job: a classifier's), a tag per label."""
    for clip, scores in clip_scores.items():
        prediction = ClipPrediction.objects.create(clip=clip, model_run=model_run, job=job)
        for label, score in scores.items():
            tag, _ = Tag.objects.get_or_create(key=SPECIES, value=label)
            ClipPredictionTag.objects.create(clip_prediction=prediction, tag=tag, score=score)


def job_with_detections(
    model_run: ModelRun,
    detections: Detections,
    *,
    dataset=None,
    status: str = InferenceJob.Status.COMPLETED,
    recording_status: str = JobRecording.Status.DONE,
    reused: tuple[Recording, ...] = (),
    config: dict | None = None,
    age_s: float = 0.0,
) -> InferenceJob:
    """A job on one recording (or on `dataset`) that finished each recording of `detections` with those scores."""
    recordings = list(detections)
    target = {"dataset": dataset} if dataset is not None else {"recording": recordings[0]}
    job = InferenceJob.objects.create(model_run=model_run, status=status, config=config or {}, **target)
    for recording, windows in detections.items():
        JobRecording.objects.create(job=job, recording=recording, status=recording_status, reused=recording in reused)
        score_clips({window(recording, start): scores for start, scores in windows.items()}, model_run, job)
    # Which job is the newest is what the pages go by: set it rather than sleep.
    InferenceJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - dt.timedelta(seconds=age_s))
    job.refresh_from_db()
    return job


def classifier_scores(source: ModelRun, recording: Recording, windows: dict[float, dict[str, float]]) -> ModelRun:
    """A classifier run's scores of the recording's windows: rows with no job, which are not species detections."""
    run, _ = ModelRun.objects.get_or_create(
        name="Robin song", version="v1", kind=ModelRun.Kind.CLASSIFIER, defaults={"source": source}
    )
    score_clips({window(recording, start): scores for start, scores in windows.items()}, run, None)
    return run
