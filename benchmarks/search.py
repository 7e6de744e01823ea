"""Similarity search at scale: load rate, index build, sizes, latency and recall@20 of a 1,024-d and a 1,536-d run.

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/search.py [--rows 200000] [--queries 200] [--compare-rows 50000]

It starts a throw-away embedded PostgreSQL server in a temporary directory (deleted at the end),
migrates it, and for each of two model runs (BirdNET-like, 1,024-d; Perch-like, 1,536-d) loads
`--rows` synthetic clustered embeddings the app's own way: recordings and clips in bulk (one INSERT
... SELECT FROM unnest), then `embeddings.storage.store_embeddings` (binary COPY into a staging
table, INSERT ... ON CONFLICT DO NOTHING) in batches of `--batch` rows; then the run's partial HNSW
index is built with `embeddings.indexes.ensure_hnsw_index` (CREATE INDEX) with
`maintenance_work_mem` and `max_parallel_maintenance_workers` raised for the session.

The app today creates that index with the ModelRun (`inference.services.model_run_for`), so it is
maintained row by row during a load. That is far slower on 2 cores (a few hundred rows a second),
so it is measured on the first `--compare-rows` rows of the 1,024-d data only, beside CREATE INDEX
after the same load: tuned, with maintenance_work_mem only, and with the server's defaults.
`--compare-rows` equal to `--rows` measures it at full size.

Then `--queries` held-out vectors drawn from the same clusters (never stored rows) are searched
with limit 20 and min_similarity -1, unfiltered and filtered to one dataset holding a tenth of the
rows: at the service level (`search.services.search_similar`), through the HTTP API in-process
(Django's test Client) and through a real gunicorn on loopback (2 workers x 4 threads, DEBUG off,
token auth, one kept-alive connection). Every query set runs `--passes` times after a warm-up on
other vectors: "p50/p95" are the first pass as measured, "best" the percentiles of each query's
fastest pass (less of the other processes' noise on a shared machine), "sql" the server's own
execution time (EXPLAIN ANALYZE of the service's SQL) and "python_cpu" this process's CPU time.

Recall@20 is measured against the exact ranking (brute-force numpy over the same float16 values,
the query rounded to float16 as the SQL does); a result counts when its exact cosine distance is
within 1e-6 of the 20th exact distance (float rounding ties). An ef_search sweep (40, 80, 200) and
the filtered search without iterative scans (`search.services` monkeypatched; `search.queries` is
not changed) follow, then EXPLAIN ANALYZE of the slowest queries.

Last, the changes this benchmark suggests are measured the same way, by monkeypatching (no app code
is changed): the proposed query settings (`PROPOSED_*` below: a larger ef_search, larger still
with a filter, and sorting disabled for searches without a selective filter so that the planner
keeps walking the index) on the index as the app builds it, then both settings again after each
index is rebuilt `WITH (m = 16, ef_construction = --ef-construction)` (0 skips this part).

The last line of output is one JSON object; recall and latency there are the worse of the two model
runs.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

LIMIT = 20
DATASETS = 10
FILTERED_DATASET = 3  # one dataset of ten: a tenth of every run's rows
SITES_PER_DATASET = 2
CLIPS_PER_RECORDING = 100
TIE = 1e-6  # cosine distances this close to the 20th exact one are ties, not misses
EF_SWEEP = (40, 80, 200)
MODELS = (("birdnet", 1024, 3.0), ("perch", 1536, 5.0))  # (runtime name, dimension, clip length in seconds)
SEARCH_URL = "/api/v1/embeddings/search/"


from throwaway import start_throwaway_django  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="embeddings per model run (default 200,000)")
    parser.add_argument("--queries", type=int, default=200, help="held-out query vectors per model run")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per store_embeddings call")
    parser.add_argument("--clusters", type=int, default=1_000, help="clusters (sound types) per model run")
    parser.add_argument(
        "--compare-rows",
        type=int,
        default=50_000,
        help="rows of the 1,024-d data on which the index strategies are compared (0: skip)",
    )
    parser.add_argument("--passes", type=int, default=3, help="timed passes over each query set")
    parser.add_argument("--maintenance-work-mem", default="2GB", help="for CREATE INDEX after the load")
    parser.add_argument(
        "--parallel-workers", type=int, default=1, help="max_parallel_maintenance_workers (besides the leader)"
    )
    parser.add_argument(
        "--ef-construction",
        type=int,
        default=128,
        help="after the main measurements, rebuild each index WITH (m = 16, ef_construction = N) and measure the "
        "proposed settings again (0: skip)",
    )
    parser.add_argument("--no-gunicorn", action="store_true", help="skip the API timing through gunicorn")
    parser.add_argument("--seed", type=int, default=2026)
    return parser.parse_args()


def log(message: str) -> None:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')} load {load}] {message}", flush=True)


# --- the library: datasets, sites, recordings, clips --------------------------------------------------------------


@dataclass
class Library:
    datasets: list  # [Dataset]
    recordings: list  # [Recording]
    recording_dataset: dict[int, int]  # recording id -> dataset index (0..9)


def make_library(rows: int) -> Library:
    """Ten datasets of two sites each; enough 10-minute recordings for `rows` clips, dealt round the datasets."""
    from echoroo.models import Dataset, Recording, Site

    datasets = [Dataset.objects.create(name=f"bench dataset {i}") for i in range(DATASETS)]
    sites = [[Site.objects.create(dataset=d, name=f"site {j}") for j in range(SITES_PER_DATASET)] for d in datasets]
    n_recordings = max(DATASETS, -(-rows // CLIPS_PER_RECORDING))
    first = datetime(2025, 4, 1, tzinfo=UTC)
    recordings = Recording.objects.bulk_create(
        Recording(
            dataset=datasets[i % DATASETS],
            site=sites[i % DATASETS][(i // DATASETS) % SITES_PER_DATASET],
            path=f"deployment{i % DATASETS}/rec{i:06d}.wav",
            sha256=secrets.token_hex(32),
            duration=600.0,
            samplerate=48_000,
            channels=1,
            recorded_at=first + timedelta(hours=i),
        )
        for i in range(n_recordings)
    )
    recording_dataset = {recording.pk: i % DATASETS for i, recording in enumerate(recordings)}
    return Library(datasets, recordings, recording_dataset)


def make_clips(library: Library, rows: int, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """`rows` clips of `window_s` seconds in one INSERT ... SELECT FROM unnest: (clip ids, their dataset index)."""
    from django.db import connection

    per_recording = -(-rows // len(library.recordings))
    index = np.arange(rows)
    recording_ids = np.array([r.pk for r in library.recordings], dtype=np.int64)[index // per_recording]
    starts = (index % per_recording) * window_s
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO echoroo_clip (uuid, recording_id, start_time, end_time) "
            "SELECT gen_random_uuid(), r, s, s + %s FROM unnest(%s::bigint[], %s::float8[]) AS t(r, s) "
            "RETURNING id, recording_id",
            [window_s, recording_ids.tolist(), starts.tolist()],
        )
        returned = np.array(cursor.fetchall(), dtype=np.int64)
    returned = returned[np.argsort(returned[:, 0])]
    datasets = np.array([library.recording_dataset[r] for r in returned[:, 1].tolist()], dtype=np.int8)
    return returned[:, 0], datasets


# --- synthetic embeddings and the exact ranking ---------------------------------------------------------------------


def clustered_vectors(rows: int, queries: int, dimension: int, clusters: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Stored vectors and held-out queries, float16, from the same clusters.

    Like a model's embeddings: a shared offset (all similarities positive), a centre per cluster
    (sound type), cluster sizes skewed like species abundance, and within a cluster a few
    directions of variation (call variants, distance, noise) plus small isotropic noise.
    """
    unit = np.sqrt(dimension)
    offset = rng.normal(size=dimension) / unit
    centres = offset + rng.normal(size=(clusters, dimension)) / unit
    rank = 8
    bases = rng.normal(size=(clusters, dimension, rank)) * (0.6 / unit / np.sqrt(rank))
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.7
    weights /= weights.sum()

    def draw(count: int) -> np.ndarray:
        labels = rng.choice(clusters, size=count, p=weights)
        out = np.empty((count, dimension), dtype=np.float16)
        for cluster in np.unique(labels):
            where = np.flatnonzero(labels == cluster)
            spread = rng.normal(size=(len(where), rank)) @ bases[cluster].T
            noise = rng.normal(size=(len(where), dimension)) * (0.25 / unit)
            out[where] = (centres[cluster] + spread + noise).astype(np.float16)
        return out

    return draw(rows), draw(queries)


