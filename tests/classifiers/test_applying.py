"""Applying: one prediction per embedding, under the classifier's run, tagged species = the label; resumable."""

from __future__ import annotations

import numpy as np
import pytest
from django.utils import timezone
from django_q.models import OrmQ

from classifiers import applying, services, tasks, training
from classifiers.applying import run_apply_job
from classifiers.errors import ClassifierError
from classifiers.models import ClassifierJob
from echoroo.models import SPECIES, ClipPrediction, ClipPredictionTag
from tests.classifiers.conftest import CLIPS, LABEL

pytestmark = pytest.mark.django_db


def stored_scores(classifier) -> dict[int, float]:
    return dict(
        ClipPredictionTag.objects.filter(clip_prediction__model_run=classifier.model_run).values_list(
            "clip_prediction__clip_id", "score"
        )
    )


def counts(classifier) -> tuple[int, int]:
    run = classifier.model_run
    return (
        ClipPrediction.objects.filter(model_run=run).count(),
        ClipPredictionTag.objects.filter(clip_prediction__model_run=run).count(),
    )


def test_applying_stores_exactly_one_prediction_per_embedding(classifier, planted, user):
    job = services.start_apply(classifier, by=user, sync=True)
    assert job.status == ClassifierJob.Status.COMPLETED
    assert (job.processed_clips, job.total_clips, job.progress) == (CLIPS, CLIPS, 100.0)
    assert counts(classifier) == (CLIPS, CLIPS)
    tags = ClipPredictionTag.objects.filter(clip_prediction__model_run=classifier.model_run)
    assert set(tags.values_list("tag__key", "tag__value")) == {(SPECIES, LABEL)}
    scores = stored_scores(classifier)
    expected = training.sigmoid_scores(planted.vectors, classifier.weights, classifier.intercept)
    np.testing.assert_allclose([scores[int(i)] for i in planted.clip_ids], expected, atol=1e-6)
    # Rows copied in binary read back as the ORM writes them.
    predictions = ClipPrediction.objects.filter(model_run=classifier.model_run)
    assert {p.uuid.version for p in predictions} == {4} and len({p.uuid for p in predictions}) == CLIPS
    assert all(abs((p.created_at - timezone.now()).total_seconds()) < 60 for p in predictions)


def test_applying_again_adds_no_rows_and_keeps_the_scores(classifier, user):
    services.start_apply(classifier, by=user, sync=True)
    before, uuids = stored_scores(classifier), set(ClipPrediction.objects.values_list("uuid", flat=True))
    services.start_apply(classifier, by=user, sync=True)
    assert counts(classifier) == (CLIPS, CLIPS)
    assert stored_scores(classifier) == before
    assert set(ClipPrediction.objects.values_list("uuid", flat=True)) == uuids


def test_a_job_out_of_time_pauses_and_resumes_from_its_last_batch(classifier, planted, user):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "enqueue_apply", lambda *args: None)
        job = services.start_apply(classifier, by=user)
    assert run_apply_job(job.pk, batch_size=300, time_limit_s=0) == "paused"
    job.refresh_from_db()
    assert job.status == ClassifierJob.Status.RUNNING
    assert (job.processed_clips, job.total_clips, job.last_clip_id) == (300, CLIPS, planted.clip_ids[299])
    assert job.progress == pytest.approx(15.0)
    assert counts(classifier) == (300, 300)
    assert run_apply_job(job.pk, batch_size=300) == ClassifierJob.Status.COMPLETED
    assert counts(classifier) == (CLIPS, CLIPS)
    assert run_apply_job(job.pk) == "skipped"


def test_a_cancelled_job_stops_between_batches_and_keeps_what_it_stored(classifier, user):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "enqueue_apply", lambda *args: None)
        job = services.start_apply(classifier, by=user)
    run_apply_job(job.pk, batch_size=500, time_limit_s=0)
    job = services.cancel_apply(job, by=user)
    assert run_apply_job(job.pk, batch_size=500) == "skipped"
    job.refresh_from_db()
    assert job.status == ClassifierJob.Status.CANCELLED and job.completed_at is not None
    assert counts(classifier) == (500, 500)


