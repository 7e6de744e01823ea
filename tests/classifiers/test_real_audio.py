"""On BirdNET embeddings of real field recordings: a label learned from a few clips, applied to every window."""

from __future__ import annotations

import pytest

from classifiers import services
from echoroo.models import Clip, ClipPrediction, ClipPredictionTag
from embeddings.models import ClipEmbedding
from inference import services as inference

pytestmark = pytest.mark.django_db

DRUM = "Ruffed grouse drumming"


@pytest.fixture
def birdnet_run(field_dataset):
    """A BirdNET job over 1min.wav and rugr_drum.wav, run here: windows every second, embeddings stored."""
    job = inference.create_job(model_name="birdnet", dataset=field_dataset, config={"overlap": 2.0})
    job = inference.start_job(job, sync=True)
    assert job.status == "completed"
    return job.model_run


def clip_uuids_of(recording_path: str, run) -> list[str]:
    return list(
        Clip.objects.filter(recording__path__endswith=recording_path, embeddings__model_run=run)
        .order_by("start_time")
        .values_list("uuid", flat=True)
    )


def test_a_label_learned_from_real_clips_is_applied_to_every_window(birdnet_run, user, api_client):
    drums, field = clip_uuids_of("rugr_drum.wav", birdnet_run), clip_uuids_of("1min.wav", birdnet_run)
    assert len(drums) >= 6 and len(field) >= 50
    # The drumming windows are the positives; every other window of the minute of birdsong a negative.
    services.label_clips(drums, label=DRUM, polarity="positive", by=user)
    services.label_clips(field[::2], label=DRUM, polarity="negative", by=user)

    classifier = services.train_classifier(label=DRUM, by=user)
    assert classifier.source == birdnet_run and classifier.dimension == 1024
    assert classifier.metrics["n_positive"] == len(drums)
    # Positives of one recording against negatives of another: no held-out figure can tell the drumming from
    # the recording, so there is none (the scores below are the check here).
    assert "roc_auc" not in classifier.metrics
    assert "positives from 1 and negatives from 1" in classifier.metrics["not_measured"]

    job = services.start_apply(classifier, by=user, sync=True)
    embeddings = ClipEmbedding.objects.filter(model_run=birdnet_run).count()
    assert job.status == "completed" and job.processed_clips == embeddings
    assert ClipPrediction.objects.filter(model_run=classifier.model_run).count() == embeddings
    scores = dict(
        ClipPredictionTag.objects.filter(clip_prediction__model_run=classifier.model_run).values_list(
            "clip_prediction__clip__uuid", "score"
        )
    )
    # The unlabelled minute windows score low, the drumming high.
    assert min(scores[u] for u in drums) > 0.5
    assert sum(scores[u] > 0.5 for u in field[1::2]) <= 2

    response = api_client.get(
        "/api/v1/clip-predictions/", {"species": DRUM, "min_score": 0.5, "model_run": classifier.model_run.uuid}
    )
    assert {row["clip"]["uuid"] for row in response.json()["results"]} >= {str(u) for u in drums}
