"""Search by sound event at scale: p50/p95 and recall@20 over 200,000 sound event embeddings (1,024-d, one run).

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/search_sound_events.py [--rows 200000] [--queries 200]

Like benchmarks/search.py (whose database set-up, library and synthetic vectors it reuses), it
starts a throw-away embedded PostgreSQL server in a temporary directory (deleted at the end; any
DATABASE_URL is ignored, never written to), migrates it, and makes ten datasets of 10-minute
recordings. Then `--rows` sound events (boxes of 0.3-3 s, a tenth of them a person's annotations
with a species tag, the rest a job's detections with one scored species) are inserted in one
statement each, their clustered 1,024-d vectors stored the app's own way
(`embeddings.storage.store_embeddings("sound_event", ...)`, binary COPY) and the run's partial
HNSW index built with `embeddings.indexes.ensure_hnsw_index("sound_event", ...)`.

Searches go through the service, `search.services.search_similar(target="sound_events")`, with
limit 20 and min_similarity -1, each unfiltered and filtered to one dataset (a tenth of the rows):
- by a vector: `--queries` held-out vectors from the same clusters (never stored);
- by a sound event: `--queries` stored events, searched by their own embedding (the event and, as
  by default, its recording left out).
Each set runs after a warm-up on other queries; p50/p95 are of the first pass, "best" of each
query's fastest of `--passes`, "index_query" of the service's HNSW query alone (timed by wrapping
`search.services.nearest_sound_events`; no app code is changed). Recall@20 is against the exact
ranking (numpy over the same float16 values, with the same exclusions and filter); a result counts
when its exact distance is within 1e-6 of the 20th exact distance (ties). The last line of output is
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.search import (  # noqa: E402
    DATASETS,
    FILTERED_DATASET,
    LIMIT,
    TIE,
    Library,
    clustered_vectors,
    log,
    make_library,
    percentiles,
    start_throwaway_django,
)

DIMENSION = 1024
ANNOTATED_SHARE = 0.1
SPECIES = [f"Species {i:03d}_Bird {i:03d}" for i in range(50)]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="sound event embeddings (default 200,000)")
    parser.add_argument("--queries", type=int, default=200, help="queries in each set (default 200)")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per store_embeddings call")
    parser.add_argument("--clusters", type=int, default=1_000, help="clusters (sound types)")
    parser.add_argument("--passes", type=int, default=2, help="timed passes over each query set")
    parser.add_argument("--seed", type=int, default=2026)
    return parser.parse_args()


def make_sound_events(library: Library, rows: int, model_run_id: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """`rows` sound events, a tenth annotated, the rest detected, in a few statements: (ids, recording ids)."""
    from django.db import connection

    from echoroo.models import SPECIES as SPECIES_KEY
    from echoroo.models import Tag

    per_recording = -(-rows // len(library.recordings))
    index = np.arange(rows)
    recording_ids = np.array([r.pk for r in library.recordings], dtype=np.int64)[index // per_recording]
    starts = np.round(rng.uniform(0, 595, rows), 3)
    ends = np.round(starts + rng.uniform(0.3, 3.0, rows), 3)
    tags = [Tag.objects.get_or_create(key=SPECIES_KEY, value=label)[0].pk for label in SPECIES]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO echoroo_soundevent (uuid, recording_id, start_time, end_time, created_at) "
            "SELECT gen_random_uuid(), r, s, e, now()"
            " FROM unnest(%s::bigint[], %s::float8[], %s::float8[]) AS t(r, s, e) "
            "RETURNING id, recording_id",
            [recording_ids.tolist(), starts.tolist(), ends.tolist()],
        )
        returned = np.array(cursor.fetchall(), dtype=np.int64)
        returned = returned[np.argsort(returned[:, 0])]
        event_ids = returned[:, 0]
        annotated = rng.random(rows) < ANNOTATED_SHARE
        species = rng.integers(0, len(SPECIES), rows)
        event_tags = np.array(tags, dtype=np.int64)[species]
        cursor.execute(
            "WITH boxes AS (INSERT INTO annotations_soundeventannotation"
            " (uuid, sound_event_id, recording_id, source, import_key, notes, created_at, updated_at)"
            " SELECT gen_random_uuid(), e.id, e.recording_id, 'drawn', '', '', now(), now()"
            " FROM unnest(%s::bigint[], %s::bigint[]) AS t(id, tag) JOIN echoroo_soundevent e ON e.id = t.id"
            " RETURNING id, sound_event_id) "
            "INSERT INTO annotations_soundeventannotationtag (annotation_id, tag_id, created_at)"
            " SELECT b.id, t.tag, now() FROM boxes b JOIN unnest(%s::bigint[], %s::bigint[]) AS t(id, tag)"
            " ON t.id = b.sound_event_id",
            [event_ids[annotated].tolist(), event_tags[annotated].tolist()] * 2,
        )
        cursor.execute(
            "WITH found AS MATERIALIZED (SELECT id, tag, score,"
            "  nextval(pg_get_serial_sequence('echoroo_soundeventprediction', 'id')::regclass) AS prediction_id"
            "  FROM unnest(%s::bigint[], %s::bigint[], %s::float8[]) AS t(id, tag, score)),"
            " predictions AS (INSERT INTO echoroo_soundeventprediction"
            "  (id, uuid, sound_event_id, model_run_id, created_at)"
            "  SELECT prediction_id, gen_random_uuid(), id, %s, now() FROM found) "
            "INSERT INTO echoroo_soundeventpredictiontag (sound_event_prediction_id, tag_id, score)"
            " SELECT prediction_id, tag, score FROM found",
            [
                event_ids[~annotated].tolist(),
                event_tags[~annotated].tolist(),
                np.round(rng.uniform(0.1, 1.0, int((~annotated).sum())), 4).tolist(),
                model_run_id,
            ],
        )
    return event_ids, returned[:, 1]


def exact_distances(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """[rows, queries] cosine distances over the stored float16 values (the query rounded to float16, as the SQL)."""
    q = queries.astype(np.float16).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    distances = np.empty((len(vectors), len(queries)), dtype=np.float32)
    for start in range(0, len(vectors), 20_000):
        chunk = vectors[start : start + 20_000].astype(np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        distances[start : start + 20_000] = 1.0 - chunk @ q.T
    return distances


def recall_of(found_rows: np.ndarray, distances: np.ndarray, allowed: np.ndarray) -> float:
    """The share of the exact top 20 among `allowed` rows that was found (ties at the 20th included)."""
    kth = np.partition(distances[allowed], LIMIT - 1)[LIMIT - 1]
    return min(LIMIT, int((distances[found_rows] <= kth + TIE).sum())) / LIMIT


class IndexQueryTimer:
    """Times the service's index query (search.queries.nearest_sound_events, one round trip) inside each search."""

    def __init__(self) -> None:
        import search.services

        self.seconds: list[float] = []
        original = search.services.nearest_sound_events

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds.append(time.perf_counter() - started)

        search.services.nearest_sound_events = timed


