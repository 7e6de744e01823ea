"""A real django-q2 cluster embeds a job's detections when the job ends, and a box when it is queued."""

from __future__ import annotations

import pytest

from echoroo.models import SoundEvent
from embeddings.indexes import index_state
from embeddings.models import SoundEventEmbedding
from embeddings.tasks import queue_sound_event_embeddings
from inference import services
from inference.models import InferenceJob
from tests.inference.test_workers import clusters, finished, wait_for  # noqa: F401 (clusters is a fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_cluster_embeds_the_detections_of_a_job_and_a_box(field_recording, clusters):  # noqa: F811
    job = services.create_job(model_name="birdnet", recording=field_recording, config={"confidence_threshold": 0.25})
    job = services.start_job(job)
    clusters(workers=1)
    job = wait_for(lambda: finished(job), 180, "the job to finish")
    assert job.status == InferenceJob.Status.COMPLETED
    detections = set(SoundEvent.objects.filter(predictions__job=job).values_list("pk", flat=True))
    assert detections

    def embedded() -> set[int]:
        return set(SoundEventEmbedding.objects.values_list("sound_event_id", flat=True))

    wait_for(lambda: embedded() == detections, 120, "the detections' embeddings")
    box = SoundEvent.objects.create(recording=field_recording, start_time=12.0, end_time=12.5)
    queue_sound_event_embeddings([box.pk])
    wait_for(lambda: box.pk in embedded(), 120, "the box's embedding")
    assert index_state("sound_event", job.model_run_id) == "valid"
