"""BirdNET's PyTorch backend on a GPU: parity with LiteRT (reference outputs computed on a CPU) and throughput.

Prepare here (a CPU host with LiteRT), then run on the GPU host with PyTorch only (no LiteRT, TensorFlow,
Django, soundfile or soxr needed there):

    .venv/bin/python benchmarks/birdnet_gpu.py --write-reference var/gpu-check
    # on the GPU host, from the project root, carrying var/gpu-check (about 58 MiB):
    python3 benchmarks/birdnet_gpu.py --check var/gpu-check [--seconds 20]

`--write-reference` copies the model file and saves 32 real 3-s windows of tests/data (as 16-bit
samples, so that both hosts read exactly the same float32 windows: 28 whole ones and the zero-padded
last ones) with the logits and embeddings of LiteRT running the original model. `--check` builds the
network from the model file on the GPU (TF32 off, float32; `--channels-last on|off` to compare layouts),
prints the largest differences from the reference (goal <= 1e-4) and the throughput at batches
64, 256 and 1,024: windows per second and seconds of audio per second with the windows already on the
device (the model) and with each batch copied from host memory (what a worker feeds), and the share of
the wall time the GPU spent in the model (busy). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WINDOW = 144_000
REFERENCE_WINDOWS = 32


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_reference(folder: Path) -> None:
    """The model file, 32 real windows as int16 and LiteRT's outputs on them (original graph)."""
    from echoroo import audio
    from inference.runtimes.birdnet import MODEL_FILE, BirdNetRuntime, has_constant_run

    folder.mkdir(parents=True, exist_ok=True)
    original = BirdNetRuntime(frontend="original", cache_dir=folder / "cache")
    shutil.copy(original.model_dir / MODEL_FILE, folder / "model.tflite")
    shared = ROOT / "tests" / "data"
    whole, padded = [], []
    for name in ("1min.wav", "great_plains_toad.wav", "rugr_drum.wav", "metadata.wav"):
        for _, _, batch in audio.iter_batches(shared / name, 48_000, 3.0, 0.0, 64):
            silent = has_constant_run(batch, 1024)
            whole.append(batch[~silent])
            padded.append(batch[silent])  # the zero-padded last windows
    padded = np.concatenate(padded)
    windows = np.concatenate([np.concatenate(whole)[: REFERENCE_WINDOWS - len(padded)], padded])
    samples = np.clip(np.round(windows * 32768), -32768, 32767).astype(np.int16)
    logits, embeddings = original.predict_logits(samples.astype(np.float32) / 32768)
    np.savez_compressed(folder / "reference.npz", samples=samples, logits=logits, embeddings=embeddings)
    shutil.rmtree(folder / "cache", ignore_errors=True)
    log(f"wrote {folder}/model.tflite and reference.npz ({len(samples)} windows)")


def gpu_figures(
    model: Path,
    samples: np.ndarray,
    logits: np.ndarray,
    embeddings: np.ndarray,
    seconds: float,
    channels_last: bool | None = None,
) -> dict:
    import torch

    from inference.runtimes.birdnet_torch import BirdNetTorch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    began = time.perf_counter()
    network = BirdNetTorch.from_file(model, device=device, channels_last=channels_last)
    built_s = time.perf_counter() - began
    windows = samples.astype(np.float32) / 32768
    ours_logits, ours_embeddings = (tensor.cpu().numpy() for tensor in network(windows))
    figures: dict = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32),
        "build_s": round(built_s, 2),
        "channels_last": channels_last,
        "max_logit_diff": float(np.abs(ours_logits - logits).max()),
        "max_embedding_diff": float(np.abs(ours_embeddings - embeddings).max()),
        "top1_equal": bool((ours_logits.argmax(1) == logits.argmax(1)).all()),
    }
    for batch in (64, 256, 1024):
        host = np.ascontiguousarray(np.resize(windows, (batch, WINDOW)))
        pinned = torch.from_numpy(host).pin_memory() if device == "cuda" else torch.from_numpy(host)
        on_device = pinned.to(device)
        network(on_device)  # the plan for this batch size, and warm-up
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        sync()
        calls, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds / 6:
            network(on_device)
            calls += 1
        sync()
        model_s = time.perf_counter() - began
        fed_calls, began, busy = 0, time.perf_counter(), 0.0
        while time.perf_counter() - began < seconds / 6:
            batch_on_device = pinned.to(device, non_blocking=True)
            sync()
            start = time.perf_counter()
            out_logits, out_embeddings = network(batch_on_device)
            out_logits.cpu(), out_embeddings.cpu()
            busy += time.perf_counter() - start
            fed_calls += 1
        fed_s = time.perf_counter() - began
        figures[f"batch_{batch}"] = {
            "windows_per_s": round(calls * batch / model_s),
            "audio_s_per_s": round(calls * batch * 3.0 / model_s),
            "fed_audio_s_per_s": round(fed_calls * batch * 3.0 / fed_s),
            "busy": round(busy / fed_s, 3),
        }
        log(f"batch {batch}: {figures[f'batch_{batch}']}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-reference", type=Path, metavar="DIR")
    parser.add_argument("--check", type=Path, metavar="DIR")
    parser.add_argument("--seconds", type=float, default=20, help="timing, over the three batch sizes together")
    parser.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto", help="activations' layout")
    args = parser.parse_args()
    if args.write_reference:
        write_reference(args.write_reference)
        return
    if not args.check:
        parser.error("give --write-reference DIR (here) or --check DIR (on the GPU host)")
    for module in ("ai_edge_litert", "tensorflow", "django"):
        if module in sys.modules:
            raise SystemExit(f"{module} was imported: the GPU check must run without it")
    reference = np.load(args.check / "reference.npz")
    figures = gpu_figures(
        args.check / "model.tflite",
        reference["samples"],
        reference["logits"],
        reference["embeddings"],
        args.seconds,
        {"auto": None, "on": True, "off": False}[args.channels_last],
    )
    figures["imports_litert_tensorflow_or_django"] = any(
        module.split(".")[0] in {"ai_edge_litert", "tensorflow", "django"} for module in sys.modules
    )
    figures["parity_ok"] = figures["max_logit_diff"] <= 1e-4 and figures["max_embedding_diff"] <= 1e-4
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
