"""Storage of BirdNET results: windows stored per second with raw output, embeddings and detections.

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/storage.py [--recordings 40] [--windows 1200] [--writers 1]

It makes a throw-away embedded PostgreSQL server (removed at the end, also on failure), creates
2 x --recordings recordings of --windows BirdNET windows each (3 s, no overlap: 1,200 windows is an
hour) and stores synthetic results for each through the app's own path,
`inference.storage.store_recording_results`, as a job's task does after the model ran: the
clips, the raw output (ClipOutput: every label with a logit at or above the storage floor of
PREDICTION_FLOOR), the 1,024-d embeddings (halfvec, binary COPY), the job's window detections and
its merged detections. The results are drawn once, before the clock starts, so only storage is
timed:

- each window passes the floor with 1 to 20 of BirdNET's 6,522 labels (mean about 7; labels drawn
  from a pool of 60 species a recording, as at one site), logits at the floor plus an exponential
  tail, so about 1 in 20 reaches the default threshold 0.5; the job's selection and merged
  detections are computed from them by the app's own code (Selection.hits, DetectionMerger);
- embeddings are non-negative clustered vectors like BirdNET's (pooled activations).

Two loads, each into a model run of its own and onto recordings of its own:

- index_maintained: the run's HNSW index exists during the load, as for a small job (every row
  inserted into the graph as it is written; before the index was deferred, every job);
- index_deferred: the run's index is deferred (`embeddings.indexes.defer_index`, what starting a
  large job does; a load too small for the app's rule has it dropped here) and built after the
  load (`embeddings.indexes.build_index_if_needed`, what the end of the job queues: CREATE INDEX
  CONCURRENTLY); the build is timed apart.

With --writers N, N processes store recordings at once (as N workers do); the figure is all
windows over the wall time of the load.

stderr shows where the time went: the CPU seconds of PostgreSQL and of Python in each phase, the
steps of store_recording_results (clips, tags, raw output, window detections, merged detections,
embeddings; what is left is the commit, where the deferred foreign-key checks run) and the SQL
statements by their first words, and the machine's load (other processes on a shared machine
lower the figures: rerun when it is quiet). The last line of stdout is one JSON object: windows_per_s_index_maintained,
windows_per_s_index_deferred, index_build_s, windows_per_s_deferred_with_build,
deferred_vs_maintained, goal_windows_per_s (5,000), goal_met, and the sizes of the load.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_WINDOWS_PER_S = 5_000
WINDOW_S = 3.0
DIMENSION = 1024
SPECIES_PER_RECORDING = 60
MAX_LABELS_PER_WINDOW = 20
# The steps of store_recording_results, timed by wrapping the names inference.storage calls them by.
STEPS = (
    "_clip_ids",
    "_species_tag_ids",
    "write_outputs",
    "_replace_clip_predictions",
    "_replace_detections",
    "store_embeddings",
)
SLOWEST_STATEMENTS = 8

sys.path.insert(0, str(ROOT))
from benchmarks.end_to_end import MachineLoad, log, own_cpu_s, postgres_cpu_seconds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=40, help="recordings in each load (default 40)")
    parser.add_argument("--windows", type=int, default=1200, help="3 s windows a recording (default 1200: 1 h)")
    parser.add_argument("--writers", type=int, default=1, help="processes storing at once (default 1)")
    args = parser.parse_args()
    if args.recordings < 1 or args.windows < 1 or args.writers < 1:
        parser.error("--recordings, --windows and --writers must be at least 1")

    # A plain `kill` ends the run as Ctrl-C does: the temporary folder is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    pgdata = Path(tempfile.mkdtemp(prefix="echoroo-bench-pg-"))
    # pgserver (registered on the first connection) stops and deletes its server before this runs.
    atexit.register(shutil.rmtree, pgdata, ignore_errors=True)
    # settings.py reads these; they must be set before Django is. Never the configured server.
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ["ECHOROO_PGDATA"] = str(pgdata)
    os.environ["DJANGO_SETTINGS_MODULE"] = "echoroo.settings"
    import django
    from django.conf import settings

    settings.DATABASES["default"]["PGDATA_CLEANUP"] = "delete"  # the server removes its data when we exit
    django.setup()
    try:
        figures = run(args.recordings, args.windows, args.writers)
    finally:
        from django.db import connections

        connections.close_all()
        if args.writers > 1:
            from echoroo.embedded import forget_dead_processes

            # Writer processes leave without telling pgserver; forget them so that this process,
            # the last user, stops and deletes the server on exit.
            forget_dead_processes(pgdata)
    print(json.dumps(figures))


def run(n_recordings: int, n_windows: int, writers: int) -> dict:
    from django.core.management import call_command

    from inference.runtimes.birdnet import package_labels

    call_command("migrate", verbosity=0)
    label_names = tuple(label.name for label in package_labels())
    started = time.perf_counter()
    maintained_run, maintained_job, maintained_recordings = make_target("maintained", n_recordings, n_windows)
    deferred_run, deferred_job, deferred_recordings = make_target("deferred", n_recordings, n_windows)
    results = [synthetic_results(seed, n_windows, label_names) for seed in range(n_recordings)]
    windows = n_recordings * n_windows
    entries = sum(int(result.outputs.offsets[-1]) for result in results)
    hits = sum(len(window) for result in results for window in result.hits)
    detections = sum(len(result.detections) for result in results)
    log(
        f"{2 * n_recordings} recordings of {n_windows} windows made, results drawn in "
        f"{time.perf_counter() - started:.1f} s: a load is {windows} windows, {entries} label logits above the "
        f"floor ({entries / windows:.1f} a window), {hits} window detections, {detections} merged detections"
    )

    from embeddings.indexes import build_index_if_needed, defer_index, ensure_hnsw_index, index_state

    ensure_hnsw_index("clip", maintained_run.pk, DIMENSION)
    with Phase("the load with the index maintained"):
        maintained_s, maintained_steps = store_all(maintained_job, maintained_recordings, results, writers)
    log(f"index maintained: {windows} windows in {maintained_s:.2f} s = {windows / maintained_s:.0f} windows/s")
    show_steps(maintained_steps, maintained_s * writers)

    ensure_hnsw_index("clip", deferred_run.pk, DIMENSION)  # as model_run_for makes it for a new run
    if not defer_index(deferred_run.pk, expected_rows=windows):
        log(f"a load of {windows} rows is too small for the app to defer the index; dropped here to measure it")
        drop_index(deferred_run.pk)
    assert index_state("clip", deferred_run.pk) == "missing"
    with Phase("the load with the index deferred"):
        deferred_s, deferred_steps = store_all(deferred_job, deferred_recordings, results, writers)
    log(f"index deferred: {windows} windows in {deferred_s:.2f} s = {windows / deferred_s:.0f} windows/s")
    show_steps(deferred_steps, deferred_s * writers)
    with Phase("the index build"):
        started = time.perf_counter()
        outcome = build_index_if_needed("clip", deferred_run.pk, DIMENSION)
        build_s = time.perf_counter() - started
    assert outcome == "built" and index_state("clip", deferred_run.pk) == "valid", outcome
    log(f"index built after the load (CREATE INDEX CONCURRENTLY) in {build_s:.2f} s ({windows / build_s:.0f} rows/s)")

    maintained_rate, deferred_rate = windows / maintained_s, windows / deferred_s
    with_build = windows / (deferred_s + build_s)
    goal_met = deferred_rate >= GOAL_WINDOWS_PER_S
    log(
        f"goal {GOAL_WINDOWS_PER_S} windows/s: {'met' if goal_met else 'NOT met'} with the index deferred "
        f"({deferred_rate:.0f}); {with_build:.0f} windows/s counting the build; maintained {maintained_rate:.0f}"
    )
    return {
        "windows_per_s_index_maintained": round(maintained_rate),
        "windows_per_s_index_deferred": round(deferred_rate),
        "index_build_s": round(build_s, 2),
        "windows_per_s_deferred_with_build": round(with_build),
        "deferred_vs_maintained": round(deferred_rate / maintained_rate, 2),
        "goal_windows_per_s": GOAL_WINDOWS_PER_S,
        "goal_met": goal_met,
        "recordings": n_recordings,
        "windows_per_recording": n_windows,
        "writers": writers,
        "label_logits_per_window": round(entries / windows, 2),
        "window_detections": hits,
        "merged_detections": detections,
        "cores": os.cpu_count(),
    }


class Phase:
    """A timed phase: the CPU the embedded server used in it, and a warning when other processes used the machine."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Phase:
        self.load = MachineLoad()
        self.pg_before = postgres_cpu_seconds()
        self.own_before = own_cpu_s()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            return
        wall = time.perf_counter() - self.started
        pg = postgres_cpu_seconds() - self.pg_before
        own = own_cpu_s() - self.own_before
        log(f"{self.name}: {wall:.2f} s; CPU: PostgreSQL {pg:.2f} s, Python (this process and writers) {own:.2f} s")
        self.load.check(self.name, also_ours=pg)


