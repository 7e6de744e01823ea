"""BirdNET end to end: the pipeline alone, the bare model, and a job run by the default worker cluster.

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/end_to_end.py [--files 60]

It writes `--files` distinct one-minute recordings made from tests/data/1min.wav (each with
its own gain and a few samples of tiny noise, so no two files are alike) into a temporary
AUDIO_ROOT, imports them into a throw-away embedded PostgreSQL server (both temporary folders are
removed at the end, also on failure), and measures, in seconds of audio per second:

- pipeline: `inference.pipeline.run_recording` on one file in this process, BirdNET with one
  interpreter thread, the job's default options (threshold, batch size, embeddings kept, raw output
  kept down to the storage floor of PREDICTION_FLOOR); best of 3;
- bare_model_1thread: `BirdNetRuntime(num_threads=1).predict` on ready 48 kHz windows in batches
  of the job's default size; best of 3;
- end_to_end: a BirdNET job over the dataset with the default config, run by `manage.py qcluster`
  as the README's first command starts it (Q_WORKERS unset: one worker process per core), timed
  from `start_job` to the job's `completed_at`, when every row is written. The cluster is up
  (every worker "ready for work") before the clock starts, but no worker has loaded the model
  yet: each worker loads it in its first task, and that load is part of the measured time, as it
  is in real use. The model copy with the embedding output (ECHOROO_CACHE_DIR) is made before,
  so no worker has to make it.

Beside these, stderr shows where the time went: the bare model in `cores` processes at once (what
the cluster could reach on this machine), decoding alone, each worker's busy time, model load,
gaps between tasks, CPU used by workers and PostgreSQL, and a warning for each phase during
which other processes used more than 10 % of the machine (on a shared 2-core machine that
lowers every figure: rerun when it is quiet).

Progress goes to stderr; the last line of stdout is one JSON object:
`{"pipeline", "bare_model_1thread", "end_to_end", "cores", "end_to_end_vs_limit" (= end_to_end /
(cores x bare_model_1thread)), "storage_share" (= time writing rows / time in inference, summed
over the job's recordings; the rows include the model's raw output, ClipOutput), "embeddings_per_s",
"clip_predictions" and "detections" (the job's own rows), "raw_output_rows" and "raw_output_entries"
(ClipOutput rows and the label logits in them)}`.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "data" / "1min.wav"
READY_TIMEOUT_S = 180
JOB_TIMEOUT_S = 3600
STOP_GRACE_S = 30
REPEATS = 3


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=60, help="one-minute recordings in the dataset (default 60)")
    args = parser.parse_args()
    if args.files < 1:
        parser.error("--files must be at least 1")
    if not SOURCE.is_file():
        sys.exit(f"{SOURCE} is missing")

    # A plain `kill` ends the run as Ctrl-C does: the cluster is stopped and the temporary folders removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    audio_root = Path(tempfile.mkdtemp(prefix="echoroo-bench-audio-"))
    pgdata = Path(tempfile.mkdtemp(prefix="echoroo-bench-pg-"))
    work = Path(tempfile.mkdtemp(prefix="echoroo-bench-work-"))
    # atexit runs last-registered first: pgserver (registered on the first connection) stops and
    # deletes its server before these run; they only sweep what a failure left behind.
    for folder in (audio_root, pgdata, work):
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    # settings.py reads these; they must be set before Django is. Never the configured server.
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("Q_WORKERS", None)
    os.environ["AUDIO_ROOT"] = str(audio_root)
    os.environ["ECHOROO_PGDATA"] = str(pgdata)
    os.environ["DJANGO_SETTINGS_MODULE"] = "echoroo.settings"
    sys.path.insert(0, str(ROOT))
    import django
    from django.conf import settings

    settings.DATABASES["default"]["PGDATA_CLEANUP"] = "delete"  # the server removes its data when we exit
    django.setup()

    clusters: list[Cluster] = []  # the one started, stopped here whatever happens
    try:
        figures = run(args.files, audio_root, work, clusters)
    finally:
        for cluster in clusters:
            cluster.stop()
        from django.db import connections

        connections.close_all()
        from echoroo.embedded import forget_dead_processes

        # Worker processes leave without telling pgserver; forget them so that this process,
        # the last user, stops and deletes the server on exit.
        forget_dead_processes(pgdata)
    print(json.dumps(figures))


def run(n_files: int, audio_root: Path, work: Path, clusters: list) -> dict:
    from django.conf import settings
    from django.core.management import call_command

    from echoroo.importing import import_recordings
    from inference.config import InferenceConfig

    config = InferenceConfig()
    cores = os.cpu_count() or 1

    started = time.perf_counter()
    paths = write_dataset(audio_root / "bench", n_files)
    log(f"wrote {len(paths)} one-minute files in {time.perf_counter() - started:.1f} s")
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    report = import_recordings([audio_root], dataset="End to end")
    if len(report.imported) != n_files or report.failures:
        raise SystemExit(f"import: {len(report.imported)} imported, failures {report.failures[:3]}")
    hashes = set(report.dataset.recordings.values_list("sha256", flat=True))
    if len(hashes) != n_files:
        raise SystemExit(f"only {len(hashes)} distinct files among {n_files}")
    log(f"imported {n_files} distinct recordings in {time.perf_counter() - started:.1f} s")

    # The model, as a worker loads it; this also makes the cached model copy the workers will read.
    from inference.runtimes.birdnet import BirdNetRuntime

    started = time.perf_counter()
    runtime = BirdNetRuntime(num_threads=1, cache_dir=settings.MODEL_CACHE_DIR)
    first_load_s = time.perf_counter() - started
    started = time.perf_counter()
    BirdNetRuntime(num_threads=1, cache_dir=settings.MODEL_CACHE_DIR)
    warm_load_s = time.perf_counter() - started
    log(
        f"BirdNET loaded in {first_load_s:.2f} s (cache {settings.MODEL_CACHE_DIR}); "
        f"again with a warm cache {warm_load_s:.2f} s"
    )

    load = MachineLoad()
    bare = bare_model_rate(runtime, paths[0], config)
    log(f"bare model, 1 thread, batch {config.batch_size}: {bare:.1f} s of audio per s")
    load.check("the bare model")
    load = MachineLoad()
    decode_s = decode_time(runtime, paths[0], config)
    log(f"decode + resample + window alone: {decode_s:.3f} s per one-minute file ({60 / decode_s:.0f} s/s)")
    pipeline = pipeline_rate(runtime, paths[0], config)
    log(f"pipeline, one process, 1 interpreter thread: {pipeline:.1f} s of audio per s")
    load.check("the pipeline")
    if cores > 1:
        # The control for the cluster: what `cores` interpreters reach side by side on this machine.
        load = MachineLoad()
        together = concurrent_bare_rate(runtime, paths[0], config, cores)
        log(
            f"bare model in {cores} processes at once, 1 thread each: {together:.1f} s/s in all "
            f"({together / cores:.1f} each, {together / (cores * bare):.2f} of {cores} x the single process)"
        )
        load.check(f"{cores} bare models at once")
    del runtime

    cluster = Cluster(work / "qcluster.log")
    clusters.append(cluster)
    cluster.wait_ready(cores)
    load = MachineLoad()
    end_to_end_s, job = run_job(report.dataset, cluster)
    cluster_cpu = cluster.cpu_seconds()
    cluster_spent = sum(used - cluster.cpu_before.get(pid, ("", 0.0))[1] for pid, (_, used) in cluster_cpu.items())
    load.check("the job", also_ours=cluster_spent + cluster.pg_cpu)
    cluster.stop()

    figures_extra = analyse(job, end_to_end_s, cluster, cluster_cpu, cores, warm_load_s)
    audio_s = figures_extra["audio_s"]
    end_to_end = audio_s / end_to_end_s
    log(f"end to end: {audio_s:.0f} s of audio in {end_to_end_s:.2f} s = {end_to_end:.1f} s/s")
    return {
        "pipeline": round(pipeline, 1),
        "bare_model_1thread": round(bare, 1),
        "end_to_end": round(end_to_end, 1),
        "cores": cores,
        "end_to_end_vs_limit": round(end_to_end / (cores * bare), 3),
        "storage_share": round(figures_extra["storage_share"], 4),
        "embeddings_per_s": round(figures_extra["embeddings"] / end_to_end_s, 1),
        "clip_predictions": figures_extra["predictions"],
        "detections": figures_extra["detections"],
        "raw_output_rows": figures_extra["raw_output_rows"],
        "raw_output_entries": figures_extra["raw_output_entries"],
    }


def write_dataset(folder: Path, count: int) -> list[Path]:
    """`count` one-minute files from 1min.wav, each with its own gain and a few samples of tiny noise."""
    import numpy as np
    import soundfile

    folder.mkdir(parents=True)
    signal_, rate = soundfile.read(SOURCE, dtype="int16")
    info = soundfile.info(SOURCE)
    rng = np.random.default_rng(2026)
    paths = []
    for index in range(count):
        gain = 1.0 - 0.1 * index / max(count - 1, 1)  # 1.0 down to 0.9
        samples = np.round(signal_.astype(np.float64) * gain)
        where = rng.choice(len(samples), size=16, replace=False)
        samples[where] += rng.integers(-3, 4, size=16)  # a few LSBs: inaudible, but no two files alike
        samples[where[0]] += 1 + index % 2  # at least one sample always changes
        path = folder / f"minute_{index:04d}.wav"
        soundfile.write(path, np.clip(samples, -32768, 32767).astype(np.int16), rate, subtype=info.subtype)
        paths.append(path)
    return paths


def best_of(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def bare_model_rate(runtime, path: Path, config) -> float:
    """Seconds of audio per second of `predict` alone, on windows already decoded and resampled to 48 kHz."""
    import numpy as np

    from echoroo import audio

    windows = np.concatenate(
        [batch for _, _, batch in audio.iter_batches(path, runtime.sample_rate, runtime.window_s, 0.0, 64)]
    )
    batch_size = config.batch_size
    # 160 windows = 8 minutes of audio, in full batches of the job's size.
    n_batches = max(1, 160 // batch_size)
    batches = [np.resize(windows, (batch_size, windows.shape[1])).astype(np.float32) for _ in range(n_batches)]
    runtime.predict(batches[0])  # sizes the interpreter for this batch

    def predict_all():
        for batch in batches:
            runtime.predict(batch)

    seconds = best_of(REPEATS, predict_all)
    return n_batches * batch_size * runtime.window_s / seconds


def _bare_child(batch, n_batches: int, cache_dir: str, barrier, results) -> None:
    """One of the processes of `concurrent_bare_rate` (spawned: a fresh interpreter, no Django)."""
    sys.path.insert(0, str(ROOT))
    from inference.runtimes.birdnet import BirdNetRuntime

    runtime = BirdNetRuntime(num_threads=1, cache_dir=cache_dir)
    runtime.predict(batch)
    barrier.wait()
    started = time.time()
    for _ in range(n_batches):
        runtime.predict(batch)
    results.put((started, time.time(), n_batches * len(batch) * runtime.window_s))


def concurrent_bare_rate(runtime, path: Path, config, processes: int) -> float:
    """Seconds of audio per second of `processes` single-threaded bare models running at once, in all."""
    import multiprocessing

    import numpy as np
    from django.conf import settings

    from echoroo import audio

    windows = np.concatenate(
        [batch for _, _, batch in audio.iter_batches(path, runtime.sample_rate, runtime.window_s, 0.0, 64)]
    )
    batch = np.resize(windows, (config.batch_size, windows.shape[1])).astype(np.float32)
    n_batches = max(1, 320 // config.batch_size)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    children = [
        context.Process(target=_bare_child, args=(batch, n_batches, str(settings.MODEL_CACHE_DIR), barrier, results))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    spans = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join()
    return sum(audio_s for _, _, audio_s in spans) / (
        max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    )


class MachineLoad:
    """CPU time the rest of the machine used during a phase: other work on a small machine skews every figure."""

    def __init__(self) -> None:
        self.busy = machine_busy_s()
        self.own = own_cpu_s()
        self.started = time.perf_counter()

    def check(self, phase: str, also_ours: float = 0.0) -> None:
        wall = time.perf_counter() - self.started
        cores = os.cpu_count() or 1
        other = (machine_busy_s() - self.busy) - (own_cpu_s() - self.own) - also_ours
        share = other / (wall * cores)
        message = f"other processes on this machine used {other:.1f} of {wall * cores:.1f} core-s during {phase}"
        if share > 0.1:
            log(f"WARNING: {message} ({100 * share:.0f} %): its figures are low; rerun on a quiet machine")
        else:
            log(f"  ({message})")


def machine_busy_s() -> float:
    import psutil

    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0) - getattr(times, "guest", 0.0)


def own_cpu_s() -> float:
    import resource

    used = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        used += usage.ru_utime + usage.ru_stime
    return used


def decode_time(runtime, path: Path, config) -> float:
    """Seconds to decode, resample and window one file: the producer thread's work, alone."""
    from echoroo import audio

    def decode():
        for _ in audio.iter_batches(path, runtime.sample_rate, runtime.window_s, config.overlap, config.batch_size):
            pass

    return best_of(REPEATS, decode)


