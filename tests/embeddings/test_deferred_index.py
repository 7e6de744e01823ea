"""A large load builds its run's HNSW index after it: searches stay exact meanwhile, and the index comes back valid."""

import numpy as np
import psycopg
import pytest
from django.db import connection
from django.utils.module_loading import import_string
from django_q.models import OrmQ

from echoroo.models import Clip, Dataset, ModelRun, Recording
from embeddings import indexes
from embeddings.indexes import build_index_if_needed, defer_index, index_name, index_state, should_defer
from embeddings.models import ClipEmbedding
from embeddings.storage import store_embeddings
from inference import services, tasks
from inference.models import InferenceJob
from search.queries import Filters, nearest_clips_sql, vector_literal
from search.services import search_similar
from tests.search.conftest import DIMENSION, make_space

ANY = -1.0  # min_similarity that keeps every result


@pytest.fixture
def large_from_ten(monkeypatch):
    """Loads count as large from 10 rows: the two field recordings (24 windows) are then a large job."""
    monkeypatch.setattr(indexes, "MIN_DEFERRED_ROWS", 10)


@pytest.fixture
def drop_indexes_after():
    """A transactional test's flush empties the tables but keeps the runs' indexes: drop them."""
    yield
    with connection.cursor() as cursor:
        for run_id in ModelRun.objects.values_list("pk", flat=True):
            cursor.execute(f"DROP INDEX IF EXISTS {index_name('clip', run_id)}")


def index_oid(model_run_id: int) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)::oid", [index_name("clip", model_run_id)])
        return cursor.fetchone()[0]


