"""The work of an apply job: score every embedding of the source run and store one prediction per embedding.

Batches are read in clip id order (embeddings.vectors, a thread reading ahead), scored with
numpy, and written by a few writer threads, one transaction per batch (classifiers.storage): a
ClipPrediction per clip under the classifier's run and its one tag, key "species" and value the
label, so the filters, pages and exports made for model predictions work on these unchanged.
The job's resume point moves past a batch once it and every batch before it are written; a
batch written twice (after a crash, or by a resumed task) adds nothing. No audio is decoded.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future
from contextlib import closing

import numpy as np
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from classifiers import storage
from classifiers.models import Classifier, ClassifierJob
from classifiers.threads import Writers
from classifiers.training import sigmoid_scores
from echoroo.models import SPECIES, Tag
from embeddings.read_ahead import in_transaction
from embeddings.vectors import count_embeddings, embedding_batches

logger = logging.getLogger(__name__)

# Rows per batch: large enough that a statement's overhead is small, small enough to keep memory low
# (5,000 x 1,024-d is 10 MB of float16) and to check for a cancel every fraction of a second.
BATCH_SIZE = 5000
# Batches a thread reads ahead on its own connection while the batches before are scored and written.
READ_AHEAD = 2
# Connections writing batches at once. Storing is most of the time (11 indexes and 4 foreign keys for
# each prediction and its tag); measured on 2 busy cores, two writers store about 1.6 times what one does.
WRITERS = 2
# The advisory lock space of apply jobs (pg_try_advisory_lock(JOB_LOCKS, job id)): one task per job at a time.
JOB_LOCKS = 8_270_001

DATABASE_GONE = (OperationalError, InterfaceError)


def species_tag(label: str) -> Tag:
    """The tag a classifier's predictions carry: key "species", value the label."""
    return Tag.objects.get_or_create(key=SPECIES, value=label)[0]


def run_apply_job(
    job_id: int, *, batch_size: int = BATCH_SIZE, time_limit_s: float | None = None, writers: int = WRITERS
) -> str:
    """Score a job's embeddings from where it stands; returns its state, or "paused" when `time_limit_s` ran out.

    A paused job is still running: calling this again (the task queues itself again) goes on from
    its resume point. A second call while one runs (a task delivered twice) returns "skipped".
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [JOB_LOCKS, job_id])
        if not cursor.fetchone()[0]:
            return "skipped"
    try:
        job = _claim(job_id)
        if job is None:
            return "skipped"
        return _apply(job, batch_size, time_limit_s, writers)
    except DATABASE_GONE:
        # Not the job's fault: the task fails unacknowledged, is handed out again and resumes.
        raise
    except Exception as failure:
        logger.exception("classifier job %s failed", job_id)
        return _finish(job_id, ClassifierJob.Status.FAILED, f"{type(failure).__name__}: {failure}")
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [JOB_LOCKS, job_id])
        except DATABASE_GONE:
            pass  # the lock went with the session


def _apply(job: ClassifierJob, batch_size: int, time_limit_s: float | None, writers: int) -> str:
    classifier: Classifier = job.classifier
    coef, intercept = classifier.weights, classifier.intercept
    tag_id = species_tag(classifier.label).id
    # Other connections would write outside the caller's transaction, and could not see its rows.
    writers = 0 if in_transaction() else writers
    began = time.monotonic()
    # Batches handed to the writers, oldest first: (its write, its last clip id, its size).
    in_flight: deque[tuple[Future, int, int]] = deque()
    stopped = None
    batches = embedding_batches(
        "clip", classifier.source_id, after_id=job.last_clip_id, batch_size=batch_size, read_ahead=READ_AHEAD
    )
    with Writers(writers) as pool, closing(batches):
        for batch in batches:
            if batch.vectors.shape[1] != len(coef):
                raise ValueError(
                    f"the source run's embeddings have {batch.vectors.shape[1]} dimensions and the classifier "
                    f"{len(coef)}: train it again on this run"
                )
            scores = sigmoid_scores(batch.vectors, coef, intercept)
            write = pool.submit(store_batch, classifier.model_run_id, tag_id, batch.ids, scores)
            in_flight.append((write, int(batch.ids[-1]), len(batch)))
            # The resume point moves past the batches written, in order; at most `writers` wait.
            while in_flight and (len(in_flight) > writers or in_flight[0][0].done()):
                if stopped := _advance(job.pk, *in_flight.popleft()):
                    break
            if stopped:
                break
            if time_limit_s is not None and time.monotonic() - began >= time_limit_s:
                stopped = "paused"
                break
    # Every write has finished here; those of a cancelled job stay, without moving its resume point.
    while in_flight and stopped in (None, "paused"):
        stopped = _advance(job.pk, *in_flight.popleft()) or stopped
    return stopped or _finish(job.pk, ClassifierJob.Status.COMPLETED)


def store_batch(model_run_id: int, tag_id: int, clip_ids: np.ndarray, scores: np.ndarray) -> None:
    """One batch's predictions, in a transaction of their own (on the writer's own connection)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Losing the last commits in a crash only means writing them again: the resume point comes after.
            cursor.execute("SET LOCAL synchronous_commit = off")
        storage.store_scores(model_run_id, tag_id, clip_ids, scores)


