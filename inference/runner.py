"""The work of one task: run a job's model over one recording and store the results, exactly once."""

from __future__ import annotations

import logging
import os
import socket
import time

import numpy as np
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Count
from django.utils import timezone

from echoroo.audio import AudioError, ImportedFile, read_info
from inference.config import InferenceConfig
from inference.feeding import analyze_many
from inference.models import InferenceJob, JobRecording
from inference.pipeline import BatchResult, Cancelled, DetectionMerger, PipelineOptions, analyze
from inference.raw_output import read_outputs, reusable_output
from inference.runtimes import ModelRuntime, build_runtime, is_loaded
from inference.runtimes.week import ALL_YEAR, birdnet_week
from inference.selection import WindowOutputs, storage_floor
from inference.storage import RecordingResults, store_recording_results

logger = logging.getLogger(__name__)

# How often a running task reports progress and looks for a cancel, in seconds.
PROGRESS_EVERY_S = 1.0
# How long a task waits for the database to come back (a restart, a fail-over) before giving up;
# a task that gives up is not acknowledged, so the queue hands it out again later.
DATABASE_OUTAGE_WAIT_S = 120.0

DATABASE_GONE = (OperationalError, InterfaceError)


def _with_database(action, *args, **kwargs):
    """Run a database action, waiting out a database restart: reconnect and try again, with backoff."""
    waited, pause = 0.0, 0.5
    while True:
        try:
            return action(*args, **kwargs)
        except DATABASE_GONE:
            if waited >= DATABASE_OUTAGE_WAIT_S or connection.in_atomic_block:
                raise
            logger.warning("the database is unreachable; retrying in %.1f s", pause)
            connection.close()
            time.sleep(pause)
            waited += pause
            pause = min(pause * 2, 10.0)


# What a job shows while a worker loads its model, the first time in its process (and makes the model's derived
# files if `manage.py prepare_models` has not): seconds at 0 % otherwise unexplained.
PREPARING_THE_MODEL = "preparing the model"


def load_runtime(model_name: str, config: InferenceConfig, *, job_id: int | None = None) -> ModelRuntime:
    """The model of a job, built from the settings and its config, loaded once per worker process and kept.

    While a process loads it, the job `job_id` says so (InferenceJob.activity)."""
    if job_id is None or is_loaded(model_name, settings, config):
        return build_runtime(model_name, settings, config)
    unfinished = InferenceJob.objects.filter(pk=job_id).exclude(status__in=InferenceJob.FINISHED)
    _with_database(unfinished.update, activity=PREPARING_THE_MODEL)
    try:
        return build_runtime(model_name, settings, config)
    finally:
        _with_database(InferenceJob.objects.filter(pk=job_id, activity=PREPARING_THE_MODEL).update, activity="")


def allowed_labels(runtime: ModelRuntime, config: InferenceConfig, job_recording: JobRecording) -> frozenset | None:
    """The labels a recording may get: a custom list, else the model's species filter at its place and week."""
    if config.custom_species_list:
        return runtime.label_indices(config.custom_species_list)
    if not config.use_metadata_filter:
        return None
    location = recording_location(job_recording.recording, config)
    if location is None:
        return None
    return runtime.species_filter(
        *location, recording_week(job_recording.recording, config), threshold=config.species_filter_threshold
    )


def recording_location(recording, config: InferenceConfig) -> tuple[float, float] | None:
    """The job's override, else the recording's own place, else its site's, else its dataset's default."""
    for place in (config, recording, recording.site, recording.dataset):
        if place is not None and place.latitude is not None and place.longitude is not None:
            return place.latitude, place.longitude
    return None


def recording_week(recording, config: InferenceConfig) -> int:
    if config.week is not None:
        return config.week
    if recording.recorded_at is not None:
        return birdnet_week(timezone.localtime(recording.recorded_at).date())
    return ALL_YEAR