@dataclass
class Exact:
    """The exact cosine distances of every (row, query), and each query's 20th distance, unfiltered and filtered."""

    distances: np.ndarray  # [rows, queries] float32
    kth: np.ndarray  # [queries]
    kth_filtered: np.ndarray  # [queries]


def exact_ranking(vectors: np.ndarray, queries: np.ndarray, in_dataset: np.ndarray) -> Exact:
    q = queries.astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    distances = np.empty((len(vectors), len(queries)), dtype=np.float32)
    for start in range(0, len(vectors), 20_000):
        chunk = vectors[start : start + 20_000].astype(np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        distances[start : start + 20_000] = 1.0 - chunk @ q.T
    kth = np.partition(distances, LIMIT - 1, axis=0)[LIMIT - 1]
    kth_filtered = np.partition(distances[in_dataset], LIMIT - 1, axis=0)[LIMIT - 1]
    return Exact(distances, kth, kth_filtered)


def recall(found_rows: np.ndarray, distances: np.ndarray, kth: float) -> float:
    """The share of the exact top 20 found: results whose exact distance is at most the 20th (ties included)."""
    return min(LIMIT, int((distances[found_rows] <= kth + TIE).sum())) / LIMIT


# --- loading and indexing -------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One ModelRun of the benchmark and what was measured on it."""

    model: str
    dimension: int
    model_run: object
    figures: dict = field(default_factory=dict)


def sizes() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_table_size('embeddings_clipembedding'), pg_indexes_size('embeddings_clipembedding'),"
            " pg_total_relation_size('embeddings_clipembedding')"
        )
        table, indexes, total = cursor.fetchone()
    return {"table": table, "indexes": indexes, "total": total}