def measure(
    search, queries: list, allowed_of, distances: np.ndarray, row_of: dict, passes: int, warmup: list, timer
) -> dict:
    """Time each query `passes` times after a warm-up; p50/p95 of the first pass, best-of, recall@20, and the
    p50/p95 of the index query alone in the first pass (the rest is Python: checks, loading the results)."""
    for query in warmup:
        search(query)
    times = np.empty((passes, len(queries)))
    index_times = []
    recalls, counts = [], []
    for p in range(passes):
        for i, query in enumerate(queries):
            timer.seconds.clear()
            started = time.perf_counter()
            results = search(query)
            times[p, i] = time.perf_counter() - started
            if p == 0:
                index_times.append(sum(timer.seconds))
            if p == 0:
                rows = np.array([row_of[result.sound_event.pk] for result in results], dtype=np.int64)
                recalls.append(recall_of(rows, distances[:, i], allowed_of(i)))
                counts.append(len(results))
    figures = percentiles(times[0])
    best = percentiles(times.min(axis=0))
    figures["best_p50_ms"], figures["best_p95_ms"] = best["p50_ms"], best["p95_ms"]
    index = percentiles(index_times)
    figures["index_query_p50_ms"], figures["index_query_p95_ms"] = index["p50_ms"], index["p95_ms"]
    figures["recall_at_20"] = round(float(np.mean(recalls)), 4)
    figures["min_recall"] = round(float(np.min(recalls)), 2)
    figures["min_results"] = int(np.min(counts))
    return figures


