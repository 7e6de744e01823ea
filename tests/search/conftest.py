"""A synthetic embedding space: 2,000 clips of 64-d clustered vectors, stored the app's own way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection

from echoroo.models import Clip, Dataset, ModelRun, Recording, Site
from embeddings.indexes import ensure_hnsw_index
from embeddings.storage import store_embeddings

DIMENSION = 64
RECORDINGS = 20
CLIPS_PER_RECORDING = 100
CLUSTERS = 25
FIRST_DAY = datetime(2024, 5, 1, 5, 0, tzinfo=UTC)


@dataclass
class Space:
    """The stored clips and vectors, in the same order, with what each clip belongs to."""

    model_run: ModelRun
    clip_ids: np.ndarray  # [N]
    vectors: np.ndarray  # [N, D] as stored (float16 values)
    recording_ids: np.ndarray  # [N]
    dataset_ids: np.ndarray  # [N]
    site_ids: np.ndarray  # [N]
    recorded_at: list[datetime]  # [N]
    small: Dataset  # holds a tenth of the clips
    large: Dataset
    recordings: list[Recording]

    def exact(self, query: np.ndarray, mask: np.ndarray | None = None, limit: int = 20) -> list[tuple[int, float]]:
        """The exact ranking: (clip_id, similarity) of the `limit` most similar clips passing `mask`."""
        vectors = self.vectors.astype(np.float64)
        # The search casts the query to halfvec, as the stored vectors are.
        query = np.asarray(query, dtype=np.float16).astype(np.float64)
        similarity = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
        candidates = np.flatnonzero(mask if mask is not None else np.ones(len(vectors), dtype=bool))
        order = candidates[np.lexsort((self.clip_ids[candidates], -similarity[candidates]))][:limit]
        return [(int(self.clip_ids[i]), float(similarity[i])) for i in order]

    def clip(self, index: int) -> Clip:
        return Clip.objects.get(pk=int(self.clip_ids[index]))


def make_space(
    *, name: str = "synthetic", with_index: bool = True, seed: int = 5, clips_per_recording: int = CLIPS_PER_RECORDING
) -> Space:
    rng = np.random.default_rng(seed)
    model_run = ModelRun.objects.create(name=name, version="1", embedding_dimension=DIMENSION)
    small = Dataset.objects.create(name=f"{name} small")
    large = Dataset.objects.create(name=f"{name} large")
    sites = {
        dataset.pk: [Site.objects.create(dataset=dataset, name=f"site {i}") for i in range(2)]
        for dataset in (small, large)
    }
    recordings = []
    for i in range(RECORDINGS):
        dataset = small if i < RECORDINGS // 10 else large
        recordings.append(
            Recording(
                dataset=dataset,
                site=sites[dataset.pk][i % 2],
                path=f"r{i:02d}.wav",
                sha256=f"{i:064x}",
                duration=clips_per_recording * 3,
                samplerate=48000,
                channels=1,
                recorded_at=FIRST_DAY + timedelta(days=i),
            )
        )
    recordings = Recording.objects.bulk_create(recordings)
    Clip.objects.bulk_create(
        Clip(recording=recording, start_time=3 * j, end_time=3 * j + 3)
        for recording in recordings
        for j in range(clips_per_recording)
    )
    rows = list(
        Clip.objects.filter(recording__in=recordings)
        .order_by("recording_id", "start_time")
        .values_list("id", "recording_id", "recording__dataset_id", "recording__site_id", "recording__recorded_at")
    )
    centres = rng.normal(size=(CLUSTERS, DIMENSION))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[rng.integers(0, CLUSTERS, len(rows))] + 0.35 * rng.normal(size=(len(rows), DIMENSION)) / 8
    vectors = vectors.astype(np.float16)
    clip_ids = np.array([row[0] for row in rows], dtype=np.int64)
    store_embeddings("clip", clip_ids, model_run.id, vectors)
    with connection.cursor() as cursor:
        if with_index:
            # Built after the rows: 4 times faster than row by row. Inside the test's transaction the
            # deferred foreign key checks must run first, or CREATE INDEX fails ("pending trigger events").
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            ensure_hnsw_index("clip", model_run.id, DIMENSION)
        cursor.execute("ANALYZE embeddings_clipembedding, echoroo_clip, echoroo_recording")
    return Space(
        model_run=model_run,
        clip_ids=clip_ids,
        vectors=vectors,
        recording_ids=np.array([row[1] for row in rows]),
        dataset_ids=np.array([row[2] for row in rows]),
        site_ids=np.array([row[3] for row in rows]),
        recorded_at=[row[4] for row in rows],
        small=small,
        large=large,
        recordings=recordings,
    )


@pytest.fixture
def space(db) -> Space:
    return make_space()