def stored_space(model_run_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(clip ids, vectors as stored) of a run's embeddings."""
    rows = list(ClipEmbedding.objects.filter(model_run_id=model_run_id).values_list("clip_id", "embedding"))
    return np.array([clip_id for clip_id, _ in rows]), np.array([np.array(v, dtype=np.float64) for _, v in rows])


def exact(clip_ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, limit: int) -> list[tuple[int, float]]:
    """The exact ranking: (clip_id, similarity) of the `limit` most similar, as the search casts the query."""
    query = np.asarray(query, dtype=np.float16).astype(np.float64)
    similarity = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    order = np.lexsort((clip_ids, -similarity))[:limit]
    return [(int(clip_ids[i]), float(similarity[i])) for i in order]


def assert_search_is_exact(model_run: ModelRun, queries: np.ndarray, limit: int = 10) -> None:
    clip_ids, vectors = stored_space(model_run.pk)
    for query in queries:
        found = search_similar(model_run=model_run, vector=query, limit=limit, min_similarity=ANY)
        expected = exact(clip_ids, vectors, query, limit)
        assert [result.clip.pk for result in found] == [clip_id for clip_id, _ in expected]
        np.testing.assert_allclose([r.similarity for r in found], [s for _, s in expected], atol=2e-3)


def near_stored(model_run_id: int, count: int = 5, seed: int = 3) -> np.ndarray:
    """Query vectors near stored ones, not themselves stored."""
    _, vectors = stored_space(model_run_id)
    rng = np.random.default_rng(seed)
    picked = vectors[rng.choice(len(vectors), count, replace=False)]
    return picked + 0.05 * rng.normal(size=picked.shape) * np.abs(picked).mean()


def run_queued(function: str) -> list:
    """Run the queued tasks of one function as a worker would (their own function and arguments), and unqueue them."""
    results = []
    for queued in OrmQ.objects.order_by("pk"):
        if queued.task["func"] == function:
            results.append(import_string(function)(*queued.task["args"], **queued.task["kwargs"]))
            queued.delete()
    return results


def test_the_rule_defers_large_loads_and_keeps_the_index_of_a_run_much_larger_than_the_load():
    assert should_defer(48_000, 0)
    assert should_defer(48_000, 96_000)
    assert not should_defer(48_000, 96_001)  # the run holds more than twice the load: maintain it
    assert not should_defer(indexes.MIN_DEFERRED_ROWS - 1, 0)  # a small load on an empty run: maintain it


@pytest.mark.django_db
def test_a_large_job_drops_its_runs_index_and_it_is_valid_when_the_job_ends(field_dataset, large_from_ten):
    job = services.create_job(model_name="birdnet", dataset=field_dataset, config={})
    before = index_oid(job.model_run_id)
    assert before is not None and index_state("clip", job.model_run_id) == "valid"  # made with the run
    job = services.start_job(job, sync=True)
    assert job.status == InferenceJob.Status.COMPLETED
    assert ClipEmbedding.objects.filter(model_run=job.model_run).count() == 24
    assert index_state("clip", job.model_run_id) == "valid"
    assert index_oid(job.model_run_id) != before  # dropped for the load and built after it


@pytest.mark.django_db
def test_a_small_job_on_a_big_run_keeps_the_index(field_dataset, field_recording, large_from_ten):
    # The run already holds 100 embeddings, more than twice the 24 windows the job adds.
    other = Recording.objects.create(
        dataset=Dataset.objects.create(name="Earlier season"),
        path="other.wav",
        sha256="1" * 64,
        duration=300,
        samplerate=48000,
        channels=1,
    )
    Clip.objects.bulk_create(Clip(recording=other, start_time=3 * i, end_time=3 * i + 3) for i in range(100))
    model_run = services.model_run_for("birdnet")
    clip_ids = np.array(Clip.objects.filter(recording=other).values_list("pk", flat=True))
    store_embeddings("clip", clip_ids, model_run.pk, np.random.default_rng(1).random((100, 1024)))
    before = index_oid(model_run.pk)
    job = services.create_job(model_name="birdnet", dataset=field_dataset, config={})
    assert not defer_index(model_run.pk, expected_rows=24)
    job = services.start_job(job, sync=True)
    assert job.status == InferenceJob.Status.COMPLETED
    assert ClipEmbedding.objects.filter(model_run=model_run).count() == 124
    assert index_oid(model_run.pk) == before and index_state("clip", model_run.pk) == "valid"


@pytest.mark.django_db
def test_without_its_index_a_search_is_exact_and_returns_the_top_k_the_index_returns_on_a_small_set():
    space = make_space(with_index=False, clips_per_recording=10)  # 200 clips
    assert index_state("clip", space.model_run.pk) == "missing"
    queries = space.vectors[[3, 50, 120, 199]].astype(np.float64) + 0.01
    without = [
        [
            (r.clip.pk, r.similarity)
            for r in search_similar(model_run=space.model_run, vector=q, limit=10, min_similarity=ANY)
        ]
        for q in queries
    ]
    for query, found in zip(queries, without, strict=True):
        expected = space.exact(query, limit=10)
        assert [clip_id for clip_id, _ in found] == [clip_id for clip_id, _ in expected]
        np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], atol=2e-3)
    assert build_index_if_needed("clip", space.model_run.pk, DIMENSION) == "built"
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE embeddings_clipembedding")
        sql, params = nearest_clips_sql(space.model_run.pk, DIMENSION, Filters(), 10)
        params[0] = vector_literal(queries[0])
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        assert index_name("clip", space.model_run.pk) in "\n".join(row[0] for row in cursor.fetchall())
    with_index = [
        [
            (r.clip.pk, r.similarity)
            for r in search_similar(model_run=space.model_run, vector=q, limit=10, min_similarity=ANY)
        ]
        for q in queries
    ]
    assert [[clip_id for clip_id, _ in found] for found in with_index] == [
        [clip_id for clip_id, _ in found] for found in without
    ]


