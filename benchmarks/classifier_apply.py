"""Benchmark: applying a trained classifier to every stored embedding of a model run, against a naive ORM loop.

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/classifier_apply.py --rows 200000

It starts a throw-away embedded PostgreSQL server in a temporary directory (deleted at the end),
migrates it, loads --rows 1,024-d embeddings with COPY (embeddings.storage) on as many 3-second
clips, one in ten of them a planted cluster around one direction, labels 50 of those and 200
others, trains a classifier (classifiers.services.train_classifier) and applies it in-process
(the apply job's own code, classifiers.applying.run_apply_job) twice: first in line on one
connection (no thread reading ahead, no writer threads), then, after emptying the prediction
tables, as the job runs in a worker (what the last line reports). A sampling thread records the
process's peak resident memory while it applies. Then a naive baseline, on --baseline-rows of
the same embeddings: the ORM's rows (halfvec parsed from text), one score at a time, and one
ClipPrediction and one ClipPredictionTag created per row. The last line of output is one JSON
object: {"rows": N, "scored_per_s": x, "peak_rss_mb": m}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

DIMENSION = 1024
CLIPS_PER_RECORDING = 1200  # an hour of 3-second windows
LABEL = "Planted call"


from throwaway import start_throwaway_django  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="embeddings to load and score (default 200,000)")
    parser.add_argument(
        "--baseline-rows", type=int, default=5_000, help="embeddings the naive baseline scores (default 5,000)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="rows per batch (default: the job's own)")
    parser.add_argument("--writers", type=int, default=None, help="writer connections (default: the job's own)")
    parser.add_argument(
        "--read-ahead", type=int, default=None, help="batches read ahead, 0 for none (default: the job's own)"
    )
    return parser.parse_args()


class PeakMemory:
    """The process's peak resident memory, sampled every few milliseconds by a thread."""

    def __init__(self, every_s: float = 0.005):
        import psutil

        self.process = psutil.Process()
        self.every_s = every_s
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def load(rows: int) -> tuple:
    """`rows` clips over hour-long recordings, each with a 1,024-d embedding; one in ten planted near one direction."""
    from django.db import connection

    from echoroo.models import Dataset, ModelRun, Recording
    from embeddings.storage import store_embeddings

    dataset = Dataset.objects.create(name="Benchmark")
    recordings = Recording.objects.bulk_create(
        Recording(
            dataset=dataset,
            path=f"rec{r:05d}.wav",
            sha256=f"{r:064x}",
            duration=3.0 * CLIPS_PER_RECORDING,
            samplerate=48_000,
            channels=1,
        )
        for r in range(-(-rows // CLIPS_PER_RECORDING))
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO echoroo_clip (uuid, recording_id, start_time, end_time) "
            "SELECT gen_random_uuid(), r.id, 3 * w, 3 * w + 3 FROM unnest(%s::bigint[]) AS r(id), "
            "generate_series(0, %s - 1) AS w",
            [[r.pk for r in recordings], CLIPS_PER_RECORDING],
        )
        cursor.execute("SELECT id FROM echoroo_clip ORDER BY id LIMIT %s", [rows])
        clip_ids = np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)

    run = ModelRun.objects.create(name="birdnet-like", version="1", embedding_dimension=DIMENSION)
    rng = np.random.default_rng(0)
    direction = rng.normal(size=DIMENSION).astype(np.float32)
    direction /= np.linalg.norm(direction)
    positive = rng.random(rows) < 0.1
    for start in range(0, rows, 20_000):
        part = slice(start, start + 20_000)
        vectors = rng.normal(size=(len(clip_ids[part]), DIMENSION)).astype(np.float32)
        vectors[positive[part]] += 6.0 * direction
        store_embeddings("clip", clip_ids[part], run.id, vectors.astype(np.float16))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE embeddings_clipembedding")
        cursor.execute("VACUUM ANALYZE echoroo_clip")
    return run, clip_ids, positive


def train(run, clip_ids: np.ndarray, positive: np.ndarray, user):
    from classifiers import services
    from echoroo.models import Clip

    uuids = dict(Clip.objects.filter(id__in=clip_ids[:5000].tolist()).values_list("id", "uuid"))
    first = clip_ids[:5000]
    services.label_clips([uuids[i] for i in first[positive[:5000]][:50]], label=LABEL, polarity="positive", by=user)
    services.label_clips([uuids[i] for i in first[~positive[:5000]][:200]], label=LABEL, polarity="negative", by=user)
    return services.train_classifier(label=LABEL, source=run, by=user)


def read_and_score_only(classifier, batch_size: int) -> float:
    """Rows per second of the read and score half alone (nothing written)."""
    from classifiers.training import sigmoid_scores
    from embeddings.vectors import embedding_batches

    began, rows = time.perf_counter(), 0
    for batch in embedding_batches("clip", classifier.source_id, batch_size=batch_size):
        sigmoid_scores(batch.vectors, classifier.weights, classifier.intercept)
        rows += len(batch)
    return rows / (time.perf_counter() - began)


def naive_baseline(classifier, rows: int) -> float:
    """The obvious ORM code: iterate the rows (halfvec parsed from text), score each, create two rows each."""
    from django.db import transaction

    from classifiers.training import sigmoid_scores
    from echoroo.models import SPECIES, ClipPrediction, ClipPredictionTag, ModelRun, Tag
    from embeddings.models import ClipEmbedding

    naive_run = ModelRun.objects.create(
        name="naive baseline", version="1", kind=ModelRun.Kind.CLASSIFIER, source=classifier.source
    )
    tag, _ = Tag.objects.get_or_create(key=SPECIES, value="naive baseline")
    weights, intercept = classifier.weights, classifier.intercept
    began = time.perf_counter()
    with transaction.atomic():
        embeddings = ClipEmbedding.objects.filter(model_run=classifier.source).order_by("clip_id")[:rows]
        for embedding in embeddings.iterator(chunk_size=1000):
            score = float(
                sigmoid_scores(np.asarray(embedding.embedding, dtype=np.float32)[None], weights, intercept)[0]
            )
            prediction = ClipPrediction.objects.create(clip_id=embedding.clip_id, model_run=naive_run)
            ClipPredictionTag.objects.create(clip_prediction=prediction, tag=tag, score=score)
    elapsed = time.perf_counter() - began
    assert ClipPrediction.objects.filter(model_run=naive_run).count() == rows
    return rows / elapsed


def apply(classifier, user, rows: int, batch_size: int, *, writers: int, read_ahead: int) -> tuple[float, float]:
    """Run an apply job here, as a worker would; (embeddings per second, peak RSS MB while it ran)."""
    import psutil

    from classifiers import applying
    from classifiers.models import ClassifierJob
    from echoroo.models import ClipPrediction

    applying.READ_AHEAD = read_ahead
    rss_before_mb = psutil.Process().memory_info().rss / 2**20
    job = ClassifierJob.objects.create(classifier=classifier, created_by=user)
    with PeakMemory() as memory:
        began = time.perf_counter()
        state = applying.run_apply_job(job.pk, batch_size=batch_size, writers=writers)
        elapsed = time.perf_counter() - began
    job.refresh_from_db()
    stored = ClipPrediction.objects.filter(model_run=classifier.model_run).count()
    assert state == ClassifierJob.Status.COMPLETED and job.processed_clips == stored == rows, (state, stored)
    print(
        f"apply job, {writers} writer thread(s), {read_ahead} batch(es) read ahead: {rows:,} embeddings scored and "
        f"stored in {elapsed:.1f} s = {rows / elapsed:,.0f}/s (batches of {batch_size:,}); RSS "
        f"{rss_before_mb:.0f} MB before, peak {memory.peak_mb:.0f} MB; load average {os.getloadavg()[0]:.1f}"
    )
    return rows / elapsed, memory.peak_mb


def main() -> None:
    args = parse_args()
    start_throwaway_django()

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from classifiers import applying, services

    call_command("migrate", verbosity=0)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other work on the host slows every figure)")
    batch_size = args.batch_size or applying.BATCH_SIZE
    writers = applying.WRITERS if args.writers is None else args.writers
    read_ahead = applying.READ_AHEAD if args.read_ahead is None else args.read_ahead
    started = time.perf_counter()
    run, clip_ids, positive = load(args.rows)
    print(f"loaded {args.rows:,} {DIMENSION}-d embeddings in {time.perf_counter() - started:.1f} s")

    user = get_user_model().objects.create_user("benchmark")
    started = time.perf_counter()
    classifier = train(run, clip_ids, positive, user)
    m = classifier.metrics
    print(
        f"trained on {m['n_positive']} + {m['n_negative']} labels in {time.perf_counter() - started:.2f} s: "
        f"held-out ROC AUC {m['roc_auc']:.3f}, precision {m['precision']:.2f}, recall {m['recall']:.2f}"
    )

    read_rate = read_and_score_only(classifier, batch_size)
    print(f"read + score only (nothing written): {read_rate:,.0f} rows/s")

    # First in line, as one connection would do it, then as the job does (threads reading ahead and writing).
    in_line_per_s, in_line_peak_mb = apply(classifier, user, args.rows, batch_size, writers=0, read_ahead=0)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE echoroo_clippredictiontag, echoroo_clipprediction")
    scored_per_s, peak_mb = apply(classifier, user, args.rows, batch_size, writers=writers, read_ahead=read_ahead)
    print(f"the job's way: {scored_per_s / in_line_per_s:.1f}x in line")

    labels_found = services.uncertain_clips(classifier, limit=20)
    began = time.perf_counter()
    services.uncertain_clips(classifier, limit=20)
    print(
        f"uncertain clips from the stored predictions: {1000 * (time.perf_counter() - began):.0f} ms "
        f"({len(labels_found.clips)} clips)"
    )

    baseline_rows = min(args.baseline_rows, args.rows)
    naive = naive_baseline(classifier, baseline_rows)
    print(
        f"naive baseline (ORM rows, text halfvec, one create per row) on {baseline_rows:,} rows: {naive:,.0f}/s "
        f"= {scored_per_s / naive:.0f}x slower"
    )
    print(json.dumps({"rows": args.rows, "scored_per_s": round(scored_per_s), "peak_rss_mb": round(peak_mb)}))


if __name__ == "__main__":
    main()
