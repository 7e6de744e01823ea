"""Applying outside a transaction, as a worker does: a thread reads ahead and two connections write at once."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers import applying, services, storage, training
from classifiers.applying import run_apply_job
from classifiers.models import ClassifierJob
from echoroo.models import ClipPrediction, ClipPredictionTag
from tests.classifiers.conftest import CLIPS

# Committed rows: the reading and writing threads use connections of their own, which see nothing uncommitted.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def job(classifier, user, monkeypatch):
    monkeypatch.setattr(services, "enqueue_apply", lambda *args: None)
    return services.start_apply(classifier, by=user)


def stored(classifier) -> dict[int, float]:
    return dict(
        ClipPredictionTag.objects.filter(clip_prediction__model_run=classifier.model_run).values_list(
            "clip_prediction__clip_id", "score"
        )
    )


def test_parallel_writers_store_exactly_one_prediction_per_embedding(job, classifier, planted):
    assert not applying.in_transaction()  # so the threads are used
    assert run_apply_job(job.pk, batch_size=150, writers=2) == ClassifierJob.Status.COMPLETED
    job.refresh_from_db()
    assert (job.processed_clips, job.last_clip_id, job.progress) == (CLIPS, planted.clip_ids[-1], 100.0)
    assert ClipPrediction.objects.filter(model_run=classifier.model_run).count() == CLIPS
    scores = stored(classifier)
    expected = training.sigmoid_scores(planted.vectors, classifier.weights, classifier.intercept)
    np.testing.assert_allclose([scores[int(i)] for i in planted.clip_ids], expected, atol=1e-6)


def test_a_paused_job_resumes_after_the_batches_it_wrote(job, classifier, planted):
    assert run_apply_job(job.pk, batch_size=200, writers=2, time_limit_s=0) == "paused"
    job.refresh_from_db()
    # Every batch handed to a writer was written before the task returned, and counted in order.
    assert job.processed_clips == len(stored(classifier)) and job.processed_clips % 200 == 0
    assert job.last_clip_id == planted.clip_ids[job.processed_clips - 1]
    assert run_apply_job(job.pk, batch_size=200, writers=2) == ClassifierJob.Status.COMPLETED
    assert len(stored(classifier)) == CLIPS


def test_a_failed_write_fails_the_job_with_its_error(job, monkeypatch):
    calls = []

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return store_scores(*args)

    store_scores = storage.store_scores
    monkeypatch.setattr(storage, "store_scores", failing)
    assert run_apply_job(job.pk, batch_size=200, writers=2) == ClassifierJob.Status.FAILED
    job.refresh_from_db()
    assert job.error_message == "RuntimeError: disk full"
    # Counted in order up to the failed batch: the third store to start is the third batch, or with two writers
    # taking batches 3 and 4 at once, the fourth; nothing after it is counted.
    assert job.processed_clips in (400, 600)
