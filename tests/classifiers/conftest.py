"""Fixtures of the classifier tests: a model run of generated embeddings with a planted cluster, and labels."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import pytest
from django.db import connection

from classifiers import services
from echoroo.models import Dataset, ModelRun, Recording
from embeddings.storage import store_embeddings

DIMENSION = 1024
CLIPS = 2000
# One clip in ten is a call of the planted kind.
POSITIVE_SHARE = 0.1
# The clips are dealt in turn to this many recordings: labels of consecutive clips span them all,
# as the held-out figures need labels from several recordings.
RECORDINGS = 20
LABEL = "Planted call"


@dataclass
class Planted:
    """Clips whose embeddings are noise, except the positives, which also lie along one direction."""

    run: ModelRun
    clip_ids: np.ndarray  # ascending
    clip_uuids: list[str]
    vectors: np.ndarray  # [CLIPS, DIMENSION] float16, as stored
    positive: np.ndarray  # [CLIPS] bool

    def uuids(self, mask: np.ndarray, count: int) -> list[str]:
        return [self.clip_uuids[i] for i in np.flatnonzero(mask)[:count]]


def make_clips(count: int, *, name: str = "planted", recordings: int = 1) -> tuple[np.ndarray, list[str]]:
    """`count` 3-second clips dealt in turn to `recordings` recordings (name-00.wav…), made in one statement;
    (ids, uuids) in id order."""
    dataset = Dataset.objects.create(name=f"{name} dataset")
    per_recording = -(-count // recordings)
    recording_ids = [
        Recording.objects.create(
            dataset=dataset,
            path=f"{name}-{i:02d}.wav" if recordings > 1 else f"{name}.wav",
            sha256=f"{i:064x}",
            duration=3.0 * per_recording,
            samplerate=48000,
            channels=1,
        ).id
        for i in range(recordings)
    ]
    uuids = [uuid.uuid4() for _ in range(count)]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO echoroo_clip (uuid, recording_id, start_time, end_time) "
            "SELECT u, (%s::bigint[])[(n - 1) %% %s + 1], 3 * ((n - 1) / %s), 3 * ((n - 1) / %s) + 3 "
            "FROM unnest(%s::uuid[]) WITH ORDINALITY AS t(u, n) RETURNING id, uuid",
            [recording_ids, recordings, recordings, recordings, uuids],
        )
        rows = sorted(cursor.fetchall())
    return np.array([row[0] for row in rows], dtype=np.int64), [str(row[1]) for row in rows]


def planted_vectors(count: int, dimension: int, positive: np.ndarray, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dimension)
    direction /= np.linalg.norm(direction)
    vectors = rng.normal(size=(count, dimension))
    # Six noise standard deviations along the direction: a cluster a linear model can find, not a trivial one.
    vectors[positive] += 6.0 * direction
    return vectors.astype(np.float16)


@pytest.fixture
def planted(db) -> Planted:
    clip_ids, clip_uuids = make_clips(CLIPS, recordings=RECORDINGS)
    positive = np.random.default_rng(5).random(CLIPS) < POSITIVE_SHARE
    vectors = planted_vectors(CLIPS, DIMENSION, positive)
    run = ModelRun.objects.create(name="synthetic", version="1", embedding_dimension=DIMENSION)
    assert store_embeddings("clip", clip_ids, run.id, vectors) == CLIPS
    return Planted(run, clip_ids, clip_uuids, vectors, positive)


@pytest.fixture
def labelled(planted, user) -> Planted:
    """40 planted positives and 120 negatives labelled by `user`."""
    services.label_clips(planted.uuids(planted.positive, 40), label=LABEL, polarity="positive", by=user)
    services.label_clips(planted.uuids(~planted.positive, 120), label=LABEL, polarity="negative", by=user)
    return planted


@pytest.fixture
def classifier(labelled, user):
    return services.train_classifier(label=LABEL, source=labelled.run, by=user)