def drop_index(model_run_id: int) -> None:
    from django.db import connection

    from embeddings.indexes import index_name

    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {index_name('clip', model_run_id)}")


def make_target(name: str, n_recordings: int, n_windows: int):
    """A model run, a dataset of recordings and a running job on it: what a job's tasks store into."""
    from django.utils import timezone

    from echoroo.models import Dataset, ModelRun, Recording
    from inference.config import InferenceConfig
    from inference.models import InferenceJob

    model_run = ModelRun.objects.create(
        name="birdnet",
        version=f"2.4-{name}",
        embedding_dimension=DIMENSION,
        segment_duration=WINDOW_S,
        sample_rate=48_000,
    )
    dataset = Dataset.objects.create(name=f"Storage {name}")
    recordings = Recording.objects.bulk_create(
        Recording(
            dataset=dataset,
            path=f"{name}/r{i:03d}.wav",
            sha256=f"{hash((name, i)) & (2**256 - 1):064x}",
            duration=n_windows * WINDOW_S,
            samplerate=48_000,
            channels=1,
        )
        for i in range(n_recordings)
    )
    job = InferenceJob.objects.create(
        model_run=model_run,
        dataset=dataset,
        config=InferenceConfig().as_json(),
        status=InferenceJob.Status.RUNNING,
        started_at=timezone.now(),
    )
    return model_run, job, [recording.pk for recording in recordings]


