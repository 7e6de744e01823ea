"""The search service walks the run's HNSW index, agrees with an exact ranking, and filters without losing results."""

from datetime import timedelta

import numpy as np
import pytest
from django.db import connection, transaction

from echoroo.models import Clip, ModelRun
from embeddings.indexes import index_name
from embeddings.storage import store_embeddings
from search.errors import SearchError
from search.queries import Filters, nearest_clips, nearest_clips_sql, vector_literal
from search.services import search_similar
from tests.search.conftest import DIMENSION, FIRST_DAY, make_space

pytestmark = pytest.mark.django_db

ANY = -1.0  # min_similarity that keeps every result


def plan_of(space, filters: Filters, *settings: str) -> str:
    sql, params = nearest_clips_sql(space.model_run.id, DIMENSION, filters, 20)
    params[0] = vector_literal(space.vectors[7])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        for setting in settings:
            cursor.execute(setting)
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def queries(space, count: int = 25, seed: int = 11) -> np.ndarray:
    """New vectors near stored ones: not themselves stored."""
    rng = np.random.default_rng(seed)
    picked = space.vectors[rng.choice(len(space.vectors), count, replace=False)].astype(np.float64)
    return picked + 0.02 * rng.normal(size=picked.shape)


def ids(results) -> list[int]:
    return [result.clip.pk for result in results]


def recall(found: list[int], exact: list[tuple[int, float]]) -> float:
    return len(set(found) & {clip_id for clip_id, _ in exact}) / len(exact)


def test_an_unfiltered_search_walks_the_runs_hnsw_index(space):
    assert index_name("clip", space.model_run.id) in plan_of(space, Filters())


@pytest.mark.parametrize(
    "filters",
    [
        lambda space: Filters(exclude_recording_id=space.recordings[0].pk, exclude_clip_id=int(space.clip_ids[0])),
        lambda space: Filters(dataset_id=space.large.pk),
        lambda space: Filters(site_id=space.recordings[5].site_id),
        lambda space: Filters(recorded_after=FIRST_DAY + timedelta(days=3)),
    ],
    ids=["own recording excluded", "dataset", "site", "recorded after"],
)
def test_a_filtered_search_walks_the_index_too(space, filters):
    assert index_name("clip", space.model_run.id) in plan_of(space, filters(space))


def test_a_bound_model_run_id_would_miss_the_partial_index_so_it_is_written_into_the_sql(space):
    # What a server-side prepared statement's generic plan sees: `model_run_id = $1` cannot prove the
    # index's `model_run_id = N`, so the planner reads every row of the table instead.
    name = index_name("clip", space.model_run.id)
    literal = vector_literal(space.vectors[7])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(
            "PREPARE bound(bigint) AS SELECT clip_id FROM embeddings_clipembedding WHERE model_run_id = $1 "
            f"ORDER BY (embedding::halfvec({DIMENSION})) <=> '{literal}'::halfvec({DIMENSION}) LIMIT 20"
        )
        cursor.execute("EXPLAIN EXECUTE bound(%s)", [space.model_run.id])
        bound_plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE bound")
    assert name not in bound_plan
    sql, _ = nearest_clips_sql(space.model_run.id, DIMENSION, Filters(), 20)
    assert f"e.model_run_id = {space.model_run.id}" in sql
    assert name in plan_of(space, Filters(), "SET LOCAL plan_cache_mode = force_generic_plan")


def test_recall_at_20_against_the_exact_ranking_is_at_least_95_percent(space):
    recalls = [
        recall(ids(search_similar(model_run=space.model_run, vector=query, min_similarity=ANY)), space.exact(query))
        for query in queries(space)
    ]
    assert np.mean(recalls) >= 0.95, recalls


def test_without_the_index_the_results_are_exactly_the_brute_force_ranking(space):
    for query in queries(space, count=5):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")
            results = search_similar(model_run=space.model_run, vector=query, min_similarity=ANY)
        exact = space.exact(query)
        assert ids(results) == [clip_id for clip_id, _ in exact]
        np.testing.assert_allclose([r.similarity for r in results], [s for _, s in exact], atol=1e-5)