def main() -> None:
    args = parse_args()
    start_throwaway_django()

    from django.core.management import call_command
    from django.db import connection

    from echoroo.models import Dataset, ModelRun, SoundEvent
    from embeddings.indexes import ensure_hnsw_index
    from embeddings.storage import store_embeddings
    from search.services import search_similar

    log(f"{os.cpu_count()} CPUs, shared with whatever else runs here (see the load average)")
    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(args.seed)
    library = make_library(args.rows)
    model_run = ModelRun.objects.create(
        name="birdnet", version="bench", embedding_dimension=DIMENSION, segment_duration=3.0, sample_rate=48_000
    )
    started = time.perf_counter()
    event_ids, event_recordings = make_sound_events(library, args.rows, model_run.pk, rng)
    log(
        f"{args.rows:,} sound events on {len(library.recordings):,} recordings in {time.perf_counter() - started:.1f} s"
    )
    dataset_of = np.array([library.recording_dataset[r] for r in event_recordings.tolist()], dtype=np.int8)
    in_dataset = dataset_of == FILTERED_DATASET

    n_warmup = 20
    vectors, held_out = clustered_vectors(args.rows, args.queries + n_warmup, DIMENSION, args.clusters, rng)
    started = time.perf_counter()
    for start in range(0, args.rows, args.batch):
        stop = start + args.batch
        store_embeddings("sound_event", event_ids[start:stop], model_run.pk, vectors[start:stop])
    load_s = time.perf_counter() - started
    log(f"stored {args.rows:,} x {DIMENSION} embeddings in {load_s:.1f} s = {args.rows / load_s:,.0f} rows/s")
    started = time.perf_counter()
    ensure_hnsw_index("sound_event", model_run.pk, DIMENSION)
    build_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        for table in ("echoroo_recording", "echoroo_soundevent", "embeddings_soundeventembedding"):
            cursor.execute(f"ANALYZE {table}")
    log(f"HNSW index built in {build_s:.1f} s")

    row_of = {int(event_id): row for row, event_id in enumerate(event_ids.tolist())}
    dataset = Dataset.objects.get(pk=library.datasets[FILTERED_DATASET].pk)
    everywhere = np.ones(args.rows, dtype=bool)

    # By a vector: held-out vectors.
    vector_queries, vector_warmup = held_out[: args.queries], held_out[args.queries :]
    vector_distances = exact_distances(vectors, vector_queries)

    def by_vector(filtered: bool):
        def search(vector):
            return search_similar(
                model_name=model_run.name,
                vector=vector.astype(np.float32),
                target="sound_events",
                limit=LIMIT,
                min_similarity=-1.0,
                dataset=dataset if filtered else None,
            )

        return search

    # By a sound event: stored events (any dataset), searched by their own embedding.
    picked = rng.choice(args.rows, args.queries + n_warmup, replace=False)
    query_rows, warmup_rows = picked[: args.queries], picked[args.queries :]
    events = SoundEvent.objects.in_bulk([int(event_ids[row]) for row in picked])
    event_queries = [events[int(event_ids[row])] for row in query_rows]
    event_warmup = [events[int(event_ids[row])] for row in warmup_rows]
    event_distances = exact_distances(vectors, vectors[query_rows])

    def by_event(filtered: bool):
        def search(event):
            return search_similar(
                sound_event=event,
                target="sound_events",
                limit=LIMIT,
                min_similarity=-1.0,
                dataset=dataset if filtered else None,
            )

        return search

    def not_own_recording(mask: np.ndarray):
        return lambda i: mask & (event_recordings != event_recordings[query_rows[i]])

    timer = IndexQueryTimer()
    figures = {}
    for name, search, queries, warmup, distances, allowed_of in (
        (
            "by_vector",
            by_vector(False),
            list(vector_queries),
            list(vector_warmup),
            vector_distances,
            lambda i: everywhere,
        ),
        (
            "by_vector_filtered",
            by_vector(True),
            list(vector_queries),
            list(vector_warmup),
            vector_distances,
            lambda i: in_dataset,
        ),
        (
            "by_sound_event",
            by_event(False),
            event_queries,
            event_warmup,
            event_distances,
            not_own_recording(everywhere),
        ),
        (
            "by_sound_event_filtered",
            by_event(True),
            event_queries,
            event_warmup,
            event_distances,
            not_own_recording(in_dataset),
        ),
    ):
        figures[name] = measure(search, queries, allowed_of, distances, row_of, args.passes, warmup, timer)
        log(f"{name}: {figures[name]}")

    summary = {
        "benchmark": "search_sound_events",
        "rows": args.rows,
        "dimension": DIMENSION,
        "queries": args.queries,
        "datasets": DATASETS,
        "filtered_dataset_share": round(float(in_dataset.mean()), 3),
        "load_rows_per_s": round(args.rows / load_s),
        "index_build_s": round(build_s, 1),
        "p95_ms": max(f["p95_ms"] for f in figures.values()),
        "min_recall_at_20": min(f["recall_at_20"] for f in figures.values()),
        **figures,
        "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
