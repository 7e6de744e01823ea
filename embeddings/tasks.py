"""django-q2 entry points for sound event embeddings: plain functions with plain arguments, runnable without a queue.

A job's merged detections are embedded when the job ends (queued by inference.runner), with the
job's model; people's boxes when saved (queued by the annotations service), with every model
installed here that has a run with embeddings. Both skip what is embedded already, so a task
delivered twice, or run again after a crash, adds only what is missing. Each ends by building the
run's sound event HNSW index if it has none.
"""

from __future__ import annotations

import logging

from echoroo.models import ModelRun, Recording, SoundEvent
from embeddings import service
from embeddings.indexes import build_index_if_needed
from inference.config import InferenceConfig
from inference.models import InferenceJob
from inference.runner import load_runtime

logger = logging.getLogger(__name__)

# How long one task may run: a job's detections on a long survey are thousands of events.
TASK_TIMEOUT_S = 6 * 3600


def queue_sound_event_embeddings(sound_event_ids: list[int]) -> None:
    """Queue embed_sound_events for these events (call it on commit of the rows that made them)."""
    if not sound_event_ids:
        return
    from django_q.tasks import async_task

    async_task("embeddings.tasks.embed_sound_events", [int(i) for i in sound_event_ids], timeout=TASK_TIMEOUT_S)


def embed_sound_events(sound_event_ids: list[int]) -> str:
    """Embed these sound events with every installed model that has a run with embeddings (those missing only)."""
    events = SoundEvent.objects.filter(pk__in=sound_event_ids)
    done = []
    for model_run in service.installed_embedding_runs():
        try:
            runtime = load_runtime(model_run.name, InferenceConfig())
        except Exception as error:  # a model that cannot load here must not keep the others from embedding
            logger.warning("sound events not embedded with %s: it cannot be loaded here: %s", model_run, error)
            done.append(f"{model_run}: cannot be loaded ({error})")
            continue
        added = service.embed_missing_sound_events(runtime, model_run.pk, events, on_failure=_log_failure)
        build_index_if_needed("sound_event", model_run.pk, model_run.embedding_dimension)
        done.append(f"{model_run}: {added} added")
    return "; ".join(done) or "no installed model has a run with embeddings"


def queue_job_detection_embeddings(job_id: int) -> None:
    """When a job ends: queue embed_job_detections if the job stores embeddings."""
    job = InferenceJob.objects.select_related("model_run").get(pk=job_id)
    if not (job.settings.store_embeddings and job.settings.store_predictions and job.model_run.embedding_dimension):
        return
    from django_q.tasks import async_task

    async_task(
        "embeddings.tasks.embed_job_detections",
        job_id,
        task_name=f"sound-event-embeddings-job-{job_id}",
        timeout=TASK_TIMEOUT_S,
    )


def embed_job_detections(job_id: int) -> str:
    """Embed a job's merged detections with its model, recording by recording (those missing only)."""
    job = InferenceJob.objects.select_related("model_run").get(pk=job_id)
    model_run: ModelRun = job.model_run
    if not (job.settings.store_embeddings and model_run.embedding_dimension):
        return "the job stores no embeddings"
    detections = SoundEvent.objects.filter(predictions__job=job)
    if not service.missing_sound_events(model_run.pk, detections).exists():
        added = 0
    else:
        runtime = load_runtime(model_run.name, job.settings)
        added = service.embed_missing_sound_events(runtime, model_run.pk, detections, on_failure=_log_failure)
    index = build_index_if_needed("sound_event", model_run.pk, model_run.embedding_dimension)
    return f"{added} detections embedded; index {index}"


def _log_failure(recording: Recording, error: Exception) -> None:
    logger.warning("sound events of %s not embedded: %s", recording.path, error)
