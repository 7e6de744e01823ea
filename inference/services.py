"""Create, start, cancel and retry inference jobs: the admin, the API and the commands all call these."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from annotations.species import SpeciesNames
from echoroo.audio import count_windows
from echoroo.jobs import mark_cancelled
from echoroo.models import Dataset, ModelRun, Recording
from embeddings.indexes import defer_index, ensure_hnsw_index, windows_to_embed
from inference.config import ConfigError, InferenceConfig, parse_config
from inference.models import InferenceJob, JobRecording
from inference.runtimes import ModelRuntime, available_runtimes, runtime_class
from inference.runtimes.base import Label

# A job counts its windows in PostgreSQL integers (InferenceJob.total_clips, JobRecording.total_clips).
MAX_JOB_WINDOWS = 2**31 - 1
TARGET_MISSING = "give a dataset or a recording, not both and not neither"


def may_create_jobs(user) -> bool:
    """Who may create jobs (and start them at once): any logged-in user. A job is then its creator's: the creator
    or staff start, cancel and retry it (InferenceJob.can_be_changed_by).

    The rule of the rest of the product (classifiers, annotations, threshold sets: anyone creates, the creator or
    staff change), and of the API since its first day. `None` is the command line, run by the operator.
    """
    return user is None or bool(user.is_authenticated and user.is_active)


def model_run_for(model_name: str, model_version: str = "latest") -> ModelRun:
    """The ModelRun of a model and version, shared by every job that runs it (one embedding space)."""
    errors: dict[str, str] = {}
    runtime = _runtime(model_name, model_version, errors)
    if errors:
        raise ConfigError(errors)
    return _model_run(runtime)


def _runtime(model_name: str, model_version: str, errors: dict[str, str]) -> type[ModelRuntime] | None:
    """The runtime of a model and version, or None with what is wrong in `errors`; nothing is written."""
    if model_name not in available_runtimes():
        errors["model_name"] = f"unknown model {model_name!r}; available: {', '.join(available_runtimes())}"
        return None
    runtime = runtime_class(model_name)
    if model_version not in ("latest", "", None, runtime.version):
        errors["model_version"] = f"{model_name} is available at version {runtime.version} only, not {model_version!r}"
        return None
    return runtime


def _model_run(runtime: type[ModelRuntime]) -> ModelRun:
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


def job_errors(
    *, model_name: str, model_version: str = "latest", config: dict[str, Any] | InferenceConfig | None = None
) -> dict[str, str]:
    """What is wrong with a job's model and settings, every problem at once (the target aside); nothing is written."""
    return _check(model_name, model_version, config)[0]


def _check(
    model_name: str, model_version: str, config: dict[str, Any] | InferenceConfig | None
) -> tuple[dict[str, str], type[ModelRuntime] | None, InferenceConfig | None]:
    errors: dict[str, str] = {}
    runtime = _runtime(model_name, model_version, errors)
    if runtime is not None and (reason := runtime.unavailable_reason(settings)):
        errors["model_name"] = reason
    raw = config.as_json() if isinstance(config, InferenceConfig) else config
    parsed = None
    try:
        # An unknown model has no window: its overlap is checked once the model is known.
        parsed = parse_config(raw, window_s=runtime.window_s if runtime else math.inf)
    except ConfigError as error:
        errors.update(error.errors)
    if runtime is not None and (names := _species_list(parsed, raw)):
        labels = species_labels(runtime, names, errors)
        parsed = replace(parsed, custom_species_list=labels) if parsed is not None else None
    return errors, runtime, parsed


def _species_list(parsed: InferenceConfig | None, raw: dict[str, Any] | None) -> tuple[str, ...] | None:
    """The config's species list, also when other settings are wrong (so that its names are checked too)."""
    if parsed is not None:
        return parsed.custom_species_list
    try:
        return parse_config(
            {"custom_species_list": (raw or {}).get("custom_species_list")}, window_s=1
        ).custom_species_list
    except ConfigError:
        return None  # the list itself is wrong, and parse_config has said so