def index_bytes(model_run_id: int) -> int:
    from django.db import connection

    from embeddings.indexes import index_name

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_size(%s::regclass)", [index_name("clip", model_run_id)])
        return cursor.fetchone()[0]


def load(model_run_id: int, clip_ids: np.ndarray, vectors: np.ndarray, batch: int) -> list[float]:
    """Store the vectors through the app's storage path, `batch` rows a call; the seconds of each call."""
    from embeddings.storage import store_embeddings

    seconds = []
    for start in range(0, len(vectors), batch):
        started = time.perf_counter()
        added = store_embeddings("clip", clip_ids[start : start + batch], model_run_id, vectors[start : start + batch])
        seconds.append(time.perf_counter() - started)
        assert added == len(vectors[start : start + batch]), added
    return seconds


def build_index(model_run_id: int, dimension: int, settings: dict[str, str]) -> float:
    """CREATE INDEX (the app's ensure_hnsw_index) with `settings` SET for the session; seconds."""
    from django.db import connection

    from embeddings.indexes import ensure_hnsw_index

    with connection.cursor() as cursor:
        for name, value in settings.items():
            cursor.execute(f"SET {name} = %s", [value])
    started = time.perf_counter()
    ensure_hnsw_index("clip", model_run_id, dimension)
    elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        for name in settings:
            cursor.execute(f"RESET {name}")
    return elapsed