def run_job_recording(job_id: int, recording_id: int) -> str:
    """Process one recording of a job; returns its final state. Safe to run twice.

    When the model's output on the recording is stored at the job's window layout, down to what the
    job's threshold and sensitivity need, the job selects from it: no audio decoded, no model call.
    """
    job_recording = _with_database(_claim, job_id, recording_id)
    if job_recording is None:
        return "skipped"
    job = job_recording.job
    timings: dict[str, float] = {}
    reused = False
    try:
        config = job.settings
        runtime = load_runtime(job.model_run.name, config, job_id=job_id)
        options = PipelineOptions(
            config=config,
            allowed_labels=allowed_labels(runtime, config, job_recording),
            floor_logit=storage_floor(settings.PREDICTION_FLOOR),
        )
        began = time.perf_counter()
        results = _with_database(_from_stored_output, runtime, job_recording, options)
        reused = results is not None
        if results is None:
            results = _analyse(runtime, job_recording, options)
        analysed = time.perf_counter()
        _with_database(store_recording_results, recording_id, job.model_run_id, job.pk, results, config=config)
        timings = {"inference_s": analysed - began, "storage_s": time.perf_counter() - analysed}
        state = JobRecording.Status.DONE
        error = ""
    except Cancelled:
        state, error = JobRecording.Status.CANCELLED, ""
    except DATABASE_GONE:
        # Not the recording's fault: the task fails unacknowledged and is handed out again.
        raise
    except (AudioError, FileNotFoundError, PermissionError, IsADirectoryError) as failure:
        state, error = JobRecording.Status.FAILED, str(failure)
    except Exception as failure:  # one bad recording fails that recording, never the job
        logger.exception("job %s, recording %s failed", job_id, recording_id)
        state, error = JobRecording.Status.FAILED, f"{type(failure).__name__}: {failure}"
    except KeyboardInterrupt:  # Ctrl-C in `infer --sync`: leave the recording retryable, not "running"
        _finish_recording(job_recording, JobRecording.Status.CANCELLED, "interrupted")
        raise
    _with_database(_finish_recording, job_recording, state, error, timings, reused=reused and state == "done")
    return state


def _from_stored_output(
    runtime: ModelRuntime, job_recording: JobRecording, options: PipelineOptions
) -> RecordingResults | None:
    """The job's selection from the model's stored output on this recording; None when it must run the model."""
    config = options.config
    selection = options.selection(runtime)
    stored = reusable_output(
        job_recording.recording,
        job_recording.job.model_run_id,
        overlap=config.overlap,
        min_logit=selection.min_logit,
        needs_embeddings=config.store_embeddings,
    )
    if stored is None:
        return None
    try:
        starts, ends, outputs = read_outputs(
            stored, window_s=runtime.window_s, sample_rate=runtime.sample_rate, label_index=runtime.label_index
        )
    except LookupError as why:
        logger.warning("job %s: stored output not used, running the model: %s", job_recording.job_id, why)
        return None
    batch = BatchResult(starts_s=starts, ends_s=ends, embeddings=None, hits=selection.hits(outputs))
    merger = DetectionMerger()
    detections = merger.add(batch) + merger.finish()
    return RecordingResults(
        starts_s=starts,
        ends_s=ends,
        hits=batch.hits,
        detections=detections,
        label_names=runtime.label_names,
    )


def _claim(job_id: int, recording_id: int) -> JobRecording | None:
    with transaction.atomic():
        job_recording = (
            JobRecording.objects.select_for_update(of=("self",))
            .select_related("job__model_run", "recording__site", "recording__dataset")
            .filter(job_id=job_id, recording_id=recording_id)
            .first()
        )
        if job_recording is None or job_recording.status in (
            JobRecording.Status.DONE,
            JobRecording.Status.FAILED,
            JobRecording.Status.CANCELLED,
        ):
            return None
        if job_recording.job.status == InferenceJob.Status.CANCELLED:
            job_recording.status = JobRecording.Status.CANCELLED
            job_recording.save(update_fields=["status"])
            return None
        job_recording.status = JobRecording.Status.RUNNING
        job_recording.attempts += 1
        job_recording.processed_clips = 0
        job_recording.started_at = timezone.now()
        job_recording.worker = f"{socket.gethostname()}:{os.getpid()}"
        job_recording.save(update_fields=["status", "attempts", "processed_clips", "started_at", "worker"])
    return job_recording