def species_labels(runtime: type[ModelRuntime], names: tuple[str, ...], errors: dict[str, str]) -> tuple[str, ...]:
    """A custom species list as the model's labels: each name a label, a scientific or common name, or an eBird code.

    Where the model's labels are known before it loads (BirdNET), a name that is none of its species is an error;
    elsewhere a name is kept as its scientific name, or as given, and checked when the model loads.
    """
    people = SpeciesNames()
    known = runtime.known_labels(settings)
    model_label = (
        None if known is None else {name: label.name for label in known for name in (label.name, label.scientific_name)}
    )
    labels, unknown, ambiguous = [], [], []
    for name in names:
        label = people.label(name)
        if model_label is None:
            labels.append(Label.parse(label).scientific_name if label else name)
        elif found := model_label.get(name) or (
            label and (model_label.get(label) or model_label.get(Label.parse(label).scientific_name))
        ):
            labels.append(found)
        elif label is None and people.by_name.get(name.casefold(), "") is None:
            ambiguous.append(name)
        else:
            unknown.append(name)
    problems = []
    if unknown:
        problems.append(f"not a species {runtime.display_name} knows: {_listed(unknown)}")
    if ambiguous:
        problems.append(f"names more than one species, give the scientific name: {_listed(ambiguous)}")
    if problems:
        errors["custom_species_list"] = "; ".join(problems) + (
            " (name each by its label, scientific name, common name or eBird code, e.g. 'Ruffed Grouse' or 'rufgro')"
        )
    return tuple(dict.fromkeys(labels))


