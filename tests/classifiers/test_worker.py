"""An apply job queued as the API queues it and run by a real django-q2 cluster in another process."""

from __future__ import annotations

import pytest

from classifiers import services
from classifiers.models import ClassifierJob
from echoroo.models import ClipPrediction
from tests.classifiers.conftest import CLIPS
from tests.inference.test_workers import clusters, wait_for  # noqa: F401 (clusters is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_worker_applies_a_queued_classifier(classifier, user, clusters):  # noqa: F811
    job = services.start_apply(classifier, by=user)
    assert job.status == ClassifierJob.Status.PENDING
    cluster = clusters(workers=1)

    def finished():
        job.refresh_from_db()
        return job.is_finished

    wait_for(finished, 60, "the apply job to finish")
    # Done with it: a graceful stop of the cluster takes half a minute.
    cluster.kill()
    assert job.status == ClassifierJob.Status.COMPLETED, job.error_message
    assert job.processed_clips == CLIPS
    assert ClipPrediction.objects.filter(model_run=classifier.model_run).count() == CLIPS