class _Collector:
    """One recording's results as its batches arrive: windows, hits, raw output, embeddings, merged detections."""

    def __init__(self, runtime: ModelRuntime, options: PipelineOptions) -> None:
        self.runtime, self.options = runtime, options
        self.starts, self.ends, self.hits, self.embeddings, self.outputs = [], [], [], [], []
        self.merger = DetectionMerger()
        self.detections = []
        self.processed = 0

    def add(self, batch: BatchResult) -> None:
        self.starts.append(batch.starts_s)
        self.ends.append(batch.ends_s)
        self.hits.extend(batch.hits)
        self.outputs.append(batch.outputs)
        if batch.embeddings is not None:
            self.embeddings.append(batch.embeddings.astype(np.float16))
        self.detections.extend(self.merger.add(batch))
        self.processed += len(batch)

    def results(self) -> RecordingResults:
        self.detections.extend(self.merger.finish())
        return RecordingResults(
            starts_s=np.concatenate(self.starts) if self.starts else np.zeros(0),
            ends_s=np.concatenate(self.ends) if self.ends else np.zeros(0),
            hits=self.hits,
            detections=self.detections,
            label_names=self.runtime.label_names,
            outputs=WindowOutputs.concatenate(self.outputs),
            floor_logit=self.options.floor_logit,
            embeddings=np.concatenate(self.embeddings) if self.embeddings else None,
        )


def _cancel_check(job_id: int):
    def should_stop() -> bool:
        try:
            return InferenceJob.objects.filter(pk=job_id, status=InferenceJob.Status.CANCELLED).exists()
        except DATABASE_GONE:  # a database restart is no cancel; the next check will see
            connection.close()
            return False

    return should_stop


def _check_has_audio(path) -> None:
    if read_info(path).frames == 0:
        raise AudioError(f"{path.name}: no audio samples (the file changed since it was imported?)")


def _analyse(runtime: ModelRuntime, job_recording: JobRecording, options: PipelineOptions) -> RecordingResults:
    collector = _Collector(runtime, options)
    should_stop = _cancel_check(job_recording.job_id)
    last_report = time.monotonic()
    path = job_recording.recording.absolute_path
    _check_has_audio(path)
    # Hashed as it is decoded: a file changed since its import fails its recording when the stream ends.
    for batch in analyze(runtime, ImportedFile(path, job_recording.recording.sha256), options):
        collector.add(batch)
        if time.monotonic() - last_report >= PROGRESS_EVERY_S:
            last_report = time.monotonic()
            _report(job_recording, collector.processed)
            if should_stop():
                raise Cancelled()
    # No last progress report: finishing the recording sets its figures anyway, one write fewer.
    return collector.results()


def run_job_recordings(job_id: int, recording_ids: list[int]) -> list[str]:
    """Process a task's recordings: one after the other, or all at once where the model runs best on large batches
    (a GPU: see inference.feeding), each recording still stored and finished on its own."""
    try:
        job = _with_database(InferenceJob.objects.select_related("model_run").get, pk=job_id)
        runtime = load_runtime(job.model_run.name, job.settings, job_id=job_id)
    except DATABASE_GONE:
        raise
    except Exception:  # each recording then fails with the reason, on its own
        runtime = None
    if runtime is None or runtime.preferred_batch_size is None or len(recording_ids) < 2:
        return [run_job_recording(job_id, recording_id) for recording_id in recording_ids]
    return _run_together(job, runtime, recording_ids)


