"""Create, start, cancel and retry inference jobs: the admin, the API and the commands all call these."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from echoroo.audio import count_windows
from echoroo.models import Dataset, ModelRun, Recording
from embeddings.indexes import defer_index, ensure_hnsw_index, windows_to_embed
from inference.config import ConfigError, InferenceConfig, parse_config
from inference.models import InferenceJob, JobRecording
from inference.runtimes import ModelRuntime, available_runtimes, runtime_class


def model_run_for(model_name: str, model_version: str = "latest") -> ModelRun:
    """The ModelRun of a model and version, shared by every job that runs it (one embedding space)."""
    if model_name not in available_runtimes():
        raise ConfigError({"model_name": f"unknown model {model_name!r}; available: {', '.join(available_runtimes())}"})
    runtime = runtime_class(model_name)
    if model_version not in ("latest", "", None, runtime.version):
        raise ConfigError(
            {"model_version": f"{model_name} is available at version {runtime.version} only, not {model_version!r}"}
        )
    model_run, created = ModelRun.objects.get_or_create(
        name=runtime.name,
        version=runtime.version,
        defaults={
            "embedding_dimension": runtime.embedding_dim,
            "segment_duration": runtime.window_s,
            "sample_rate": runtime.sample_rate,
            "description": (runtime.__doc__ or "").strip().splitlines()[0] if runtime.__doc__ else "",
        },
    )
    if created:
        # The run's own HNSW index, built as rows arrive (see embeddings.indexes).
        ensure_hnsw_index("clip", model_run.id, runtime.embedding_dim)
    return model_run


def create_job(
    *,
    model_name: str,
    model_version: str = "latest",
    dataset: Dataset | None = None,
    recording: Recording | None = None,
    config: dict[str, Any] | InferenceConfig | None = None,
    by=None,
) -> InferenceJob:
    """Validate a job's settings and create it, pending."""
    errors: dict[str, str] = {}
    if (dataset is None) == (recording is None):
        errors["dataset"] = "give a dataset or a recording, not both and not neither"
    try:
        model_run = model_run_for(model_name, model_version)
    except ConfigError as error:
        errors.update(error.errors)
        model_run = None
    if model_name in available_runtimes() and (reason := runtime_class(model_name).unavailable_reason(settings)):
        errors["model_name"] = reason
    parsed = None
    if model_run is not None:
        raw = config.as_json() if isinstance(config, InferenceConfig) else config
        try:
            parsed = parse_config(raw, window_s=model_run.segment_duration)
        except ConfigError as error:
            errors.update(error.errors)
        if parsed is not None and parsed.custom_species_list:
            _check_species(runtime_class(model_name), parsed, errors)
    if errors:
        raise ConfigError(errors)
    return InferenceJob.objects.create(
        model_run=model_run,
        dataset=dataset,
        recording=recording,
        config=parsed.as_json(),
        created_by=by if by is not None and by.is_authenticated else None,
    )


def _check_species(runtime: type[ModelRuntime], config: InferenceConfig, errors: dict[str, str]) -> None:
    """A custom species list against the model's labels, where they are known before it loads (else it fails then)."""
    known = runtime.known_label_names(settings)
    if known is None:
        return
    unknown = [name for name in config.custom_species_list if name not in known]
    if unknown:
        shown = ", ".join(repr(name) for name in unknown[:5])
        errors["custom_species_list"] = f"not in {runtime.name}'s labels: {shown}" + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )


def start_job(job: InferenceJob, *, by=None, sync: bool = False) -> InferenceJob:
    """Queue one task per recording of a pending job (or run them here with `sync`)."""
    _check_may_change(job, by)
    with transaction.atomic():
        job = InferenceJob.objects.select_for_update().select_related("model_run").get(pk=job.pk)
        if job.status != InferenceJob.Status.PENDING:
            raise ConfigError({"status": f"the job is {job.status}; only a pending job can be started"})
        recordings = (
            Recording.objects.filter(dataset_id=job.dataset_id)
            if job.dataset_id
            else Recording.objects.filter(pk=job.recording_id)
        ).values_list("id", "duration")
        window_s, rate = job.model_run.segment_duration, job.model_run.sample_rate
        overlap = job.settings.overlap
        rows = [
            JobRecording(
                job=job, recording_id=rid, total_clips=count_windows(duration, window_s, overlap, sample_rate=rate)
            )
            for rid, duration in recordings
        ]
        JobRecording.objects.bulk_create(rows, ignore_conflicts=True)
        job.total_clips = sum(row.total_clips for row in rows)
        job.status = InferenceJob.Status.RUNNING
        job.started_at = timezone.now()
        job.save(update_fields=["total_clips", "status", "started_at"])
        recording_ids = [row.recording_id for row in rows]
        if not sync:
            transaction.on_commit(lambda: _enqueue(job.pk, recording_ids))
    if job.settings.store_embeddings:  # a large load: the run's HNSW index is built after it (embeddings.indexes)
        windows = {row.recording_id: row.total_clips for row in rows}
        defer_index(job.model_run_id, expected_rows=windows_to_embed(job.model_run_id, overlap, windows))
    if sync:
        _run_here(job.pk, recording_ids)
    if not recording_ids:
        from inference.runner import finish_job_if_done

        finish_job_if_done(job.pk)
    job.refresh_from_db()
    return job