def test_a_model_run_without_an_index_is_searched_exactly(db):
    space = make_space(name="unindexed", with_index=False)
    query = queries(space, count=1)[0]
    assert "hnsw" not in plan_of(space, Filters())
    results = search_similar(model_run=space.model_run, vector=query, limit=30, min_similarity=ANY)
    assert ids(results) == [clip_id for clip_id, _ in space.exact(query, limit=30)]


def test_a_selective_filter_still_fills_the_limit_through_the_index(space):
    """A dataset of a tenth of the clips: HNSW's 40 candidates hold about 4 of its clips; iterating finds 20."""
    in_small = space.dataset_ids == space.small.pk
    with transaction.atomic(), connection.cursor() as cursor:
        # At 2,000 rows the planner rightly sorts the dataset's 200 clips instead; make it take the index.
        cursor.execute("SET LOCAL enable_sort = off")
        assert index_name("clip", space.model_run.id) in plan_of(space, Filters(dataset_id=space.small.pk))
        recalls = []
        for query in queries(space, count=10):
            without = nearest_clips(
                space.model_run.id,
                DIMENSION,
                query,
                Filters(dataset_id=space.small.pk),
                limit=20,
                ef_search=40,
                iterative_scan=False,
            )
            assert len(without) < 20
            results = search_similar(model_run=space.model_run, vector=query, dataset=space.small, min_similarity=ANY)
            assert len(results) == 20
            assert all(result.recording.dataset_id == space.small.pk for result in results)
            recalls.append(recall(ids(results), space.exact(query, in_small)))
    assert np.mean(recalls) >= 0.95, recalls


def test_each_filter_keeps_only_its_clips_and_agrees_with_the_exact_ranking(space):
    query = queries(space, count=1)[0]
    recording, site = space.recordings[4], space.recordings[4].site
    after, before = FIRST_DAY + timedelta(days=5), FIRST_DAY + timedelta(days=12)
    recorded_at = np.array(space.recorded_at)
    in_large = space.dataset_ids == space.large.pk
    cases = [
        ({"dataset": space.small}, space.dataset_ids == space.small.pk),
        ({"dataset": space.large}, space.dataset_ids == space.large.pk),
        ({"site": site}, space.site_ids == site.pk),
        ({"recording": recording}, space.recording_ids == recording.pk),
        ({"recorded_after": after}, recorded_at >= after),
        ({"recorded_before": before}, recorded_at <= before),
        ({"recorded_after": after, "recorded_before": before}, (recorded_at >= after) & (recorded_at <= before)),
        ({"dataset": space.large, "recorded_before": before}, in_large & (recorded_at <= before)),
    ]
    recalls = []
    for filters, mask in cases:
        results = search_similar(model_run=space.model_run, vector=query, min_similarity=ANY, **filters)
        assert len(results) == 20, filters
        assert all(mask[np.flatnonzero(space.clip_ids == clip_id)[0]] for clip_id in ids(results)), filters
        recalls.append(recall(ids(results), space.exact(query, mask)))
    assert min(recalls) >= 0.85 and np.mean(recalls) >= 0.95, recalls


def test_results_come_most_similar_first_and_stop_at_min_similarity(space):
    query = queries(space, count=1)[0]
    everything = search_similar(model_run=space.model_run, vector=query, limit=100, min_similarity=ANY)
    similarities = [result.similarity for result in everything]
    assert similarities == sorted(similarities, reverse=True)
    threshold = similarities[30]
    kept = search_similar(model_run=space.model_run, vector=query, limit=100, min_similarity=threshold)
    assert [r.clip.pk for r in kept] == [r.clip.pk for r in everything if r.similarity >= threshold]
    assert search_similar(model_run=space.model_run, vector=-query, min_similarity=0.7) == []