def synthetic_results(seed: int, n_windows: int, label_names: tuple[str, ...]):
    """One recording's RecordingResults as the pipeline gives them (see the module's docstring)."""
    import numpy as np
    from django.conf import settings

    from inference.config import InferenceConfig
    from inference.pipeline import BatchResult, DetectionMerger
    from inference.runtimes.birdnet import BirdNetRuntime
    from inference.selection import Selection, WindowOutputs, storage_floor
    from inference.storage import RecordingResults

    rng = np.random.default_rng(seed)
    floor = storage_floor(settings.PREDICTION_FLOOR)
    pool = rng.choice(len(label_names), SPECIES_PER_RECORDING, replace=False)
    counts = np.clip(rng.geometric(1 / 7, n_windows), 1, MAX_LABELS_PER_WINDOW)
    labels, logits = [], []
    for count in counts:
        labels.append(np.sort(rng.choice(pool, count, replace=False)).astype(np.int64))
        logits.append((floor + rng.exponential(1.5, count)).astype(np.float32))
    outputs = WindowOutputs.from_lists(labels, logits)
    starts = np.arange(n_windows) * WINDOW_S
    ends = starts + WINDOW_S
    config = InferenceConfig()
    selection = Selection(config.confidence_threshold, config.sensitivity, None, BirdNetRuntime.scores)
    batch = BatchResult(starts_s=starts, ends_s=ends, embeddings=None, hits=selection.hits(outputs))
    merger = DetectionMerger()
    detections = merger.add(batch) + merger.finish()
    centres = rng.gamma(1.0, 0.6, size=(8, DIMENSION))
    embeddings = centres[rng.integers(0, len(centres), n_windows)] * rng.uniform(0.6, 1.4, (n_windows, 1))
    embeddings = np.maximum(embeddings + rng.normal(0, 0.15, embeddings.shape), 0).astype(np.float16)
    return RecordingResults(
        starts_s=starts,
        ends_s=ends,
        hits=batch.hits,
        detections=detections,
        label_names=label_names,
        outputs=outputs,
        floor_logit=floor,
        embeddings=embeddings,
    )


