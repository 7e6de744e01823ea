"""Embeddings go in with binary COPY, exactly once, and the per-run HNSW index is used."""

import numpy as np
import pytest
from django.db import connection

from echoroo.models import Clip, Dataset, ModelRun, Recording
from embeddings.indexes import ensure_hnsw_index, indexed_expression
from embeddings.models import ClipEmbedding
from embeddings.storage import store_embeddings

pytestmark = pytest.mark.django_db


@pytest.fixture
def clips():
    dataset = Dataset.objects.create(name="d")
    recording = Recording.objects.create(
        dataset=dataset, path="a.wav", sha256="0" * 64, duration=300, samplerate=48000, channels=1
    )
    Clip.objects.bulk_create(Clip(recording=recording, start_time=3 * i, end_time=3 * i + 3) for i in range(100))
    return list(Clip.objects.filter(recording=recording).order_by("start_time"))


def test_vectors_round_trip_through_copy_at_half_precision(clips):
    run = ModelRun.objects.create(name="birdnet", version="2.4", embedding_dimension=16)
    vectors = np.random.default_rng(1).normal(size=(len(clips), 16)).astype(np.float32)
    added = store_embeddings("clip", np.array([c.id for c in clips]), run.id, vectors)
    assert added == len(clips)
    stored = {e.clip_id: np.array(e.embedding, dtype=np.float16) for e in ClipEmbedding.objects.filter(model_run=run)}
    for clip, vector in zip(clips, vectors, strict=True):
        np.testing.assert_allclose(stored[clip.id], vector.astype(np.float16), rtol=0, atol=0)


def test_storing_again_adds_nothing(clips):
    run = ModelRun.objects.create(name="birdnet", version="2.4", embedding_dimension=8)
    ids = np.array([c.id for c in clips])
    vectors = np.ones((len(clips), 8), dtype=np.float32)
    assert store_embeddings("clip", ids, run.id, vectors) == len(clips)
    assert store_embeddings("clip", ids[:10], run.id, vectors[:10] * 2) == 0
    assert ClipEmbedding.objects.filter(model_run=run).count() == len(clips)


def test_non_finite_vectors_are_refused(clips):
    run = ModelRun.objects.create(name="birdnet", version="2.4", embedding_dimension=4)
    vectors = np.zeros((1, 4), dtype=np.float32)
    vectors[0, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        store_embeddings("clip", np.array([clips[0].id]), run.id, vectors)


def test_the_per_run_index_rejects_a_vector_of_another_dimension(clips):
    run = ModelRun.objects.create(name="birdnet", version="2.4", embedding_dimension=8)
    ensure_hnsw_index("clip", run.id, 8)
    with pytest.raises(Exception, match="expected 8 dimensions"):
        store_embeddings("clip", np.array([clips[0].id]), run.id, np.ones((1, 4), dtype=np.float32))


def test_a_nearest_neighbour_query_uses_the_runs_hnsw_index(clips):
    run = ModelRun.objects.create(name="birdnet", version="2.4", embedding_dimension=8)
    name = ensure_hnsw_index("clip", run.id, 8)
    store_embeddings("clip", np.array([c.id for c in clips]), run.id, np.random.default_rng(2).normal(size=(100, 8)))
    expression = indexed_expression(8)
    with connection.cursor() as cursor:
        # Few rows: without these the planner rightly prefers a sort; the point is that it can use the index.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(
            f"EXPLAIN SELECT clip_id FROM embeddings_clipembedding WHERE model_run_id = %s "
            f"ORDER BY {expression} <=> %s::halfvec(8) LIMIT 5",
            [run.id, "[1,0,0,0,0,0,0,0]"],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert name in plan
