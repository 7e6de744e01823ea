"""The export rate of a large job: its combined Raven table (rows/s), by the command's path and the API's stream.

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/exports.py [--rows 1000000] [--recordings 250] [--profile]

It starts a throw-away embedded PostgreSQL server (its folder is removed at the end, also on failure), and
fills it in SQL (INSERT ... SELECT over generate_series, no Python per row) with one completed BirdNET job on
--recordings recordings of 3-s windows, 4 species a window, --rows window detections in all (scores spread
over 0.1-1; 200 of BirdNET's labels; the recordings at a site, each started at its own hour). No audio is read:
an export reads the database only. Then, each timed on its own:

- combined_raven: `export_detections(..., combined)` into a folder, as `manage.py export_detections --job
  <uuid> --format raven --combined --output DIR` writes BirdNET_SelectionTable.txt and its .list.txt;
- download_combined_raven: the API's stream of the same table (inference.exports.download), read to the end;
- zip_raven: the API's zip of the per-recording tables and the parameters file, read to the end;
- csv_all_columns: the combined CSV with every extra column (date and time per row among them).

Each is checked: as many table rows as detections. stderr shows the times and the machine's load (other
processes on a shared machine lower the figures: rerun when it is quiet); with --profile the combined Raven
export runs again under cProfile and its top functions are shown.

The last line of stdout is one JSON object: rows, recordings, combined_raven_rows_per_s (the headline),
combined_raven_s, download_combined_raven_rows_per_s, zip_raven_rows_per_s, csv_all_columns_rows_per_s, the
sizes written (MB), load_s (filling the database), peak_rss_mb (this process's peak resident memory after the
exports: bounded, whatever --rows) and rss_before_exports_mb, and the machine's load average.
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECIES = 200
PER_WINDOW = 4
WINDOW_S = 3.0

sys.path.insert(0, str(ROOT))
from benchmarks.end_to_end import MachineLoad, log  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="window detections of the job (default 1e6)")
    parser.add_argument("--recordings", type=int, default=250, help="recordings they are spread over (default 250)")
    parser.add_argument("--profile", action="store_true", help="also profile the combined Raven export")
    args = parser.parse_args()
    windows = args.rows // (args.recordings * PER_WINDOW)
    if args.recordings < 1 or windows < 1:
        parser.error(f"--rows must be at least {PER_WINDOW} x --recordings")

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    pgdata = Path(tempfile.mkdtemp(prefix="echoroo-bench-pg-"))
    work = Path(tempfile.mkdtemp(prefix="echoroo-bench-exports-"))
    for folder in (pgdata, work):
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ["AUDIO_ROOT"] = str(work / "audio")
    os.environ["ECHOROO_PGDATA"] = str(pgdata)
    os.environ["DJANGO_SETTINGS_MODULE"] = "echoroo.settings"
    import django
    from django.conf import settings

    settings.DATABASES["default"]["PGDATA_CLEANUP"] = "delete"
    django.setup()
    try:
        figures = run(args.recordings, windows, work, profile=args.profile)
    finally:
        from django.db import connections

        connections.close_all()
    print(json.dumps(figures))


def run(recordings: int, windows: int, work: Path, *, profile: bool) -> dict:
    from django.core.management import call_command

    from inference import exports

    load_before = os.getloadavg()
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    job = fill(recordings, windows)
    load_s = time.perf_counter() - started
    rows = recordings * windows * PER_WINDOW
    log(f"filled: {rows} window detections on {recordings} recordings of {windows} windows in {load_s:.1f} s")
    rss_before = peak_rss_mb()
    scope = exports.scope_of(job=str(job.uuid))
    figures: dict = {"rows": rows, "recordings": recordings}

    def timed(name: str, action) -> float:
        load = MachineLoad()
        began, cpu_began = time.perf_counter(), time.process_time()
        size = action()
        elapsed, cpu_s = time.perf_counter() - began, time.process_time() - cpu_began
        load.check(name)
        log(
            f"{name}: {elapsed:.2f} s ({cpu_s:.2f} s of it this process's CPU), {rows / elapsed:,.0f} rows/s, "
            f"{size / 1e6:.1f} MB"
        )
        figures[f"{name}_rows_per_s"] = round(rows / elapsed)
        figures[f"{name}_s"] = round(elapsed, 3)
        figures[f"{name}_python_cpu_s"] = round(cpu_s, 3)
        figures[f"{name}_mb"] = round(size / 1e6, 1)
        return elapsed

    raven = exports.ExportOptions(file_format="raven", combined=True)

    def combined_raven() -> int:
        folder = work / "combined"
        report = exports.export_detections(scope, raven, folder)
        table = folder / "BirdNET_SelectionTable.txt"
        assert report.rows == rows and count_lines(table) == rows + 1, (report, count_lines(table))
        assert count_lines(folder / "BirdNET_SelectionTable.list.txt") == recordings
        return table.stat().st_size

    def streamed(options: exports.ExportOptions, lines_expected: int | None) -> int:
        size, lines = 0, 0
        for chunk in exports.download(scope, options).chunks:
            size += len(chunk)
            lines += chunk.count(b"\n")
        if lines_expected is not None:
            assert lines == lines_expected, (lines, lines_expected)
        return size

    every_column = exports.ExportOptions(file_format="csv", combined=True, columns=exports.COLUMNS)
    timed("combined_raven", combined_raven)
    timed("download_combined_raven", lambda: streamed(raven, rows + 1))
    timed("zip_raven", lambda: streamed(exports.ExportOptions(file_format="raven"), None))
    timed("csv_all_columns", lambda: streamed(every_column, rows + 1))
    figures["rss_before_exports_mb"] = round(rss_before, 1)
    figures["peak_rss_mb"] = round(peak_rss_mb(), 1)
    log(f"peak resident memory {figures['peak_rss_mb']} MB (before the exports: {rss_before:.1f} MB)")

    if profile:
        from django.db import connection

        sql, params = exports.rows_query(scope, raven).query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            log("the rows' query:\n" + "\n".join(line for (line,) in cursor.fetchall()))
        profiler = cProfile.Profile()
        profiler.enable()
        exports.export_detections(scope, raven, work / "profiled")
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
        log(text.getvalue())

    load_after = os.getloadavg()
    log(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); {os.cpu_count()} cores")
    figures.update(
        headline="combined_raven_rows_per_s",
        load_s=round(load_s, 1),
        cores=os.cpu_count(),
        load_avg_1min=[round(load_before[0], 2), round(load_after[0], 2)],
    )
    return figures


def fill(recordings: int, windows: int):
    """One completed BirdNET job's window detections, written by the database itself."""
    from django.db import connection
    from django.utils import timezone

    from echoroo.models import SPECIES as SPECIES_KEY
    from echoroo.models import Clip, ClipPrediction, ClipPredictionTag, Dataset, ModelRun, Recording, Site, Tag
    from inference.models import InferenceJob, JobRecording
    from inference.runtimes.birdnet import package_labels

    model_run = ModelRun.objects.create(name="birdnet", version="2.4", segment_duration=WINDOW_S, sample_rate=48_000)
    dataset = Dataset.objects.create(name="Export benchmark")
    site = Site.objects.create(dataset=dataset, name="North transect", latitude=42.47, longitude=-76.45)
    labels = [label.name for label in package_labels()][::32][:SPECIES]
    tags = Tag.objects.bulk_create([Tag(key=SPECIES_KEY, value=label) for label in labels])
    job = InferenceJob.objects.create(
        model_run=model_run,
        dataset=dataset,
        status=InferenceJob.Status.COMPLETED,
        config={"confidence_threshold": 0.1},
        completed_at=timezone.now(),
    )
    table = {model: model._meta.db_table for model in (Recording, Clip, ClipPrediction, ClipPredictionTag)}
    duration_s = windows * WINDOW_S
    tag_ids = "ARRAY[" + ",".join(str(tag.pk) for tag in tags) + "]"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {table[Recording]} (uuid, dataset_id, site_id, path, sha256, duration, samplerate, channels,
                recorded_at, created_at)
            SELECT gen_random_uuid(), %s, %s, format('bench/site_%%s/rec_%%s.wav', i %% 5, lpad(i::text, 5, '0')),
                md5(i::text) || md5(i::text), %s, 48000, 1, now() - i * interval '1 hour', now()
            FROM generate_series(1, %s) AS i""",
            [dataset.pk, site.pk, duration_s, recordings],
        )
        cursor.execute(
            f"""INSERT INTO {table[Clip]} (uuid, recording_id, start_time, end_time)
            SELECT gen_random_uuid(), r.id, w * %s, w * %s + %s
            FROM {table[Recording]} AS r, generate_series(0, %s - 1) AS w""",
            [WINDOW_S, WINDOW_S, WINDOW_S, windows],
        )
        cursor.execute(
            f"""INSERT INTO {table[ClipPrediction]} (uuid, clip_id, model_run_id, job_id, created_at)
            SELECT gen_random_uuid(), c.id, %s, %s, now() FROM {table[Clip]} AS c""",
            [model_run.pk, job.pk],
        )
        # PER_WINDOW different species a window (steps of 13 through the 200 never meet within 4).
        cursor.execute(
            f"""INSERT INTO {table[ClipPredictionTag]} (clip_prediction_id, tag_id, score)
            SELECT p.id, ({tag_ids})[((p.id * 7 + k * 13) %% {len(tags)}) + 1], 0.1 + 0.9 * random()
            FROM {table[ClipPrediction]} AS p, generate_series(1, %s) AS k""",
            [PER_WINDOW],
        )
        for model in (Recording, Clip, ClipPrediction, ClipPredictionTag):
            cursor.execute(f"ANALYZE {table[model]}")
    JobRecording.objects.bulk_create(
        JobRecording(
            job=job,
            recording=recording,
            status=JobRecording.Status.DONE,
            total_clips=windows,
            processed_clips=windows,
            attempts=1,
        )
        for recording in Recording.objects.filter(dataset=dataset)
    )
    return job


def count_lines(path: Path) -> int:
    with path.open("rb") as text:
        return sum(block.count(b"\n") for block in iter(lambda: text.read(1 << 20), b""))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


if __name__ == "__main__":
    main()