@pytest.mark.django_db
def test_the_build_waits_for_the_last_job_writing_the_run(field_dataset, field_recording, large_from_ten):
    first = services.start_job(services.create_job(model_name="birdnet", dataset=field_dataset, config={}))
    second = services.start_job(services.create_job(model_name="birdnet", recording=field_recording, config={}))
    assert index_state("clip", first.model_run_id) == "missing"  # the first, a large load, deferred it
    assert first.status == second.status == InferenceJob.Status.RUNNING
    services.cancel_job(first)
    assert tasks.build_embedding_index(first.model_run_id).startswith("waiting")  # the second still writes
    assert index_state("clip", first.model_run_id) == "missing"
    services.cancel_job(second)
    assert tasks.build_embedding_index(first.model_run_id) == "built"
    assert index_state("clip", first.model_run_id) == "valid"


@pytest.mark.django_db(transaction=True)
def test_while_a_job_runs_searches_are_exact_and_its_end_queues_a_concurrent_build(
    field_dataset, large_from_ten, drop_indexes_after
):
    job = services.start_job(services.create_job(model_name="birdnet", dataset=field_dataset, config={}))
    model_run = job.model_run
    assert index_state("clip", model_run.pk) == "missing"  # deferred for the load
    queued = OrmQ.objects.filter(pk__in=[q.pk for q in OrmQ.objects.all() if q.task["func"].endswith("recordings")])
    assert queued.count() == 2  # one task per recording, as workers take them

    first = queued.order_by("pk").first()
    import_string(first.task["func"])(*first.task["args"])
    first.delete()
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.RUNNING and ClipEmbedding.objects.filter(model_run=model_run).exists()
    assert_search_is_exact(model_run, near_stored(model_run.pk))  # no index: an exact scan
    assert index_state("clip", model_run.pk) == "missing"

    run_queued("inference.tasks.run_job_recordings")
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.COMPLETED
    assert run_queued("inference.tasks.build_embedding_index") == ["built"]  # queued by the job's end
    assert index_state("clip", model_run.pk) == "valid"
    assert_search_is_exact(model_run, near_stored(model_run.pk))  # 24 rows: the graph finds them all


@pytest.mark.django_db(transaction=True)
def test_an_invalid_index_left_by_a_failed_build_is_built_again(drop_indexes_after):
    space = make_space(with_index=False, clips_per_recording=5)
    # A row the index's expression cannot take fails the CONCURRENTLY build half-way.
    bad_clip = Clip.objects.create(recording=space.recordings[0], start_time=1000, end_time=1003)
    store_embeddings("clip", np.array([bad_clip.pk]), space.model_run.pk, np.ones((1, 4)))
    with pytest.raises(Exception, match="expected 64 dimensions"):
        build_index_if_needed("clip", space.model_run.pk, DIMENSION)
    assert index_state("clip", space.model_run.pk) == "invalid"

    ClipEmbedding.objects.filter(clip=bad_clip).delete()
    tasks.queue_embedding_index(space.model_run.pk)  # what a job's end does
    assert run_queued("inference.tasks.build_embedding_index") == ["rebuilt"]
    assert index_state("clip", space.model_run.pk) == "valid"
    assert tasks.build_embedding_index(space.model_run.pk) == "valid"  # nothing left to do


@pytest.mark.django_db(transaction=True)
def test_one_builder_at_a_time_and_a_load_never_waits_for_a_build(drop_indexes_after, large_from_ten):
    space = make_space(with_index=False, clips_per_recording=5)
    name = index_name("clip", space.model_run.pk)
    params = connection.get_connection_params()
    with psycopg.connect(**{key: value for key, value in params.items() if key != "cursor_factory"}) as other:
        other.execute("SELECT pg_advisory_lock(hashtext(%s))", [f"embeddings.hnsw:{name}"])  # a build elsewhere
        assert build_index_if_needed("clip", space.model_run.pk, DIMENSION) == "busy"
        assert not defer_index(space.model_run.pk, expected_rows=1_000)
        other.execute("SELECT pg_advisory_unlock(hashtext(%s))", [f"embeddings.hnsw:{name}"])
    assert build_index_if_needed("clip", space.model_run.pk, DIMENSION) == "built"
    assert defer_index(space.model_run.pk, expected_rows=1_000)  # 100 rows stored: a large load drops it
    assert index_state("clip", space.model_run.pk) == "missing"