def analyze() -> None:
    """What autovacuum does soon after a bulk load: fresh planner statistics."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("echoroo_recording", "echoroo_clip", "embeddings_clipembedding"):
            cursor.execute(f"ANALYZE {table}")


def loaded(run: Run, clip_ids: np.ndarray, vectors: np.ndarray, batch: int, build: dict) -> Run:
    """Load one ModelRun, then build its index; record rates, times and sizes."""
    before = sizes()
    batches = load(run.model_run.pk, clip_ids, vectors, batch)
    load_s = sum(batches)
    figures = run.figures
    figures["load_s"] = round(load_s, 1)
    figures["load_rows_per_s"] = round(len(vectors) / load_s)
    figures["slowest_batch_rows_per_s"] = round(batch / max(batches[:-1] or batches))
    figures["index_build_s"] = round(build_index(run.model_run.pk, run.dimension, build), 1)
    figures["load_and_build_rows_per_s"] = round(len(vectors) / (load_s + figures["index_build_s"]))
    after = sizes()
    hnsw = index_bytes(run.model_run.pk)
    figures["hnsw_index_mb"] = round(hnsw / 1e6, 1)
    figures["hnsw_bytes_per_row"] = round(hnsw / len(vectors))
    figures["table_mb"] = round((after["table"] - before["table"]) / 1e6, 1)  # heap + TOAST of this run's rows
    figures["btree_indexes_mb"] = round((after["indexes"] - before["indexes"] - hnsw) / 1e6, 1)
    log(
        f"{run.model}: {len(vectors):,} rows stored in {load_s:.1f} s = {figures['load_rows_per_s']:,} rows/s "
        f"(slowest batch {figures['slowest_batch_rows_per_s']:,}/s), CREATE INDEX {figures['index_build_s']} s; "
        f"HNSW {figures['hnsw_index_mb']} MB, table {figures['table_mb']} MB, b-trees {figures['btree_indexes_mb']} MB"
    )
    return run


def compare_strategies(clip_ids, vectors, args, tuned: dict, server_default: str) -> dict:
    """The index strategies on the first --compare-rows rows of the 1,024-d data, each in a ModelRun of its own.

    Run last, so that these rows (deleted after) never skew the main runs' sizes.
    """
    from django.db import connection

    from echoroo.models import ModelRun
    from embeddings.indexes import ensure_hnsw_index, index_name

    m = min(args.compare_rows, len(vectors))
    compare = {"rows": m, "server_maintenance_work_mem": server_default, "tuned": tuned}
    strategies = {
        "index_maintained_during_load": None,  # the app's default: model_run_for creates the index with the run
        "after_load_tuned": tuned,
        "after_load_maintenance_work_mem_only": {**tuned, "max_parallel_maintenance_workers": "0"},
        "after_load_server_defaults": {},
    }
    for strategy, settings in strategies.items():
        run = ModelRun.objects.create(name=f"birdnet-{strategy}", version="bench", embedding_dimension=1024)
        if settings is None:
            ensure_hnsw_index("clip", run.pk, 1024)
        batches = load(run.pk, clip_ids[:m], vectors[:m], args.batch)
        build_s = build_index(run.pk, 1024, settings) if settings is not None else 0.0
        figures = {"load_s": round(sum(batches), 1), "build_s": round(build_s, 1)}
        figures["total_s"] = round(sum(batches) + build_s, 1)
        figures["rows_per_s"] = round(m / (sum(batches) + build_s))
        if settings is None:
            figures["first_batch_rows_per_s"] = round(len(vectors[: args.batch]) / batches[0])
            figures["last_batch_rows_per_s"] = round(len(vectors[(len(batches) - 1) * args.batch : m]) / batches[-1])
        figures["hnsw_index_mb"] = round(index_bytes(run.pk) / 1e6, 1)
        compare[strategy] = figures
        log(f"birdnet, first {m:,} rows, {strategy}: {figures}")
        with connection.cursor() as cursor:
            cursor.execute(f"DROP INDEX {index_name('clip', run.pk)}")
        run.delete()
    fastest = min((k for k in strategies), key=lambda k: compare[k]["total_s"])
    compare["fastest"] = fastest
    compare["index_maintained_vs_after_load_tuned"] = round(
        compare["index_maintained_during_load"]["total_s"] / compare["after_load_tuned"]["total_s"], 1
    )
    return compare


# --- searching ------------------------------------------------------------------------------------------------------


def percentiles(times_s: list[float]) -> dict[str, float]:
    ms = 1000 * np.asarray(times_s)
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


class Gunicorn:
    """The app served by a real gunicorn on loopback (DEBUG off), with one kept-alive connection to it."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = dict(
            os.environ,
            DEBUG="0",
            SECRET_KEY=secrets.token_urlsafe(50),
            SECURE_SSL_REDIRECT="0",
            ALLOWED_HOSTS="127.0.0.1",
            LOG_LEVEL="WARNING",
        )
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            "echoroo.wsgi",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--log-level",
            "warning",
        ]
        self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)
        self.connection = None
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = self.request("GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.5)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.connection.request(method, path, body=body, headers=headers or {})
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@dataclass
class Searcher:
    """Runs one query set against one ModelRun in every way measured."""

    run: Run
    queries: np.ndarray  # float16
    warmup: np.ndarray  # float16, other held-out vectors
    exact: Exact
    row_of: dict[int, int]  # clip id -> row
    dataset: object
    token: str
    client: object
    gunicorn: Gunicorn | None
    passes: int

    def service(self, vector, filtered: bool, **options):
        from search.services import search_similar

        results = search_similar(
            model_name=self.run.model_run.name,
            vector=vector,
            limit=LIMIT,
            min_similarity=-1.0,
            dataset=self.dataset if filtered else None,
            **options,
        )
        return [result.clip.pk for result in results]

    def body(self, vector, filtered: bool) -> bytes:
        request = {
            "embedding": vector.astype(np.float64).tolist(),
            "model_name": self.run.model_run.name,
            "limit": LIMIT,
            "min_similarity": -1.0,
        }
        if filtered:
            request["dataset"] = str(self.dataset.uuid)
        return json.dumps(request).encode()

    def test_client(self, vector, filtered: bool):
        response = self.client.post(
            SEARCH_URL,
            data=self.body(vector, filtered),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {self.token}",
        )
        assert response.status_code == 200, response.content[:500]
        return [self.clip_id_of[result["clip"]["uuid"]] for result in response.json()["results"]]

    def http(self, vector, filtered: bool):
        status, content = self.gunicorn.request(
            "POST",
            SEARCH_URL,
            body=self.body(vector, filtered),
            headers={"Content-Type": "application/json", "Authorization": f"Token {self.token}"},
        )
        assert status == 200, content[:500]
        return [self.clip_id_of[result["clip"]["uuid"]] for result in json.loads(content)["results"]]

    @functools.cached_property
    def clip_id_of(self) -> dict[str, int]:
        from echoroo.models import Clip

        clips = Clip.objects.filter(pk__gte=min(self.row_of), pk__lte=max(self.row_of)).values_list("pk", "uuid")
        return {str(u): pk for pk, u in clips.iterator(10_000)}

    def measure(self, how, filtered: bool, **options) -> dict:
        """Warm up on other vectors, then time every query `passes` times: p50/p95, best-of, recall@20."""
        for vector in self.warmup:
            how(vector, filtered, **options)
        n = len(self.queries)
        times = np.empty((self.passes, n))
        cpu = np.empty(n)
        recalls, counts = [], []
        kth = self.exact.kth_filtered if filtered else self.exact.kth
        for p in range(self.passes):
            for i, vector in enumerate(self.queries):
                started, started_cpu = time.perf_counter(), time.thread_time()
                found = how(vector, filtered, **options)
                times[p, i] = time.perf_counter() - started
                if p == 0:
                    cpu[i] = time.thread_time() - started_cpu
                    rows = np.array([self.row_of[clip_id] for clip_id in found], dtype=np.int64)
                    recalls.append(recall(rows, self.exact.distances[:, i], kth[i]))
                    counts.append(len(found))
        figures = percentiles(times[0])
        best = percentiles(times.min(axis=0))
        figures["best_p50_ms"], figures["best_p95_ms"] = best["p50_ms"], best["p95_ms"]
        figures["python_cpu_p50_ms"] = round(1000 * float(np.median(cpu)), 2)
        figures["recall_at_20"] = round(float(np.mean(recalls)), 4)
        figures["min_recall"] = round(float(np.min(recalls)), 2)
        figures["min_results"] = int(np.min(counts))
        figures["slowest_query"] = int(np.argmax(times.min(axis=0)))
        return figures

    def sql_times(self, filtered: bool, ef_search: int = 40, extra: tuple = ()) -> dict:
        """The server's execution time of the service's SQL for every query (EXPLAIN ANALYZE): p50/p95, and the
        share of the plans that walk the run's HNSW index (the planner may sort the run's rows exactly instead)."""
        from embeddings.indexes import index_name

        hnsw = index_name("clip", self.run.model_run.pk)
        times, walks = [], 0
        for i in range(len(self.queries)):
            plan = json.loads(explain(self, i, filtered, ef_search, json_format=True, extra=extra))[0]
            times.append(plan["Execution Time"] / 1000)
            walks += f'"Index Name": "{hnsw}"' in json.dumps(plan)
        figures = percentiles(times)
        return {
            "sql_p50_ms": figures["p50_ms"],
            "sql_p95_ms": figures["p95_ms"],
            "hnsw_plan_share": round(walks / len(self.queries), 3),
        }


def explain(
    searcher: Searcher, query: int, filtered: bool, ef_search: int = 40, json_format: bool = False, extra: tuple = ()
) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the service's own SQL for one query, with the service's settings (+ `extra`)."""
    from django.db import connection, transaction

    from search.queries import MAX_SCAN_TUPLES, Filters, nearest_clips_sql, vector_literal

    run = searcher.run
    filters = Filters(dataset_id=searcher.dataset.pk if filtered else None)
    sql, params = nearest_clips_sql(run.model_run.pk, run.dimension, filters, LIMIT)
    params[0] = vector_literal(searcher.queries[query].astype(np.float32))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', true),"
            " set_config('hnsw.max_scan_tuples', %s, true)",
            [str(max(ef_search, LIMIT)), str(MAX_SCAN_TUPLES)],
        )
        for setting in extra:
            cursor.execute(setting)
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS{', FORMAT JSON' if json_format else ''}) " + sql, params)
        rows = cursor.fetchall()
    if json_format:
        return json.dumps(rows[0][0])
    return "\n".join(re.sub(r"'\[[^]]*\]'", "'[...]'", row[0]) for row in rows)


def without_iterative_scan():
    """search.services with the iterative scan off: the monkeypatch behind the "no iterative scan" figures."""
    import search.services
    from search.queries import nearest_clips

    original = search.services.nearest_clips
    search.services.nearest_clips = functools.partial(nearest_clips, iterative_scan=False)
    return lambda: setattr(search.services, "nearest_clips", original)


def describe(f: dict) -> str:
    return (
        f"p50 {f['p50_ms']:6.2f} ms  p95 {f['p95_ms']:6.2f} ms  (best of passes: p50 {f['best_p50_ms']:6.2f}, "
        f"p95 {f['best_p95_ms']:6.2f}; python CPU p50 {f['python_cpu_p50_ms']:5.2f})  "
        f"recall@20 {f['recall_at_20']:.4f} (min {f['min_recall']:.2f}, fewest results {f['min_results']})"
    )


def search_figures(searcher: Searcher) -> dict:
    name = searcher.run.model
    figures = {}
    for filtered in (False, True):
        key = "filtered" if filtered else "unfiltered"
        figures[f"service_{key}"] = searcher.measure(searcher.service, filtered)
        figures[f"service_{key}"].update(searcher.sql_times(filtered))
        figures[f"api_test_client_{key}"] = searcher.measure(searcher.test_client, filtered)
        if searcher.gunicorn is not None:
            figures[f"api_gunicorn_{key}"] = searcher.measure(searcher.http, filtered)
        for how in ("service", "api_test_client", "api_gunicorn"):
            if f"{how}_{key}" in figures:
                log(f"{name} {how:15} {key:10} {describe(figures[f'{how}_{key}'])}")
        sql = figures[f"service_{key}"]
        log(
            f"{name} SQL execution   {key:10} p50 {sql['sql_p50_ms']:6.2f} ms  p95 {sql['sql_p95_ms']:6.2f} ms  "
            f"plans walking the HNSW index: {sql['hnsw_plan_share']:.0%}"
        )
    for ef in EF_SWEEP:
        for filtered in (False, True):
            key = "filtered" if filtered else "unfiltered"
            f = searcher.measure(searcher.service, filtered, ef_search=ef)
            f.update(searcher.sql_times(filtered, ef))
            figures[f"ef_search_{ef}_{key}"] = f
            log(
                f"{name} ef_search {ef:3}   {key:10} {describe(f)}  SQL p95 {f['sql_p95_ms']:.2f} ms, "
                f"HNSW plans {f['hnsw_plan_share']:.0%}"
            )
    restore = without_iterative_scan()
    try:
        f = searcher.measure(searcher.service, True)
    finally:
        restore()
    figures["no_iterative_scan_filtered"] = f
    log(f"{name} iterative scan off, filtered: {describe(f)}")
    for filtered in (False, True):
        key = "filtered" if filtered else "unfiltered"
        slowest = figures[f"service_{key}"]["slowest_query"]
        print(f"EXPLAIN ANALYZE, {name}, slowest {key} query (#{slowest}):\n{explain(searcher, slowest, filtered)}")
    return figures


# --- the changes proposed for search.queries and embeddings.indexes, measured by monkeypatching -------------------

# Proposed defaults: a larger candidate list (filters need more, since only a share of the candidates pass),
# and for searches without a selective filter, sorting disabled so that the planner cannot trade the HNSW walk for
# an exact sort of the whole run (it does at some ef_search values: see the README).
PROPOSED_EF_SEARCH = 100
PROPOSED_FILTERED_EF_SEARCH = 200
NO_SORT = ("SET LOCAL enable_sort = off",)


def proposed_queries():
    """search.services with the proposed query settings; returns the function that restores the original."""
    from django.db import connection, transaction

    import search.services
    from search import queries

    original = search.services.nearest_clips

    def nearest_clips(model_run_id, dimension, vector, filters, *, limit, ef_search=None, iterative_scan=True):
        selective = filters.needs_recording() or filters.recording_id is not None
        if ef_search is None:
            ef_search = PROPOSED_FILTERED_EF_SEARCH if selective else PROPOSED_EF_SEARCH
        # One transaction around the original's, so that SET LOCAL holds for its query.
        with transaction.atomic():
            if not selective:
                with connection.cursor() as cursor:
                    cursor.execute(NO_SORT[0])
            return queries.nearest_clips(
                model_run_id,
                dimension,
                vector,
                filters,
                limit=limit,
                ef_search=ef_search,
                iterative_scan=iterative_scan,
            )

    search.services.nearest_clips = nearest_clips
    return lambda: setattr(search.services, "nearest_clips", original)


def proposal_figures(searcher: Searcher, label: str) -> dict:
    """Service-level figures with the app's query settings and with the proposed ones, on the current index."""
    name = f"{searcher.run.model} [{label}]"
    figures = {}
    for filtered in (False, True):
        key = "filtered" if filtered else "unfiltered"
        f = searcher.measure(searcher.service, filtered)
        f.update(searcher.sql_times(filtered))
        figures[f"app_settings_{key}"] = f
        log(f"{name} app settings      {key:10} {describe(f)}  SQL p95 {f['sql_p95_ms']:.2f} ms")
        restore = proposed_queries()
        try:
            f = searcher.measure(searcher.service, filtered)
        finally:
            restore()
        ef = PROPOSED_FILTERED_EF_SEARCH if filtered else PROPOSED_EF_SEARCH
        f.update(searcher.sql_times(filtered, ef, () if filtered else NO_SORT))
        figures[f"proposed_settings_{key}"] = f
        log(
            f"{name} proposed settings {key:10} {describe(f)}  SQL p95 {f['sql_p95_ms']:.2f} ms, "
            f"HNSW plans {f['hnsw_plan_share']:.0%}"
        )
    return figures


def rebuild_index(run: Run, with_clause: str, settings: dict) -> dict:
    """Drop the run's index and build it again as ensure_hnsw_index does, plus `WITH (...)`: seconds and size."""
    from django.db import connection

    from embeddings.indexes import TABLES, index_name, indexed_expression

    table, _ = TABLES["clip"]
    name = index_name("clip", run.model_run.pk)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {name}")
        for setting, value in settings.items():
            cursor.execute(f"SET {setting} = %s", [value])
        started = time.perf_counter()
        cursor.execute(
            f"CREATE INDEX {name} ON {table} USING hnsw ({indexed_expression(run.dimension)} halfvec_cosine_ops) "
            f"WITH ({with_clause}) WHERE model_run_id = {int(run.model_run.pk)}"
        )
        build_s = time.perf_counter() - started
        for setting in settings:
            cursor.execute(f"RESET {setting}")
    figures = {"index_build_s": round(build_s, 1), "hnsw_index_mb": round(index_bytes(run.model_run.pk) / 1e6, 1)}
    log(f"{run.model}: index rebuilt WITH ({with_clause}) in {build_s:.1f} s, {figures['hnsw_index_mb']} MB")
    return figures


def proposal_summary(proposal: dict, ef_construction: int) -> dict:
    """The headline figures again (the worse model run) for each index and query-settings combination."""
    summary = {
        "proposed_query_settings": {
            "ef_search": PROPOSED_EF_SEARCH,
            "ef_search_filtered": PROPOSED_FILTERED_EF_SEARCH,
            "enable_sort_off_without_selective_filter": True,
        }
    }
    for index in ("index_as_built_by_the_app", f"rebuilt_ef_construction_{ef_construction}"):
        for settings in ("app_settings", "proposed_settings"):
            figures = [model[index] for model in proposal.values()]
            summary[f"{index}, {settings}"] = {
                "recall_at_20": min(f[f"{settings}_unfiltered"]["recall_at_20"] for f in figures),
                "recall_at_20_filtered": min(f[f"{settings}_filtered"]["recall_at_20"] for f in figures),
                "service_p95_ms": max(f[f"{settings}_unfiltered"]["p95_ms"] for f in figures),
                "filtered_service_p95_ms": max(f[f"{settings}_filtered"]["p95_ms"] for f in figures),
                "best_service_p95_ms": max(f[f"{settings}_unfiltered"]["best_p95_ms"] for f in figures),
                "best_filtered_service_p95_ms": max(f[f"{settings}_filtered"]["best_p95_ms"] for f in figures),
                "sql_p95_ms": max(f[f"{settings}_unfiltered"]["sql_p95_ms"] for f in figures),
                "filtered_sql_p95_ms": max(f[f"{settings}_filtered"]["sql_p95_ms"] for f in figures),
            }
    rebuilt = [model[f"rebuilt_ef_construction_{ef_construction}"] for model in proposal.values()]
    summary[f"rebuilt_ef_construction_{ef_construction}"] = {
        "index_build_s": max(f["index_build_s"] for f in rebuilt),
        "hnsw_index_mb": {
            model: f[f"rebuilt_ef_construction_{ef_construction}"]["hnsw_index_mb"] for model, f in proposal.items()
        },
    }
    return summary


def drop_key(tree, key: str) -> None:
    if isinstance(tree, dict):
        tree.pop(key, None)
        for value in tree.values():
            drop_key(value, key)


# --- the benchmark --------------------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    start_throwaway_django()

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from echoroo.models import ModelRun
    from inference.runtimes import runtime_class

    log(f"{os.cpu_count()} CPUs, shared with whatever else runs here (see the load average)")
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        pgvector = cursor.fetchone()[0]
        cursor.execute("SELECT current_setting('shared_buffers'), current_setting('maintenance_work_mem')")
        shared_buffers, maintenance_work_mem = cursor.fetchone()
    log(f"PostgreSQL {connection.pg_version}, pgvector {pgvector}, shared_buffers {shared_buffers}")

    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    library = make_library(args.rows)
    log(f"{DATASETS} datasets, {len(library.recordings):,} recordings in {time.perf_counter() - started:.1f} s")

    tuned = {
        "maintenance_work_mem": args.maintenance_work_mem,
        "max_parallel_maintenance_workers": str(args.parallel_workers),
    }
    runs: list[Run] = []
    data = {}
    clips_per_s = []
    for model, dimension, window_s in MODELS:
        started = time.perf_counter()
        clip_ids, clip_dataset = make_clips(library, args.rows, window_s)
        clips_per_s.append(args.rows / (time.perf_counter() - started))
        log(f"{model}: {args.rows:,} clips ({window_s:g} s) inserted at {clips_per_s[-1]:,.0f} clips/s")
        started = time.perf_counter()
        n_warmup = 20
        vectors, held_out = clustered_vectors(args.rows, args.queries + n_warmup, dimension, args.clusters, rng)
        queries, warmup = held_out[: args.queries], held_out[args.queries :]
        exact = exact_ranking(vectors, queries, clip_dataset == FILTERED_DATASET)
        log(
            f"{model}: generated {args.rows:,} x {dimension} vectors and the exact ranking in "
            f"{time.perf_counter() - started:.1f} s; "
            f"the filtered dataset holds {np.mean(clip_dataset == FILTERED_DATASET):.1%} of the rows"
        )
        data[model] = (clip_ids, queries, warmup, exact)
        if model == "birdnet":
            compare_data = (clip_ids, vectors)
        # The ModelRun as model_run_for makes it, but without its index: that is built after the load.
        runtime = runtime_class(model)
        model_run = ModelRun.objects.create(
            name=runtime.name,
            version=runtime.version,
            embedding_dimension=runtime.embedding_dim,
            segment_duration=runtime.window_s,
            sample_rate=runtime.sample_rate,
        )
        assert runtime.embedding_dim == dimension
        runs.append(loaded(Run(model, dimension, model_run), clip_ids, vectors, args.batch, tuned))
        del vectors, held_out

    analyze()
    table = sizes()
    log(f"ANALYZEd; the embeddings table in all (bytes): {table}")

    user = get_user_model().objects.create_user("benchmark", password=secrets.token_urlsafe())
    token = Token.objects.create(user=user).key
    client = Client(SERVER_NAME="localhost")  # ALLOWED_HOSTS has no "testserver" outside tests
    gunicorn = None if args.no_gunicorn else Gunicorn()
    searchers = []
    try:
        for run in runs:
            clip_ids, queries, warmup, exact = data[run.model]
            searcher = Searcher(
                run=run,
                queries=queries,
                warmup=warmup,
                exact=exact,
                row_of={int(pk): row for row, pk in enumerate(clip_ids)},
                dataset=library.datasets[FILTERED_DATASET],
                token=token,
                client=client,
                gunicorn=gunicorn,
                passes=args.passes,
            )
            searchers.append(searcher)
            run.figures.update(search_figures(searcher))
    finally:
        if gunicorn is not None:
            gunicorn.stop()

    proposal = {}
    if args.ef_construction:
        with_clause = f"m = 16, ef_construction = {args.ef_construction}"
        for searcher in searchers:
            figures = proposal.setdefault(searcher.run.model, {})
            figures["index_as_built_by_the_app"] = proposal_figures(searcher, "app's index")
            figures[f"rebuilt_ef_construction_{args.ef_construction}"] = rebuilt = rebuild_index(
                searcher.run, with_clause, tuned
            )
            rebuilt.update(proposal_figures(searcher, f"ef_construction {args.ef_construction}"))

    compare = compare_strategies(*compare_data, args, tuned, maintenance_work_mem) if args.compare_rows else {}
    api = "api_gunicorn" if gunicorn is not None else "api_test_client"

    def worst(key: str, figure: str, pick=max):
        return pick(run.figures[key][figure] for run in runs)

    summary = {
        "rows": args.rows,
        # store_embeddings with no HNSW index in place (built after the load), the slower run.
        "load_rows_per_s": min(run.figures["load_rows_per_s"] for run in runs),
        # CREATE INDEX after the load, with the tuned session settings, the slower run.
        "index_build_s": max(run.figures["index_build_s"] for run in runs),
        "recall_at_20": worst("service_unfiltered", "recall_at_20", min),
        "recall_at_20_filtered": worst("service_filtered", "recall_at_20", min),
        "service_p95_ms": worst("service_unfiltered", "p95_ms"),
        "api_p95_ms": worst(f"{api}_unfiltered", "p95_ms"),
        "filtered_service_p95_ms": worst("service_filtered", "p95_ms"),
        "filtered_api_p95_ms": worst(f"{api}_filtered", "p95_ms"),
        "api_via": "gunicorn on loopback (2 workers x 4 threads, DEBUG off)" if gunicorn else "Django test Client",
        "best_of_passes": {
            "service_p95_ms": worst("service_unfiltered", "best_p95_ms"),
            "api_p95_ms": worst(f"{api}_unfiltered", "best_p95_ms"),
            "filtered_service_p95_ms": worst("service_filtered", "best_p95_ms"),
            "filtered_api_p95_ms": worst(f"{api}_filtered", "best_p95_ms"),
            "api_test_client_p95_ms": worst("api_test_client_unfiltered", "best_p95_ms"),
        },
        "sql_p95_ms": worst("service_unfiltered", "sql_p95_ms"),
        "filtered_sql_p95_ms": worst("service_filtered", "sql_p95_ms"),
        "load_and_build_rows_per_s": min(run.figures["load_and_build_rows_per_s"] for run in runs),
        "clips_per_s": round(min(clips_per_s)),
        "index_strategies": compare,
        "proposal": proposal_summary(proposal, args.ef_construction) if proposal else {},
        "shared_buffers": shared_buffers,
        "embeddings_table_total_mb": round(table["total"] / 1e6, 1),
        "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        "runs": {run.model: run.figures for run in runs},
        "proposal_details": proposal,
    }
    drop_key(summary, "slowest_query")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