def _run_together(job: InferenceJob, runtime: ModelRuntime, recording_ids: list[int]) -> list[str]:
    config = job.settings
    states: dict[int, str] = {}
    claimed: list[tuple[JobRecording, PipelineOptions]] = []
    for recording_id in recording_ids:
        job_recording = _with_database(_claim, job.pk, recording_id)
        if job_recording is None:
            states[recording_id] = "skipped"
            continue
        try:
            options = PipelineOptions(
                config=config,
                allowed_labels=allowed_labels(runtime, config, job_recording),
                floor_logit=storage_floor(settings.PREDICTION_FLOOR),
            )
            stored = _with_database(_from_stored_output, runtime, job_recording, options)
            if stored is not None:
                states[recording_id] = _store_and_finish(job_recording, stored, {}, reused=True)
                continue
            _check_has_audio(job_recording.recording.absolute_path)
        except DATABASE_GONE:
            raise
        except Exception as failure:
            states[recording_id] = _fail(job_recording, failure)
            continue
        claimed.append((job_recording, options))
    if not claimed:
        return [states[recording_id] for recording_id in recording_ids]
    collectors = [_Collector(runtime, options) for _, options in claimed]
    began, last_report = time.perf_counter(), time.monotonic()
    try:
        events = analyze_many(
            runtime,
            [ImportedFile(jr.recording.absolute_path, jr.recording.sha256) for jr, _ in claimed],
            [options for _, options in claimed],
            batch_size=runtime.preferred_batch_size,
            workers=settings.FEED_WORKERS,
            should_stop=_every(PROGRESS_EVERY_S, _cancel_check(job.pk)),
        )
        for event in events:
            job_recording = claimed[event.index][0]
            if event.batch is not None:
                collectors[event.index].add(event.batch)
            elif event.finished:
                timings = {"inference_s": time.perf_counter() - began}
                results = collectors[event.index].results()
                states[job_recording.recording_id] = _store_and_finish(job_recording, results, timings)
            else:
                _with_database(_finish_recording, job_recording, JobRecording.Status.FAILED, event.error)
                states[job_recording.recording_id] = JobRecording.Status.FAILED
            if time.monotonic() - last_report >= PROGRESS_EVERY_S:
                last_report = time.monotonic()
                for (running, _), collector in zip(claimed, collectors, strict=True):
                    if running.recording_id not in states:
                        _report(running, collector.processed)
    except Cancelled:
        for job_recording, _ in claimed:
            if job_recording.recording_id not in states:
                _with_database(_finish_recording, job_recording, JobRecording.Status.CANCELLED, "")
                states[job_recording.recording_id] = JobRecording.Status.CANCELLED
    except DATABASE_GONE:
        raise
    except Exception as failure:  # the model or the producers broke: the recordings not yet done fail, with why
        logger.exception("job %s: recordings analysed together failed", job.pk)
        for job_recording, _ in claimed:
            if job_recording.recording_id not in states:
                states[job_recording.recording_id] = _fail(job_recording, failure)
    return [states[recording_id] for recording_id in recording_ids]


def _store_and_finish(job_recording: JobRecording, results: RecordingResults, timings: dict, *, reused=False) -> str:
    job = job_recording.job
    try:
        stored = time.perf_counter()
        _with_database(
            store_recording_results, job_recording.recording_id, job.model_run_id, job.pk, results, config=job.settings
        )
        timings = {**timings, "storage_s": time.perf_counter() - stored}
    except DATABASE_GONE:
        raise
    except Exception as failure:
        return _fail(job_recording, failure)
    _with_database(_finish_recording, job_recording, JobRecording.Status.DONE, "", timings, reused=reused)
    return JobRecording.Status.DONE


def _fail(job_recording: JobRecording, failure: Exception) -> str:
    if isinstance(failure, AudioError | FileNotFoundError | PermissionError | IsADirectoryError):
        error = str(failure)
    else:
        logger.exception("job %s, recording %s failed", job_recording.job_id, job_recording.recording_id)
        error = f"{type(failure).__name__}: {failure}"
    _with_database(_finish_recording, job_recording, JobRecording.Status.FAILED, error)
    return JobRecording.Status.FAILED