def _listed(names: list[str]) -> str:
    shown = ", ".join(repr(name) for name in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def create_job(
    *,
    model_name: str,
    model_version: str = "latest",
    dataset: Dataset | None = None,
    recording: Recording | None = None,
    config: dict[str, Any] | InferenceConfig | None = None,
    start: bool = False,
    queue: bool = True,
    by=None,
) -> InferenceJob:
    """Check a job, then create it (and with `start`, start it) in one transaction: a refused job writes nothing.

    Every problem is reported at once, as one ConfigError. With `queue=False` a started job's recordings are
    not queued: the caller runs them with `run_here` (`infer --sync`).
    """
    if not may_create_jobs(by):
        raise PermissionDenied("log in to create jobs")
    if (dataset is None) == (recording is None):
        errors = {
            "dataset": TARGET_MISSING,
            **job_errors(model_name=model_name, model_version=model_version, config=config),
        }
        raise ConfigError(errors)
    (job,) = create_jobs(
        model_name=model_name,
        model_version=model_version,
        targets=[dataset or recording],
        config=config,
        start=start,
        queue=queue,
        by=by,
    )
    return job


def create_jobs(
    *,
    model_name: str,
    model_version: str = "latest",
    targets: list[Dataset | Recording],
    config: dict[str, Any] | InferenceConfig | None = None,
    start: bool = False,
    queue: bool = True,
    by=None,
) -> list[InferenceJob]:
    """One job per dataset or recording, all with the same settings, created (and started) together or not at all."""
    if not may_create_jobs(by):
        raise PermissionDenied("log in to create jobs")
    errors, runtime, parsed = _check(model_name, model_version, config)
    if errors:
        raise ConfigError(errors)
    creator = by if by is not None and by.is_authenticated else None
    with transaction.atomic():
        model_run = _model_run(runtime)
        jobs = [
            InferenceJob.objects.create(
                model_run=model_run,
                dataset=target if isinstance(target, Dataset) else None,
                recording=target if isinstance(target, Recording) else None,
                config=parsed.as_json(),
                created_by=creator,
            )
            for target in targets
        ]
        if not start:
            return jobs
        started = [(job, _begin(job, queue=queue)) for job in jobs]
    return [_after_start(job, windows, sync=False) for job, windows in started]


def start_job(job: InferenceJob, *, by=None, sync: bool = False) -> InferenceJob:
    """Queue one task per recording of a pending job (or run them here with `sync`)."""
    _check_may_change(job, by)
    with transaction.atomic():
        job = InferenceJob.objects.select_for_update().select_related("model_run").get(pk=job.pk)
        if job.status != InferenceJob.Status.PENDING:
            raise ConfigError({"status": f"the job is {job.status}; only a pending job can be started"})
        windows = _begin(job, queue=not sync)
    return _after_start(job, windows, sync=sync)


def _begin(job: InferenceJob, *, queue: bool) -> dict[int, int]:
    """Inside the caller's transaction: the job's recordings and their windows, and the job running.

    Returns each recording's windows. A target whose windows a job cannot count (a misread duration) is a
    ConfigError naming its longest recordings, and the transaction writes nothing.
    """
    recordings = (
        Recording.objects.filter(dataset_id=job.dataset_id)
        if job.dataset_id
        else Recording.objects.filter(pk=job.recording_id)
    ).values_list("id", "path", "duration")
    window_s, rate = job.model_run.segment_duration, job.model_run.sample_rate
    overlap = job.settings.overlap
    windows = {rid: count_windows(duration, window_s, overlap, sample_rate=rate) for rid, _, duration in recordings}
    total = sum(windows.values())
    if total > MAX_JOB_WINDOWS:
        longest = sorted(recordings, key=lambda row: -row[2])[:3]
        named = ", ".join(f"{path} ({duration:.3g} s)" for _, path, duration in longest)
        raise ConfigError(
            {
                "dataset" if job.dataset_id else "recording": f"its recordings make {total:,} windows, more than a job "
                f"counts ({MAX_JOB_WINDOWS:,}): the longest are {named}; a duration like that is misread — "
                "import the file again (import_recordings measures it by decoding)"
            }
        )
    JobRecording.objects.bulk_create(
        [JobRecording(job=job, recording_id=rid, total_clips=count) for rid, count in windows.items()],
        ignore_conflicts=True,
    )
    job.total_clips = total
    job.status = InferenceJob.Status.RUNNING
    job.started_at = timezone.now()
    job.save(update_fields=["total_clips", "status", "started_at"])
    if queue:
        transaction.on_commit(lambda: _enqueue(job.pk, list(windows)))
    return windows


def _after_start(job: InferenceJob, windows: dict[int, int], *, sync: bool) -> InferenceJob:
    """Once the start is committed: make room for a large load of embeddings, run here with `sync`, end an empty job."""
    if job.settings.store_embeddings:  # a large load: the run's HNSW index is built after it (embeddings.indexes)
        defer_index(job.model_run_id, expected_rows=windows_to_embed(job.model_run_id, job.settings.overlap, windows))
    if sync:
        _run_here(job.pk, list(windows))
    if not windows:
        from inference.runner import finish_job_if_done

        finish_job_if_done(job.pk)
    job.refresh_from_db()
    return job


def run_here(job: InferenceJob) -> InferenceJob:
    """Run a started job's pending recordings in this process, without a worker (`infer --sync`)."""
    pending = JobRecording.objects.filter(job=job, status=JobRecording.Status.PENDING).order_by("id")
    _run_here(job.pk, list(pending.values_list("recording_id", flat=True)))
    job.refresh_from_db()
    return job


def cancel_job(job: InferenceJob, *, by=None) -> InferenceJob:
    """Stop a pending or running job between batches; finished recordings keep their results.

    A job that has already finished is a ConfigError on "status" (a 409): cancelling it would change nothing.
    """
    _check_may_change(job, by)
    with transaction.atomic():
        job = mark_cancelled(job, error=ConfigError)
        JobRecording.objects.filter(job=job, status=JobRecording.Status.PENDING).update(
            status=JobRecording.Status.CANCELLED
        )
        from inference.tasks import queue_embedding_index

        # Its recordings still queued will not run: the run's index, if the job deferred it, is built now.
        transaction.on_commit(lambda: queue_embedding_index(job.model_run_id), robust=True)
    return job


def retry_failed(job: InferenceJob, *, by=None, sync: bool = False) -> InferenceJob:
    """Run again the recordings of a finished job that failed or were cancelled.

    A job still pending or running, or one with nothing to run again, is a ConfigError on "status" (a 409).
    """
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
            raise ConfigError(
                {
                    "status": f"the job is {job.status} and none of its recordings failed or was cancelled: "
                    "nothing to retry"
                }
            )
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