def cancel_job(job: InferenceJob, *, by=None) -> InferenceJob:
    """Stop a job between batches; finished recordings keep their results."""
    _check_may_change(job, by)
    with transaction.atomic():
        job = InferenceJob.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            return job
        job.status = InferenceJob.Status.CANCELLED
        job.completed_at = timezone.now()
        job.save(update_fields=["status", "completed_at"])
        JobRecording.objects.filter(job=job, status=JobRecording.Status.PENDING).update(
            status=JobRecording.Status.CANCELLED
        )
        from inference.tasks import queue_embedding_index

        # Its recordings still queued will not run: the run's index, if the job deferred it, is built now.
        transaction.on_commit(lambda: queue_embedding_index(job.model_run_id), robust=True)
    return job


def retry_failed(job: InferenceJob, *, by=None, sync: bool = False) -> InferenceJob:
    """Run again the recordings of a finished job that failed or were cancelled."""
    _check_may_change(job, by)
    with transaction.atomic():
        job = InferenceJob.objects.select_for_update().get(pk=job.pk)
        if not job.is_finished:
            raise ConfigError({"status": f"the job is {job.status}; retry a job once it has finished"})
        again = list(
            JobRecording.objects.filter(
                job=job, status__in=[JobRecording.Status.FAILED, JobRecording.Status.CANCELLED]
            ).values_list("recording_id", flat=True)
        )
        if not again:
            return job
        JobRecording.objects.filter(job=job, recording_id__in=again).update(
            status=JobRecording.Status.PENDING, error_message="", processed_clips=0
        )
        job.status = InferenceJob.Status.RUNNING
        job.completed_at = None
        job.error_message = ""
        job.save(update_fields=["status", "completed_at", "error_message"])
        if not sync:
            transaction.on_commit(lambda: _enqueue(job.pk, again))
    if sync:
        _run_here(job.pk, again)
    job.refresh_from_db()
    return job


def _check_may_change(job: InferenceJob, by) -> None:
    if by is not None and not job.can_be_changed_by(by):
        raise PermissionDenied("only staff or the job's creator may start, cancel or retry it")


def _run_here(job_id: int, recording_ids: list[int]) -> None:
    """Run a job's recordings in this process, without a worker (`infer --sync`, tests)."""
    from inference.runner import run_job_recording

    for recording_id in recording_ids:
        run_job_recording(job_id, recording_id)
    from inference.tasks import build_embedding_index

    # No worker here to take the queued build: the run's index, if the job deferred it, is built now.
    build_embedding_index(InferenceJob.objects.values_list("model_run_id", flat=True).get(pk=job_id))


def _enqueue(job_id: int, recording_ids: list[int]) -> None:
    """Queue the recordings as django-q2 tasks that any worker of any cluster sharing the database takes.

    Short recordings go together, INFERENCE_TASK_AUDIO_S of audio a task, so that the fixed cost
    of a task (queueing, claiming, the result) stays small beside the model's work.
    """
    from django_q.tasks import async_task

    durations = dict(Recording.objects.filter(pk__in=recording_ids).values_list("pk", "duration"))
    for group in task_groups(recording_ids, durations, settings.INFERENCE_TASK_AUDIO_S):
        async_task(
            "inference.tasks.run_job_recordings",
            job_id,
            group,
            group=f"job-{job_id}",
            task_name=f"job-{job_id}-recordings-{group[0]}-{len(group)}",
        )


def task_groups(recording_ids: list[int], durations: dict[int, float], audio_s: float) -> list[list[int]]:
    """Consecutive recordings gathered until a group holds `audio_s` seconds of audio (one each with 0)."""
    groups: list[list[int]] = []
    current: list[int] = []
    seconds = 0.0
    for recording_id in recording_ids:
        current.append(recording_id)
        seconds += durations.get(recording_id, 0.0)
        if seconds >= audio_s:
            groups.append(current)
            current, seconds = [], 0.0
    if current:
        groups.append(current)
    return groups