def test_applying_after_a_cancelled_job_completes_the_rows_and_duplicates_none(classifier, planted, user):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "enqueue_apply", lambda *args: None)
        job = services.start_apply(classifier, by=user)
    run_apply_job(job.pk, batch_size=700, time_limit_s=0)
    services.cancel_apply(job, by=user)
    # Batches of 500 from the start: the first two are upserted over rows there, the rest copied in.
    assert run_apply_job(services.start_apply(classifier, by=user).pk, batch_size=500) == "completed"
    assert counts(classifier) == (CLIPS, CLIPS)
    expected = training.sigmoid_scores(planted.vectors, classifier.weights, classifier.intercept)
    scores = stored_scores(classifier)
    np.testing.assert_allclose([scores[int(i)] for i in planted.clip_ids], expected, atol=1e-6)


def test_a_second_task_on_a_running_job_is_skipped(classifier, user, monkeypatch):
    import psycopg
    from django.db import connection

    monkeypatch.setattr(services, "enqueue_apply", lambda *args: None)
    job = services.start_apply(classifier, by=user)
    params = {key: connection.get_connection_params()[key] for key in ("host", "user", "dbname")}
    with psycopg.connect(**params) as first_task:
        first_task.execute("SELECT pg_advisory_lock(%s, %s)", [applying.JOB_LOCKS, job.pk])
        assert run_apply_job(job.pk) == "skipped"
    assert counts(classifier) == (0, 0)
    assert run_apply_job(job.pk) == ClassifierJob.Status.COMPLETED


def test_starting_queues_a_task_that_a_worker_runs(classifier, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = services.start_apply(classifier, by=user)
    assert job.status == ClassifierJob.Status.PENDING
    assert OrmQ.objects.count() == 1
    assert tasks.apply_classifier(job.pk) == ClassifierJob.Status.COMPLETED
    assert counts(classifier) == (CLIPS, CLIPS)


def test_a_task_out_of_time_queues_its_next_part(classifier, user, settings, monkeypatch):
    queued = []
    monkeypatch.setattr(services, "enqueue_apply", lambda *args: queued.append(args))
    job = services.start_apply(classifier, by=user)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 0}
    assert tasks.apply_classifier(job.pk) == "paused"
    assert queued == [(job.pk, 2)]


def test_one_job_at_a_time_per_classifier(classifier, user, monkeypatch):
    monkeypatch.setattr(services, "enqueue_apply", lambda *args: None)
    services.start_apply(classifier, by=user)
    with pytest.raises(ClassifierError) as error:
        services.start_apply(classifier, by=user)
    assert "status" in error.value.errors


def test_the_prediction_filters_find_the_classifier_scores_unchanged(classifier, planted, user, api_client):
    services.start_apply(classifier, by=user, sync=True)
    response = api_client.get(
        "/api/v1/clip-predictions/",
        {"model_run": str(classifier.model_run.uuid), "species": LABEL, "min_score": 0.5, "page_size": 1000},
    )
    assert response.status_code == 200
    found = {row["clip"]["uuid"] for row in response.json()["results"]}
    expected = training.sigmoid_scores(planted.vectors, classifier.weights, classifier.intercept) >= 0.5
    assert found == set(planted.uuids(expected, CLIPS))
    # And they are the planted calls, nearly all of them.
    assert len(found - set(planted.uuids(planted.positive, CLIPS))) <= 0.05 * len(found)


def test_cancelling_a_finished_apply_job_is_a_conflict_and_changes_nothing(classifier, user):
    from classifiers.errors import ClassifierError

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "enqueue_apply", lambda *args: None)
        job = services.start_apply(classifier, by=user)
    assert run_apply_job(job.pk, batch_size=5000) == "completed"
    with pytest.raises(ClassifierError) as refused:
        services.cancel_apply(job, by=user)
    assert refused.value.conflict and "already completed" in refused.value.errors["status"]
    job.refresh_from_db()
    assert job.status == ClassifierJob.Status.COMPLETED