def _every(seconds: float, check):
    """`check`, asked at most once every `seconds` (False in between)."""
    last = [time.monotonic()]

    def throttled() -> bool:
        if time.monotonic() - last[0] < seconds:
            return False
        last[0] = time.monotonic()
        return check()

    return throttled


def _report(job_recording: JobRecording, processed: int) -> None:
    # The header's length sets total_clips; never report more than that.
    processed = min(processed, job_recording.total_clips)
    try:
        JobRecording.objects.filter(pk=job_recording.pk).update(processed_clips=processed)
        _update_job_progress(job_recording.job_id)
    except DATABASE_GONE:  # progress is best effort while the database restarts
        connection.close()


def _update_job_progress(job_id: int) -> None:
    """Recompute the job's figures from its recordings: exact even when a task ran twice. The windows of a failed
    or cancelled recording are not counted, however far it got: nothing of it is kept."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE inference_inferencejob j SET processed_clips = s.processed, "
            " progress = CASE WHEN j.total_clips > 0 THEN LEAST(100.0, 100.0 * s.processed / j.total_clips) "
            "            ELSE j.progress END "
            "FROM (SELECT COALESCE(SUM(processed_clips), 0) AS processed FROM inference_jobrecording "
            "      WHERE job_id = %s AND status NOT IN (%s, %s)) s WHERE j.id = %s",
            [job_id, JobRecording.Status.FAILED, JobRecording.Status.CANCELLED, job_id],
        )


def _finish_recording(
    job_recording: JobRecording, state: str, error: str, timings: dict | None = None, *, reused: bool = False
) -> None:
    fields = {
        "status": state,
        "error_message": error[:2000],
        "finished_at": timezone.now(),
        "reused": reused,
        **(timings or {}),
    }
    if state == JobRecording.Status.DONE:
        fields["processed_clips"] = job_recording.total_clips
    JobRecording.objects.filter(pk=job_recording.pk).update(**fields)
    _update_job_progress(job_recording.job_id)
    finish_job_if_done(job_recording.job_id)


def finish_job_if_done(job_id: int) -> None:
    """When no recording is left to do, the job is completed, or failed if every recording failed."""
    with transaction.atomic():
        job = InferenceJob.objects.select_for_update().get(pk=job_id)
        if job.is_finished and job.status != InferenceJob.Status.CANCELLED:
            return
        states = dict(
            JobRecording.objects.filter(job_id=job_id)
            .order_by()
            .values("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        if states.get(JobRecording.Status.PENDING) or states.get(JobRecording.Status.RUNNING):
            return
        # Nothing left to run: the run's HNSW index, if the job's load deferred it, is built again,
        # and the job's merged detections get their embeddings.
        from embeddings.tasks import queue_job_detection_embeddings  # both import this module
        from inference.tasks import queue_embedding_index

        transaction.on_commit(lambda: queue_embedding_index(job.model_run_id), robust=True)
        transaction.on_commit(lambda: queue_job_detection_embeddings(job_id), robust=True)
        if job.status == InferenceJob.Status.CANCELLED:
            if not job.completed_at:
                job.completed_at = timezone.now()
                job.save(update_fields=["completed_at"])
            return
        failed = states.get(JobRecording.Status.FAILED, 0)
        total = sum(states.values())
        job.completed_at = timezone.now()
        if total and failed == total:
            job.status = InferenceJob.Status.FAILED
        else:
            # Its windows stay as counted: those of its recordings that failed are not processed ones.
            job.status = InferenceJob.Status.COMPLETED
        job.error_message = _failure_summary(job_id, failed, total) if failed else ""
        job.save(update_fields=["status", "completed_at", "error_message"])


def _failure_summary(job_id: int, failed: int, total: int) -> str:
    first = (
        JobRecording.objects.filter(job_id=job_id, status=JobRecording.Status.FAILED)
        .select_related("recording")
        .order_by("id")
        .first()
    )
    return f"{failed} of {total} recordings failed; first: {first.recording.path}: {first.error_message}"