def test_a_search_by_clip_leaves_out_the_clip_and_by_default_its_recording(space):
    clip = space.clip(150)
    query = space.vectors[150]
    own = space.recording_ids == clip.recording_id
    results = search_similar(model_run=space.model_run, clip=clip, min_similarity=ANY)
    assert clip.pk not in ids(results)
    assert all(result.clip.recording_id != clip.recording_id for result in results)
    assert recall(ids(results), space.exact(query, ~own)) >= 0.85

    with_own = search_similar(model_run=space.model_run, clip=clip, min_similarity=ANY, exclude_own_recording=False)
    assert clip.pk not in ids(with_own)
    assert recall(ids(with_own), space.exact(query, space.clip_ids != clip.pk)) >= 0.85

    # Asking for the clip's own recording means its other clips are wanted.
    in_own = search_similar(model_run=space.model_run, clip=clip, recording=clip.recording, min_similarity=ANY)
    assert len(in_own) == 20 and all(result.clip.recording_id == clip.recording_id for result in in_own)


def test_the_model_is_found_by_name_latest_run_with_embeddings_first(space):
    ModelRun.objects.create(name="synthetic", version="2", embedding_dimension=DIMENSION)  # no embeddings
    query = queries(space, count=1)[0]
    results = search_similar(model_name="synthetic", vector=query, limit=5, min_similarity=ANY)
    assert {result.model_run for result in results} == {space.model_run}
    by_version = search_similar(model_name="synthetic", model_version="1", vector=query, limit=5, min_similarity=ANY)
    assert len(by_version) == 5
    with pytest.raises(SearchError) as error:
        search_similar(model_name="synthetic", model_version="2", vector=query)
    assert "no embeddings yet" in error.value.errors["model_name"]
    with pytest.raises(SearchError) as error:
        search_similar(model_name="birdclef", vector=query)
    assert "no model run is named 'birdclef'" in error.value.errors["model_name"]
    assert "synthetic 1" in error.value.errors["model_name"]


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        (np.ones(DIMENSION + 1), f"has {DIMENSION + 1} values; this model run's embeddings have {DIMENSION}"),
        (np.full(DIMENSION, np.nan), "finite"),
        (np.zeros(DIMENSION), "all zeros"),
        (np.full(DIMENSION, 1e6), "half precision"),
        ([["a"]], "list of numbers"),
    ],
)
def test_a_bad_vector_is_refused_naming_the_embedding(space, vector, message):
    with pytest.raises(SearchError) as error:
        search_similar(model_run=space.model_run, vector=vector)
    assert message in error.value.errors["embedding"]


def test_bad_limits_and_thresholds_are_refused(space):
    query = queries(space, count=1)[0]
    for options, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"min_similarity": 1.5}, "min_similarity"),
        ({"min_similarity": float("nan")}, "min_similarity"),
        ({"vector": None}, "embedding"),
        ({"clip": space.clip(0)}, "embedding"),
    ]:
        with pytest.raises(SearchError) as error:
            search_similar(**{"model_run": space.model_run, "vector": query, **options})
        assert field in error.value.errors


def test_a_clip_without_an_embedding_of_the_model_is_refused(space):
    clip = Clip.objects.create(recording=space.recordings[0], start_time=500, end_time=503)
    with pytest.raises(SearchError) as error:
        search_similar(model_name="synthetic", clip=clip)
    assert f"clip {clip.uuid} has no embedding of synthetic" in error.value.errors["clip_uuid"]


def test_a_clip_embedded_by_two_runs_needs_the_model_named(space):
    clip = space.clip(0)
    other = ModelRun.objects.create(name="other", version="1", embedding_dimension=8)
    store_embeddings("clip", np.array([clip.pk]), other.pk, np.ones((1, 8)))
    with pytest.raises(SearchError) as error:
        search_similar(clip=clip)
    assert "several model runs" in error.value.errors["model_name"]
    results = search_similar(clip=clip, model_name="synthetic", limit=3, min_similarity=ANY)
    assert len(results) == 3 and results[0].model_run == space.model_run
    assert search_similar(clip=clip, model_name="other", min_similarity=ANY) == []  # alone in its space