def pipeline_rate(runtime, path: Path, config) -> float:
    import soundfile
    from django.conf import settings

    from inference.pipeline import PipelineOptions, run_recording
    from inference.selection import storage_floor

    # As a job runs it: the raw output kept down to the storage floor, beside the job's selection.
    options = PipelineOptions(config=config, floor_logit=storage_floor(settings.PREDICTION_FLOOR))
    result = run_recording(runtime, path, options)  # warm-up
    assert result.window_count == 20 and result.embeddings() is not None, result.window_count
    assert all(batch.outputs is not None for batch in result.batches)
    seconds = best_of(REPEATS, lambda: run_recording(runtime, path, options))
    return soundfile.info(path).duration / seconds


class Cluster:
    """`manage.py qcluster` with the application's environment, in its own process group."""

    def __init__(self, log_path: Path):
        from django.conf import settings

        env = {**os.environ, "ECHOROO_CACHE_DIR": str(settings.MODEL_CACHE_DIR)}
        env.pop("Q_WORKERS", None)  # the default: one worker process per core
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "qcluster"],
            cwd=ROOT,
            env=env,
            process_group=0,  # its own group, to stop it whole; the same session, as under `serve`
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.started = time.perf_counter()
        self.cpu_before: dict[int, tuple[str, float]] = {}
        self.pg_cpu = float("nan")
        log(f"started qcluster (pid {self.process.pid}), log in {log_path}")

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, workers: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.text()
            ready = text.count("ready for work")
            if ready >= workers and " running." in text:
                log(f"cluster ready: {ready} workers, {time.perf_counter() - self.started:.1f} s after its start")
                return
            if self.process.poll() is not None:
                raise SystemExit(f"qcluster exited with {self.process.returncode}:\n{text[-3000:]}")
            time.sleep(0.2)
        raise SystemExit(f"qcluster not ready after {READY_TIMEOUT_S} s:\n{self.text()[-3000:]}")

    def processes(self):
        import psutil

        try:
            parent = psutil.Process(self.process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> dict[int, tuple[str, float]]:
        """CPU seconds (user + system) each process of the cluster has used so far, by pid."""
        import psutil

        used = {}
        for process in self.processes():
            try:
                times = process.cpu_times()
                used[process.pid] = (process.name(), times.user + times.system)
            except psutil.NoSuchProcess:
                pass
        return used

    def stop(self) -> None:
        """SIGTERM to qcluster's main process, which stops its sentinel and workers; SIGKILL the group after 30 s.

        Not SIGTERM to the whole group: django-q2's sentinel (and the workers it forks) keep SIGTERM's
        default action and die at once, and the main process, whose handler then sets the sentinel's
        stop event, can block forever on that event's lock (seen here: stuck in a futex until SIGKILL).
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log(f"qcluster still running {STOP_GRACE_S} s after SIGTERM: SIGKILL")
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever is left of the group
        except ProcessLookupError:
            pass
        if self.process.poll() is None:
            self.process.wait(timeout=10)
        if not self._log.closed:
            self._log.close()


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by the embedded server and its live backends."""
    import psutil
    from django.conf import settings

    pid_file = Path(settings.DATABASES["default"]["PGDATA"]) / "postmaster.pid"
    try:
        parent = psutil.Process(int(pid_file.read_text().split()[0]))
        total = 0.0
        for process in [parent, *parent.children(recursive=True)]:
            try:
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
            except psutil.NoSuchProcess:
                pass
        return total
    except (OSError, ValueError, psutil.NoSuchProcess):
        return 0.0


def run_job(dataset, cluster: Cluster):
    """Create and start the job; wait until it is finished. Returns (start_job -> completed_at seconds, job)."""
    from django.utils import timezone

    from inference import services
    from inference.models import InferenceJob

    job = services.create_job(model_name="birdnet", dataset=dataset, config={})
    pg_before = postgres_cpu_seconds()
    cluster.cpu_before = cluster.cpu_seconds()
    started_at = timezone.now()
    job = services.start_job(job)
    log(f"job {job.pk} started: {job.total_clips} clips over {job.job_recordings.count()} recordings")
    deadline = time.monotonic() + JOB_TIMEOUT_S
    last_shown = 0
    while True:
        job.refresh_from_db()
        if job.is_finished:
            break
        if cluster.process.poll() is not None:
            raise SystemExit(f"qcluster exited with {cluster.process.returncode}:\n{cluster.text()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"job not finished after {JOB_TIMEOUT_S} s")
        if job.processed_clips - last_shown >= max(1, job.total_clips // 10):
            last_shown = job.processed_clips
            log(f"  {job.processed_clips}/{job.total_clips} clips ({job.progress:.0f} %)")
        time.sleep(0.2)
    cluster.pg_cpu = postgres_cpu_seconds() - pg_before
    if job.status != InferenceJob.Status.COMPLETED:
        raise SystemExit(f"the job ended {job.status}: {job.error_message}")
    seconds = (job.completed_at - started_at).total_seconds()
    log(f"job completed {seconds:.2f} s after start_job")
    return seconds, job


def analyse(job, end_to_end_s: float, cluster: Cluster, cpu_after: dict, cores: int, load_s: float) -> dict:
    """Check the rows; print where the time went (stderr); return the figures the JSON needs."""
    from echoroo.models import Clip, ClipOutput, ClipPrediction, Recording, RecordingOutput, SoundEventPrediction
    from embeddings.models import ClipEmbedding
    from inference.models import JobRecording

    recordings = list(
        JobRecording.objects.filter(job=job)
        .order_by("started_at")
        .values(
            "status", "worker", "inference_s", "storage_s", "started_at", "finished_at", "total_clips", "recording_id"
        )
    )
    durations = dict(Recording.objects.filter(dataset=job.dataset).values_list("id", "duration"))
    audio_s = sum(durations.values())
    expected = len(durations) * 20
    clips = Clip.objects.filter(recording__dataset=job.dataset).count()
    embeddings = ClipEmbedding.objects.filter(model_run=job.model_run, clip__recording__dataset=job.dataset).count()
    # The job's own detections, and the model's raw output it stored (shared by later jobs).
    predictions = ClipPrediction.objects.filter(job=job).count()
    detections = SoundEventPrediction.objects.filter(job=job).count()
    raw_outputs = ClipOutput.objects.filter(model_run=job.model_run, clip__recording__dataset=job.dataset)
    raw_rows = raw_outputs.count()
    raw_entries = sum(len(tags) for tags in raw_outputs.values_list("tags", flat=True).iterator())
    stored_recordings = RecordingOutput.objects.filter(model_run=job.model_run, recording__dataset=job.dataset).count()
    log(
        f"stored: {clips} clips, {embeddings} embeddings, {predictions} clip predictions, {detections} detections "
        f"of the job; raw output: {raw_rows} rows ({raw_entries} label logits, {raw_entries / max(clips, 1):.1f} a "
        f"window), {stored_recordings} recordings marked stored"
    )
    not_done = [r for r in recordings if r["status"] != JobRecording.Status.DONE]
    if (
        clips != expected
        or embeddings != expected
        or job.total_clips != expected
        or not_done
        or stored_recordings != len(durations)
    ):
        log(
            f"WARNING: expected {expected} clips and embeddings (20 per one-minute file), got {clips} clips, "
            f"{embeddings} embeddings, job total {job.total_clips}; {len(not_done)} recordings not done; "
            f"{stored_recordings} of {len(durations)} recordings with their raw output stored"
        )

    inference = [r["inference_s"] for r in recordings if r["inference_s"] is not None]
    storage = [r["storage_s"] for r in recordings if r["storage_s"] is not None]
    storage_share = sum(storage) / sum(inference) if inference else float("nan")

    # Where the time went.
    log(
        f"per recording: inference_s median {statistics.median(inference):.3f} (min {min(inference):.3f}, "
        f"max {max(inference):.3f}) = {60 / statistics.median(inference):.1f} s/s per worker; "
        f"storage_s median {statistics.median(storage):.3f} (max {max(storage):.3f}); "
        f"storage / inference {storage_share:.3f}"
    )
    by_worker: dict[str, list[dict]] = {}
    for row in recordings:
        by_worker.setdefault(row["worker"], []).append(row)
    start = job.started_at
    for worker, rows in sorted(by_worker.items()):
        busy = sum((r["finished_at"] - r["started_at"]).total_seconds() for r in rows)
        work = sum(r["inference_s"] + r["storage_s"] for r in rows)
        first = rows[0]
        first_overhead = (first["finished_at"] - first["started_at"]).total_seconds() - (
            first["inference_s"] + first["storage_s"]
        )
        other_overheads = [
            (r["finished_at"] - r["started_at"]).total_seconds() - (r["inference_s"] + r["storage_s"]) for r in rows[1:]
        ]
        first_claim_s = (first["started_at"] - start).total_seconds()
        gaps = [(b["started_at"] - a["finished_at"]).total_seconds() for a, b in zip(rows, rows[1:], strict=False)]
        log(
            f"worker {worker}: {len(rows)} recordings; first claimed {first_claim_s:.2f}"
            f" s after start; busy {busy:.1f} s of {end_to_end_s:.1f} (inference + storage {work:.1f} s); "
            f"first task's overhead beyond inference + storage {first_overhead:.2f} s (model load; "
            f"{load_s:.2f} s in this process with a warm cache), later tasks' median "
            f"{statistics.median(other_overheads) if other_overheads else 0:.3f} s; gap between tasks median "
            f"{statistics.median(gaps) if gaps else 0:.3f} s, total {sum(gaps):.2f} s; "
            f"last finished {(end_to_end_s - (rows[-1]['finished_at'] - start).total_seconds()):.2f} s before "
            "completed_at"
        )
    before = cluster.cpu_before
    spent = {pid: (name, used - before.get(pid, (name, 0.0))[1]) for pid, (name, used) in cpu_after.items()}
    worker_pids = {int(worker.rsplit(":", 1)[1]) for worker in by_worker if worker}
    worker_cpu = sum(used for pid, (_, used) in spent.items() if pid in worker_pids)
    other_cpu = sum(used for pid, (_, used) in spent.items() if pid not in worker_pids)
    pg_cpu = cluster.pg_cpu
    log(
        f"CPU during the job ({end_to_end_s:.1f} s x {cores} cores = {end_to_end_s * cores:.1f} core-s): "
        f"workers {worker_cpu:.1f} s, other cluster processes {other_cpu:.1f} s, PostgreSQL {pg_cpu:.1f} s; "
        f"inference wall time summed {sum(inference):.1f} s, storage {sum(storage):.1f} s"
    )
    return {
        "audio_s": audio_s,
        "storage_share": storage_share,
        "embeddings": embeddings,
        "predictions": predictions,
        "detections": detections,
        "raw_output_rows": raw_rows,
        "raw_output_entries": raw_entries,
    }


if __name__ == "__main__":
    main()
