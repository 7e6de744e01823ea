"""The Raven import rate (rows/s): a folder of BirdNET-Analyzer selection tables, one per recording, imported as sound
event annotations, against one annotation at a time through create_annotation.

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/raven_import.py [--rows 100000] [--recordings 200] [--baseline-rows 500]

It starts a throw-away embedded PostgreSQL server (DATABASE_URL is cleared: it never writes to another database;
its folder is removed at the end, also on failure), adds --recordings recordings of an hour (48 kHz; rows only,
no audio: an import reads the tables and the database) and writes one table per recording as BirdNET-Analyzer
2.4.0 writes them (<file>.BirdNET.selection.table.txt: 3-s windows, common name and eBird code of 200 of
BirdNET's labels, confidence, Begin Path, File Offset), --rows rows in all. Then, each timed on its own:

- import: `import_raven(dataset, folder)`, as `manage.py import_annotations --dataset NAME --raven DIR` runs it
  (reading and checking every row: the parse; then services.add_imported's one transaction: the write);
- reimport: the same folder again, every row found already there and nothing written;
- baseline: --baseline-rows of the same rows one by one through services.create_annotation (what drawing them
  on the page or through the API costs), on recordings of their own.

Each is checked: the annotations, their tags and history rows counted. stderr shows the times and the machine's
load (other processes lower the figures: rerun when it is quiet). The last line of stdout is one JSON object:
rows, recordings, import_rows_per_s (the headline), import_s, parse_s, write_s, reimport_rows_per_s,
create_annotation_rows_per_s, speedup (import over baseline), peak_rss_mb, cores and the load average. With
--profile an import into a dataset of its own runs again under cProfile and its top functions are shown.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import resource
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECIES = 200
WINDOW_S = 3.0
DURATION_S = 3600.0
SAMPLE_RATE = 48_000

sys.path.insert(0, str(ROOT))
from benchmarks.end_to_end import MachineLoad, log  # noqa: E402
from benchmarks.throwaway import start_throwaway_django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="table rows in all (default 100,000)")
    parser.add_argument("--recordings", type=int, default=200, help="recordings, one table each (default 200)")
    parser.add_argument("--baseline-rows", type=int, default=500, help="rows through create_annotation (500)")
    parser.add_argument("--profile", action="store_true", help="also profile an import into a dataset of its own")
    args = parser.parse_args()
    if args.recordings < 1 or args.rows < args.recordings:
        parser.error("--rows must be at least --recordings, and --recordings at least 1")
    if args.rows // args.recordings > DURATION_S / WINDOW_S * 4:
        parser.error(f"at most {int(DURATION_S / WINDOW_S * 4)} rows a recording (4 species a window)")

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    work = start_throwaway_django(prefix="echoroo-bench-raven-", folders=("audio",))
    try:
        figures = run(args.rows, args.recordings, args.baseline_rows, work, profile=args.profile)
    finally:
        from django.db import connections

        connections.close_all()
    print(json.dumps(figures))


def run(rows: int, recordings: int, baseline_rows: int, work: Path, *, profile: bool = False) -> dict:
    from django.core.management import call_command

    from annotations import raven, services
    from annotations.models import AnnotationChange, SoundEventAnnotation, SoundEventAnnotationTag

    load_before = os.getloadavg()
    call_command("migrate", verbosity=0)
    dataset = make_recordings("Raven benchmark", recordings)
    tables = work / "tables"
    started = time.perf_counter()
    written = write_tables(dataset, tables, rows)
    log(f"wrote {written} rows in {recordings} tables in {time.perf_counter() - started:.1f} s")
    figures: dict = {"rows": written, "recordings": recordings}

    def timed(name: str, action, count: int) -> float:
        load = MachineLoad()
        began = time.perf_counter()
        action()
        elapsed = time.perf_counter() - began
        load.check(name)
        log(f"{name}: {count} rows in {elapsed:.2f} s, {count / elapsed:,.0f} rows/s")
        figures[f"{name}_rows_per_s"] = round(count / elapsed)
        figures[f"{name}_s"] = round(elapsed, 3)
        return elapsed

    # The parse on its own (what import_raven does before it writes), then the whole import.
    def parse() -> None:
        reader = raven.TableReader(dataset)
        found = [row for table in raven.table_files(tables) for row in reader.read(table)]
        reader.raise_problems()
        assert len(found) == written, (len(found), written)

    timed("parse", parse, written)
    results = []
    timed("import", lambda: results.append(raven.import_raven(dataset, tables, by=None)), written)
    assert (results[0].added, results[0].already_there) == (written, 0), results[0]
    assert SoundEventAnnotation.objects.filter(recording__dataset=dataset).count() == written
    assert SoundEventAnnotationTag.objects.count() == written
    assert AnnotationChange.objects.count() == written
    figures["write_s"] = round(figures["import_s"] - figures["parse_s"], 3)

    timed("reimport", lambda: results.append(raven.import_raven(dataset, tables, by=None)), written)
    assert (results[1].added, results[1].already_there) == (0, written), results[1]

    # The same rows, one at a time, as a person drawing them would add them.
    sample = [row for table in raven.table_files(tables)[:5] for row in raven.TableReader(dataset).read(table)]
    sample = sample[:baseline_rows]
    others = {recording.path: recording for recording in make_recordings("One by one", recordings).recordings.all()}

    def one_by_one() -> None:
        for row in sample:
            services.create_annotation(
                others[row.recording.path],
                by=None,
                start_time=row.start_time,
                end_time=row.end_time,
                low_freq=row.low_freq,
                high_freq=row.high_freq,
                species=[value for key, value in row.tags if key == "species"],
                notes=row.notes,
                source=SoundEventAnnotation.Source.RAVEN,
                import_key=row.import_key,
            )

    timed("create_annotation", one_by_one, len(sample))
    assert SoundEventAnnotation.objects.count() == written + len(sample)
    figures["baseline_rows"] = len(sample)
    figures["speedup"] = round(figures["import_rows_per_s"] / figures["create_annotation_rows_per_s"], 1)

    if profile:
        copy = make_recordings("Profiled", recordings)
        profiler = cProfile.Profile()
        profiler.enable()
        raven.import_raven(copy, tables, by=None)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
        log(text.getvalue())

    load_after = os.getloadavg()
    log(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); {os.cpu_count()} cores")
    figures.update(
        headline="import_rows_per_s",
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        cores=os.cpu_count(),
        load_avg_1min=[round(load_before[0], 2), round(load_after[0], 2)],
    )
    return figures


def make_recordings(name: str, count: int):
    """A dataset of `count` one-hour recordings (rows only)."""
    from echoroo.models import Dataset, Recording

    dataset = Dataset.objects.create(name=name)
    Recording.objects.bulk_create(
        Recording(
            dataset=dataset,
            path=f"bench/site_{index % 5}/rec_{index:05d}.wav",
            sha256=f"{index:064x}",
            duration=DURATION_S,
            samplerate=SAMPLE_RATE,
            channels=1,
        )
        for index in range(count)
    )
    return dataset


def write_tables(dataset, folder: Path, rows: int) -> int:
    """One table per recording as BirdNET-Analyzer writes it (by its format: inference.birdnet_formats)."""
    from inference.birdnet_formats import AudioFile, RavenTable, Row, result_name
    from inference.runtimes.birdnet import package_labels

    labels = [f"{label.scientific_name}_{label.common_name}" for label in package_labels()][::32][:SPECIES]
    chosen = random.Random(16)
    recordings = list(dataset.recordings.order_by("path"))
    per_recording, left = divmod(rows, len(recordings))
    written = 0
    for index, recording in enumerate(recordings):
        count = per_recording + (index < left)
        windows = sorted(chosen.sample(range(int(DURATION_S / WINDOW_S)), -(-count // 4)))
        table_rows = []
        for window in windows:
            for label in chosen.sample(labels, 4):
                if len(table_rows) < count:
                    start = window * WINDOW_S
                    table_rows.append(Row(recording.pk, start, start + WINDOW_S, label, chosen.uniform(0.1, 1)))
        audio = AudioFile(f"/data/{recording.path}", recording.path, recording.duration, recording.samplerate)
        table = RavenTable()
        path = folder / result_name(recording.path, table.suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as out:
            out.write(table.header())
            out.writelines(table.lines(audio, table_rows))
        written += table.rows
    return written


if __name__ == "__main__":
    main()
