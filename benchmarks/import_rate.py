"""Files per second of `import_recordings` on 1,000 short WAVs, against a naive one-create-per-file import.

Run by hand from the project root: `.venv/bin/python benchmarks/import_rate.py [--files N] [--seconds S]`.
Everything lives in temporary folders (AUDIO_ROOT and a throw-away embedded database, never
DATABASE_URL's server) that are removed at the end. The files were just written, so all runs read
them from the page cache: the figures are the import's own cost, not the disk's. The last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from io import StringIO
from pathlib import Path

from throwaway import start_throwaway_django

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RATE = 48000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each file")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    audio_root = start_throwaway_django(prefix="echoroo-bench-import-", folders=("audio",)) / "audio"
    from django.core.management import call_command

    try:
        started = time.perf_counter()
        paths = write_files(audio_root, args.files, args.seconds)
        size_mb = sum(path.stat().st_size for path in paths) / 1e6
        print(f"wrote {len(paths)} files, {size_mb:.0f} MB, in {time.perf_counter() - started:.1f} s", flush=True)
        call_command("migrate", verbosity=0)

        def import_command(**options) -> str:
            stdout = StringIO()
            call_command("import_recordings", str(audio_root), stdout=stdout, stderr=StringIO(), **options)
            return stdout.getvalue().splitlines()[0]

        import_s, summary = timed(lambda: import_command(dataset="bench"))
        print(f"import:        {summary} in {import_s:.2f} s", flush=True)
        assert summary == f"Imported {len(paths)}, already present 0, failed 0", summary
        rerun_s, summary = timed(lambda: import_command(dataset="bench"))
        print(f"re-run:        {summary} in {rerun_s:.2f} s", flush=True)
        assert summary == f"Imported 0, already present {len(paths)}, failed 0", summary
        verify_s, summary = timed(lambda: import_command(dataset="bench", verify=True))
        print(f"re-run verify: {summary} in {verify_s:.2f} s", flush=True)

        from echoroo import importing

        one_thread_s, report = timed(lambda: importing.import_recordings([audio_root], dataset="one", workers=1))
        print(f"import, 1 thread: {len(report.imported)} files in {one_thread_s:.2f} s", flush=True)
        naive_s, count = timed(lambda: naive_import(paths, audio_root, "naive"))
        print(f"naive:         {count} files in {naive_s:.2f} s", flush=True)

        n = len(paths)
        figures = {
            "files": n,
            "import_files_per_s": round(n / import_s, 1),
            "rerun_files_per_s": round(n / rerun_s, 1),
            "naive_files_per_s": round(n / naive_s, 1),
        }
        print(
            f"also: verify re-run {n / verify_s:.1f} files/s, one-thread import {n / one_thread_s:.1f} files/s, "
            f"import {size_mb / import_s:.0f} MB/s"
        )
        print(json.dumps(figures))
    finally:
        from django.db import connections

        connections.close_all()


def write_files(audio_root: Path, count: int, seconds: float) -> list[Path]:
    """`count` distinct 16-bit mono WAVs, named like Song Meter files, 100 to a folder."""
    import numpy as np
    import soundfile

    rng = np.random.default_rng(2026)
    paths = []
    for index in range(count):
        folder = audio_root / f"deployment{index // 100:02}"
        folder.mkdir(exist_ok=True)
        day, minute = divmod(index, 24 * 60)
        path = folder / f"SMM01234_202604{day + 1:02}_{minute // 60:02}{minute % 60:02}00.wav"
        noise = rng.integers(-3000, 3000, int(seconds * SAMPLE_RATE), dtype=np.int16)
        soundfile.write(path, noise, SAMPLE_RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def naive_import(paths: list[Path], audio_root: Path, dataset_name: str) -> int:
    """The baseline: decode every file whole, hash it whole, one INSERT each."""
    import soundfile

    from echoroo.models import Dataset, Recording

    dataset = Dataset.objects.create(name=dataset_name)
    for path in paths:
        samples, sample_rate = soundfile.read(path, always_2d=True)
        Recording.objects.create(
            dataset=dataset,
            path=path.relative_to(audio_root).as_posix(),
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            duration=len(samples) / sample_rate,
            samplerate=sample_rate,
            channels=samples.shape[1],
        )
    return len(paths)


def timed(work):
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


if __name__ == "__main__":
    main()