def store_all(job, recording_ids: list[int], results: list, writers: int) -> tuple[float, dict]:
    """Store every recording's results for the job; (wall seconds, the steps' timings summed over writers)."""
    if writers == 1:
        timer = StepTimer()
        started = time.perf_counter()
        store_some(job, list(zip(recording_ids, results, strict=True)), timer)
        return time.perf_counter() - started, timer.take()
    from django.db import connections

    connections.close_all()  # each writer opens its own connection
    context = multiprocessing.get_context("fork")
    shares = [list(zip(recording_ids, results, strict=True))[i::writers] for i in range(writers)]
    with context.Pool(writers) as pool:
        started = time.perf_counter()
        taken = pool.starmap(_store_in_writer, [(job.pk, share) for share in shares])
        wall = time.perf_counter() - started
    steps, statements = defaultdict(float), defaultdict(lambda: [0, 0.0])
    for writer_steps, writer_statements in taken:
        for step, seconds in writer_steps.items():
            steps[step] += seconds
        for sql, (count, seconds) in writer_statements.items():
            statements[sql][0] += count
            statements[sql][1] += seconds
    return wall, (dict(steps), dict(statements))


def _store_in_writer(job_id: int, share: list) -> tuple[dict, dict]:
    from inference.models import InferenceJob

    timer = StepTimer()
    store_some(InferenceJob.objects.select_related("model_run").get(pk=job_id), share, timer)
    from django.db import connection

    connection.close()
    return timer.take()


def store_some(job, share: list, timer: StepTimer) -> None:
    from django.db import connection

    from inference import storage

    config = job.settings
    with connection.execute_wrapper(timer.statement):
        for recording_id, results in share:
            started = time.perf_counter()
            counts = storage.store_recording_results(recording_id, job.model_run_id, job.pk, results, config=config)
            timer.seconds["store_recording_results (all)"] += time.perf_counter() - started
            assert counts.embeddings == counts.clips == len(results.starts_s), counts


class StepTimer:
    """Wall time of each step of store_recording_results, by wrapping the functions inference.storage calls."""

    def __init__(self) -> None:
        import inference.storage as storage

        self.seconds: dict[str, float] = defaultdict(float)
        self.statements: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        for step in STEPS:
            function = getattr(storage, step, None)
            if function is None:  # a step renamed in storage is not timed, and the run goes on
                log(f"inference.storage has no {step} any more: not timed")
                continue
            original = getattr(function, "__wrapped__", function)
            setattr(storage, step, self._timed(step, original))

    def _timed(self, step: str, original):
        @functools.wraps(original)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[step] += time.perf_counter() - started

        return timed

    def statement(self, execute, sql, params, many, context):
        """A connection.execute_wrapper: time and count each SQL statement, by its first words."""
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            seen = self.statements[" ".join(sql.split())[:72]]
            seen[0] += 1
            seen[1] += time.perf_counter() - started

    def take(self) -> tuple[dict[str, float], dict[str, list[float]]]:
        taken = dict(self.seconds), dict(self.statements)
        self.seconds, self.statements = defaultdict(float), defaultdict(lambda: [0, 0.0])
        return taken


def show_steps(taken: tuple[dict[str, float], dict[str, list[float]]], busy_s: float) -> None:
    """Where the load's time went: the steps of store_recording_results, then the slowest SQL statements."""
    steps, statements = taken
    for step, seconds in sorted(steps.items(), key=lambda item: -item[1]):
        log(f"  {step:<28} {seconds:8.3f} s  {100 * seconds / busy_s:5.1f} %")
    in_sql = sum(seconds for _, seconds in statements.values())
    log(f"  SQL through the cursor: {sum(count for count, _ in statements.values())} statements, {in_sql:.3f} s:")
    for sql, (count, seconds) in sorted(statements.items(), key=lambda item: -item[1][1])[:SLOWEST_STATEMENTS]:
        log(f"    {seconds:8.3f} s  x{count:<4} {sql}")


if __name__ == "__main__":
    main()
