"""A second BirdNET job with another threshold, sensitivity and species list, read from the first job's stored output.

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/rethreshold.py [--minutes 30] [--profile]

It writes one recording of --minutes (default 30) at 32 kHz into a temporary AUDIO_ROOT, made by
tiling the real field recordings of tests/data/ (1min.wav, soundscape.flac, great_plains_toad.wav,
rugr_drum.wav and metadata.wav; the two not at 32 kHz resampled once with soxr HQ), imports it into
a throw-away embedded PostgreSQL server (both temporary folders are removed at the end, also on
failure), and runs, in this process (`start_job(sync=True)`, BirdNET loaded once before, as a
worker keeps it):

- the first job: threshold 0.1, sensitivity 1.0, no species list: the model runs on the audio and
  its raw output (every label with a logit above the storage floor) is stored once per window;
- the baseline of the same run: that first job's time, and its export (`manage.py
  export_detections --job <uuid> --format csv`) kept as text;
- the second job: threshold 0.3, sensitivity 1.25, the first job's 5 most frequent species as its
  custom list: it must complete from the stored output alone (JobRecording.reused, asserted);
- the first job's export again, compared byte for byte with the one made before the second job.

stderr shows where each job's time went (claiming, loading the runtime, the species list, the
stored-output read, the selection, the writes, finishing), the sizes of the raw output, and the
machine's load (other processes on a shared machine lower the figures: rerun when it is quiet).
With --profile, a third job like the second runs under cProfile and its top functions are shown.

The last line of stdout is one JSON object: first_job_s, second_job_s, speedup (first / second),
raw_rows_per_audio_hour (ClipOutput rows), raw_mb_per_audio_hour (pg_total_relation_size of
echoroo_clipoutput, table + indexes + TOAST, after the first job, per hour of audio),
raw_row_mb_per_audio_hour (the rows alone: sum of pg_column_size), raw_entries_per_window,
first_job_unchanged (the first job's export byte-identical before and after the second job),
first_job_rows_unchanged (the first job's own window rows in the database unchanged),
second_job_reused_recordings, the export row counts, the breakdown of the second job, and the
machine's load average.
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import functools
import io
import json
import os
import pstats
import shutil
import signal
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "tests" / "data"
# Tiled in this order; the real field recordings of tests/data/ (see its README).
SOURCES = ("1min.wav", "soundscape.flac", "great_plains_toad.wav", "rugr_drum.wav", "metadata.wav")
SAMPLE_RATE = 32_000
FIRST_CONFIG = {"confidence_threshold": 0.1, "sensitivity": 1.0}
SECOND_THRESHOLD, SECOND_SENSITIVITY, SECOND_SPECIES = 0.3, 1.25, 5
# The steps of a job's task, timed by wrapping the names inference.runner calls them by.
STEPS = (
    "_claim",
    "load_runtime",
    "allowed_labels",
    "reusable_output",
    "read_outputs",
    "_analyse",
    "store_recording_results",
    "_finish_recording",
)
SLOWEST_STATEMENTS = 8

sys.path.insert(0, str(ROOT))
from benchmarks.end_to_end import MachineLoad, log  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30, help="length of the recording (default 30)")
    parser.add_argument("--profile", action="store_true", help="also run a third job like the second under cProfile")
    args = parser.parse_args()
    if args.minutes <= 0:
        parser.error("--minutes must be positive")
    missing = [name for name in SOURCES if not (SHARED / name).is_file()]
    if missing:
        sys.exit(f"missing in {SHARED}: {', '.join(missing)}")

    # A plain `kill` ends the run as Ctrl-C does: the temporary folders are removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    audio_root = Path(tempfile.mkdtemp(prefix="echoroo-bench-audio-"))
    pgdata = Path(tempfile.mkdtemp(prefix="echoroo-bench-pg-"))
    exports_dir = Path(tempfile.mkdtemp(prefix="echoroo-bench-exports-"))
    # atexit runs last-registered first: pgserver (registered on the first connection) stops and
    # deletes its server before these run; they only sweep what a failure left behind.
    for folder in (audio_root, pgdata, exports_dir):
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    # settings.py reads these; they must be set before Django is. Never the configured server.
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ["AUDIO_ROOT"] = str(audio_root)
    os.environ["ECHOROO_PGDATA"] = str(pgdata)
    os.environ["DJANGO_SETTINGS_MODULE"] = "echoroo.settings"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import django
    from django.conf import settings

    settings.DATABASES["default"]["PGDATA_CLEANUP"] = "delete"  # the server removes its data when we exit
    django.setup()
    try:
        figures = run(args.minutes, audio_root, exports_dir, profile=args.profile)
    finally:
        from django.db import connections

        connections.close_all()
    print(json.dumps(figures))


def run(minutes: float, audio_root: Path, exports_dir: Path, *, profile: bool) -> dict:
    from django.conf import settings
    from django.core.management import call_command

    from echoroo.importing import import_recordings
    from inference.config import InferenceConfig
    from inference.models import InferenceJob
    from inference.runner import load_runtime

    load_before = os.getloadavg()
    started = time.perf_counter()
    path = write_recording(audio_root / "rethreshold" / "tiled_32k.wav", minutes * 60)
    log(f"wrote {path.name} ({minutes:g} min at {SAMPLE_RATE} Hz) in {time.perf_counter() - started:.1f} s")
    call_command("migrate", verbosity=0)
    report = import_recordings([audio_root], dataset="Rethreshold")
    if len(report.imported) != 1 or report.failures:
        raise SystemExit(f"import: {len(report.imported)} imported, failures {report.failures[:3]}")
    recording = report.dataset.recordings.get()
    audio_h = recording.duration / 3600

    # BirdNET as a worker holds it after its first task: both jobs find it loaded. What a fresh
    # worker would add to either is shown apart (the second job loads it too, to name its labels).
    started = time.perf_counter()
    runtime = load_runtime("birdnet", InferenceConfig())
    first_load_s = time.perf_counter() - started
    started = time.perf_counter()
    type(runtime)(num_threads=runtime.num_threads, cache_dir=settings.MODEL_CACHE_DIR)
    runtime_load_s = time.perf_counter() - started
    log(f"BirdNET loaded in {first_load_s:.2f} s; a fresh load with a warm model cache takes {runtime_load_s:.2f} s")

    timer = StepTimer()
    load = MachineLoad()
    first, first_s = timed_job(recording, FIRST_CONFIG, timer)
    load.check("the first job")
    first_steps = timer.take()
    if first.status != InferenceJob.Status.COMPLETED or first.job_recordings.filter(reused=True).exists():
        raise SystemExit(f"the first job ended {first.status} (reused: expected none): {first.error_message}")
    log(f"first job: {first_s:.2f} s for {recording.duration:.0f} s of audio ({recording.duration / first_s:.0f} s/s)")
    show_steps(first_steps, first_s)

    raw = raw_output_sizes(first.model_run_id, audio_h)
    log(
        f"raw output: {raw['rows']} rows, {raw['entries']} label logits ({raw['entries_per_window']:.1f} a window; "
        f"storage floor logit {raw['floor_logit']:.3f}); echoroo_clipoutput {raw['total_bytes'] / 1e6:.3f} MB in all "
        f"(table {raw['table_bytes'] / 1e6:.3f}, indexes {raw['index_bytes'] / 1e6:.3f}, "
        f"TOAST {raw['toast_bytes'] / 1e6:.3f}), rows alone {raw['row_bytes'] / 1e6:.3f} MB"
    )

    before_path = exports_dir / "first_before.csv"
    export_job(first, before_path)
    first_rows_before = job_rows(first)
    species = top_species(first, SECOND_SPECIES)
    log(f"first job's export: {len(first_rows_before)} window rows; its top {len(species)} species: {species}")

    second_config = {
        "confidence_threshold": SECOND_THRESHOLD,
        "sensitivity": SECOND_SENSITIVITY,
        "custom_species_list": species,
    }
    load = MachineLoad()
    second, second_s = timed_job(recording, second_config, timer)
    load.check("the second job")
    second_steps = timer.take()
    if second.status != InferenceJob.Status.COMPLETED:
        raise SystemExit(f"the second job ended {second.status}: {second.error_message}")
    reused = second.job_recordings.filter(reused=True).count()
    total = second.job_recordings.count()
    assert reused == total == 1, f"the second job reused {reused} of {total} recordings: it ran the model"
    assert "_analyse" not in second_steps[0], "the second job decoded audio and ran the model"
    log(f"second job: {second_s:.3f} s, from stored output ({reused} of {total} recordings reused)")
    show_steps(second_steps, second_s)

    after_path = exports_dir / "first_after.csv"
    export_job(first, after_path)
    first_rows_after = job_rows(first)
    second_path = exports_dir / "second.csv"
    export_job(second, second_path)
    before_text, after_text = before_path.read_bytes(), after_path.read_bytes()
    unchanged = before_text == after_text
    export_rows = {name: rows_in(path) for name, path in (("before", before_path), ("after", after_path))}
    log(
        f"first job's export before the second job {export_rows['before']} rows, after {export_rows['after']} rows: "
        f"{'byte-identical' if unchanged else 'CHANGED'}; its own rows in the database "
        f"{'unchanged' if first_rows_after == first_rows_before else 'CHANGED'} ({len(first_rows_after)} rows); "
        f"the second job's export {rows_in(second_path)} rows, its own window rows {len(job_rows(second))}"
    )
    if not unchanged:
        log(f"  first difference: {first_difference(before_text, after_text)}")

    if profile:
        profile_job(recording, second_config)

    load_after = os.getloadavg()
    log(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); {os.cpu_count()} cores")
    return {
        "first_job_s": round(first_s, 3),
        "second_job_s": round(second_s, 3),
        "speedup": round(first_s / second_s, 1),
        "raw_rows_per_audio_hour": round(raw["rows"] / audio_h, 1),
        "raw_mb_per_audio_hour": round(raw["total_bytes"] / 1e6 / audio_h, 4),
        "raw_mb_measured_as": "pg_total_relation_size('echoroo_clipoutput') after the first job",
        "raw_row_mb_per_audio_hour": round(raw["row_bytes"] / 1e6 / audio_h, 4),
        "raw_entries_per_window": round(raw["entries_per_window"], 2),
        "first_job_unchanged": unchanged,
        "first_job_rows_unchanged": first_rows_after == first_rows_before,
        "second_job_reused_recordings": reused,
        "first_job_export_rows": export_rows["before"],
        "first_job_export_rows_after": export_rows["after"],
        "second_job_export_rows": rows_in(second_path),
        "second_job_species": species,
        "second_job_steps_s": {step: round(seconds, 4) for step, seconds in second_steps[0].items()},
        "second_job_sql_s": round(sum(seconds for _, seconds in second_steps[1].values()), 4),
        "runtime_load_s": round(runtime_load_s, 3),
        "audio_s": round(recording.duration, 1),
        "cores": os.cpu_count(),
        "load_avg_1min": [round(load_before[0], 2), round(load_after[0], 2)],
    }


def write_recording(path: Path, seconds: float) -> Path:
    """The field recordings tiled to `seconds` at 32 kHz (16-bit PCM), the others resampled once."""
    import numpy as np
    import soundfile
    import soxr

    parts = []
    for name in SOURCES:
        samples, rate = soundfile.read(SHARED / name, dtype="float32", always_2d=True)
        samples = samples.mean(axis=1)
        if rate != SAMPLE_RATE:
            samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
        parts.append(samples)
    tile = np.concatenate(parts)
    total = int(round(seconds * SAMPLE_RATE))
    signal_ = np.resize(tile, total)  # repeats the tile as many times as it takes
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.clip(signal_, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
    return path


class StepTimer:
    """Wall time of each step of a job's task, by wrapping the functions inference.runner calls."""

    def __init__(self) -> None:
        import inference.runner as runner
        from inference.selection import Selection

        self.seconds: dict[str, float] = defaultdict(float)
        self.statements: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        for step in STEPS:
            if hasattr(runner, step):  # a step renamed in the runner is not timed, and the run goes on
                setattr(runner, step, self._timed(step, getattr(runner, step)))
            else:
                log(f"inference.runner has no {step} any more: not timed")
        Selection.hits = self._timed("selection.hits", Selection.hits)

    def _timed(self, step: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
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
        """The steps' seconds and the statements' [count, seconds] since the last take."""
        taken = dict(self.seconds), dict(self.statements)
        self.seconds, self.statements = defaultdict(float), defaultdict(lambda: [0, 0.0])
        return taken


def show_steps(taken: tuple[dict[str, float], dict[str, list[float]]], job_s: float) -> None:
    """Where a job's time went: its task's steps, then its slowest SQL statements (wall time in this process)."""
    steps, statements = taken
    known = sum(seconds for step, seconds in steps.items() if step != "selection.hits")
    for step, seconds in sorted(steps.items(), key=lambda item: -item[1]):
        log(f"  {step:<24} {seconds:8.4f} s  {100 * seconds / job_s:5.1f} %")
    log(f"  {'(create, start, the rest)':<24} {job_s - known:8.4f} s  {100 * (job_s - known) / job_s:5.1f} %")
    in_sql = sum(seconds for _, seconds in statements.values())
    log(f"  SQL: {sum(count for count, _ in statements.values())} statements, {in_sql:.4f} s; the slowest:")
    for sql, (count, seconds) in sorted(statements.items(), key=lambda item: -item[1][1])[:SLOWEST_STATEMENTS]:
        log(f"    {seconds:8.4f} s  x{count:<3} {sql}")


def timed_job(recording, config: dict, timer: StepTimer):
    """Create a job on the recording and run it here; returns (job, seconds of create_job + start_job)."""
    from django.db import connection

    from inference import services

    with connection.execute_wrapper(timer.statement):
        started = time.perf_counter()
        job = services.create_job(model_name="birdnet", recording=recording, config=config)
        job = services.start_job(job, sync=True)
        return job, time.perf_counter() - started


def raw_output_sizes(model_run_id: int, audio_h: float) -> dict:
    """ClipOutput's rows, label logits and bytes (table, indexes, TOAST; and the rows alone)."""
    from django.conf import settings
    from django.db import connection

    from inference.selection import storage_floor

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE echoroo_clipoutput")
        cursor.execute(
            "SELECT count(*), COALESCE(sum(cardinality(tags)), 0), COALESCE(sum(pg_column_size(o.*)), 0) "
            "FROM echoroo_clipoutput o WHERE model_run_id = %s",
            [model_run_id],
        )
        rows, entries, row_bytes = cursor.fetchone()
        cursor.execute(
            "SELECT pg_total_relation_size(c.oid), pg_relation_size(c.oid), pg_indexes_size(c.oid), "
            "COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) "
            "FROM pg_class c WHERE c.oid = 'echoroo_clipoutput'::regclass"
        )
        total_bytes, table_bytes, index_bytes, toast_bytes = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM echoroo_clip")
        (windows,) = cursor.fetchone()
    return {
        "rows": rows,
        "entries": entries,
        "entries_per_window": entries / max(windows, 1),
        "row_bytes": row_bytes,
        "total_bytes": total_bytes,
        "table_bytes": table_bytes,
        "index_bytes": index_bytes,
        "toast_bytes": toast_bytes,
        "floor_logit": storage_floor(settings.PREDICTION_FLOOR),
    }


def export_job(job, output: Path) -> None:
    """`manage.py export_detections --job <uuid> --format csv --output <file>`."""
    from django.core.management import call_command

    call_command("export_detections", job=str(job.uuid), file_format="csv", output=str(output), stdout=io.StringIO())


def rows_in(path: Path) -> int:
    return max(0, len(path.read_text(encoding="utf-8").splitlines()) - 1)


def first_difference(before: bytes, after: bytes) -> str:
    old, new = before.decode().splitlines(), after.decode().splitlines()
    for number, (line_before, line_after) in enumerate(zip(old, new, strict=False), start=1):
        if line_before != line_after:
            return f"line {number}: {line_before!r} -> {line_after!r}"
    return f"{len(old)} lines -> {len(new)} lines"


def job_rows(job) -> list[tuple]:
    """The job's own window rows (clip span, species, score), straight from the database."""
    from echoroo.models import ClipPredictionTag

    return list(
        ClipPredictionTag.objects.filter(clip_prediction__job=job)
        .order_by("clip_prediction__clip__start_time", "tag__value")
        .values_list("clip_prediction__clip__start_time", "clip_prediction__clip__end_time", "tag__value", "score")
    )


def top_species(job, count: int) -> list[str]:
    """The job's `count` labels found in the most windows (ties by name)."""
    from django.db.models import Count

    from echoroo.models import ClipPredictionTag

    return list(
        ClipPredictionTag.objects.filter(clip_prediction__job=job)
        .values("tag__value")
        .annotate(windows=Count("id"))
        .order_by("-windows", "tag__value")
        .values_list("tag__value", flat=True)[:count]
    )


def profile_job(recording, config: dict) -> None:
    """A third job like the second, under cProfile: its top functions by cumulative time, to stderr."""
    from inference import services

    job = services.create_job(model_name="birdnet", recording=recording, config=config)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    services.start_job(job, sync=True)
    profiler.disable()
    log(f"third job (like the second) under cProfile: {time.perf_counter() - started:.3f} s; top functions:")
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
    print(text.getvalue(), file=sys.stderr)


if __name__ == "__main__":
    main()