def _advance(job_id: int, write: Future, last_clip_id: int, size: int) -> str | None:
    """Move the job's resume point past a written batch; the job's status if it is no longer running."""
    write.result()  # the write's error, if it failed
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE classifiers_classifierjob SET last_clip_id = %s, processed_clips = processed_clips + %s, "
            " total_clips = GREATEST(total_clips, processed_clips + %s), "
            " progress = LEAST(100.0, 100.0 * (processed_clips + %s) / GREATEST(total_clips, processed_clips + %s)) "
            "WHERE id = %s AND status = 'running'",
            [last_clip_id, size, size, size, size, job_id],
        )
        if cursor.rowcount:
            return None
    return ClassifierJob.objects.filter(pk=job_id).values_list("status", flat=True).first() or "skipped"


def _claim(job_id: int) -> ClassifierJob | None:
    """The job, running: a pending one is started (its embeddings counted), a running one resumed."""
    with transaction.atomic():
        job = (
            ClassifierJob.objects.select_for_update(of=("self",)).select_related("classifier").filter(pk=job_id).first()
        )
        if job is None or job.is_finished:
            return None
        if job.status == ClassifierJob.Status.PENDING:
            job.status = ClassifierJob.Status.RUNNING
            job.started_at = timezone.now()
            job.total_clips = count_embeddings("clip", job.classifier.source_id)
            job.save(update_fields=["status", "started_at", "total_clips"])
    return job


def _finish(job_id: int, status: str, error: str = "") -> str:
    with transaction.atomic():
        job = ClassifierJob.objects.select_for_update().get(pk=job_id)
        if job.status != ClassifierJob.Status.RUNNING:
            return job.status
        job.status = status
        job.error_message = error[:2000]
        job.completed_at = timezone.now()
        fields = ["status", "error_message", "completed_at"]
        if status == ClassifierJob.Status.COMPLETED:
            # Embeddings added after the count was taken are scored too; the figures say what was done.
            job.total_clips = job.processed_clips
            job.progress = 100.0
            fields += ["total_clips", "progress"]
        job.save(update_fields=fields)
    if status == ClassifierJob.Status.COMPLETED:
        with connection.cursor() as cursor:
            # Fresh statistics after a bulk load, or the planner walks every prediction to find the few
            # nearest 0.5 (measured: 0.5 s instead of 1 ms on 200,000); autovacuum would come later.
            cursor.execute("ANALYZE echoroo_clipprediction, echoroo_clippredictiontag")
    return status
