"""Benchmark and check: the torchaudio resampling backend, on the GPU where there is one, against CPU.

Run by hand from the project root on a host with torch and torchaudio (a GPU worker installed with
requirements/gpu.txt): `python benchmarks/torchaudio_resampler.py [--reference DIR] [--hours 1]`.
It needs neither Django nor soundfile nor soxr, so it runs with a bare torch install.

1. Streaming equals whole: `echoroo.resamplers.TorchaudioStream` fed blocks of uneven sizes against
   torchaudio's Resample over the whole signal, for four rate pairs, on each device (max |diff|).
2. Against soxr HQ (the default backend): with `--reference DIR` holding `1min_32k.npy` (1min.wav's
   samples) and `1min_48k_soxr_hq.npy` (the same resampled by soxr HQ, made on the CPU host), the
   signal-to-difference ratio of the torchaudio backend's output, in dB.
3. Throughput: `--hours` of 44.1 kHz audio streamed to 48 kHz in `--block-s` blocks (5 s, the way
   jobs read files), in seconds of audio per second: GPU vs the CPU (torch's threads) in the same run.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from echoroo.resamplers import TORCHAUDIO_FILTER, TorchaudioStream  # noqa: E402

PAIRS = [(32000, 48000), (44100, 48000), (48000, 32000), (22050, 32000)]


def streamed(signal: np.ndarray, in_rate: int, out_rate: int, device: str, block: int) -> np.ndarray:
    stream = TorchaudioStream(in_rate, out_rate, device=device)
    pieces = []
    for start in range(0, len(signal), block):
        piece = signal[start : start + block]
        pieces.append(stream.resample_chunk(piece, last=start + block >= len(signal)))
    return np.concatenate(pieces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="folder with 1min_32k.npy and 1min_48k_soxr_hq.npy")
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--block-s", type=float, default=5.0, help="seconds read a block (jobs read 5)")
    args = parser.parse_args()

    import torch
    import torchaudio

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    figures: dict = {
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu_threads": torch.get_num_threads(),
    }

    rng = np.random.default_rng(0)
    worst = {}
    for device in devices:
        worst_here = 0.0
        for in_rate, out_rate in PAIRS:
            signal = rng.standard_normal(in_rate * 20 + 123).astype(np.float32)
            whole = (
                torchaudio.transforms.Resample(in_rate, out_rate, **TORCHAUDIO_FILTER)
                .to(device)(torch.from_numpy(signal).to(device)[None, :])[0]
                .cpu()
                .numpy()
            )
            for block in (in_rate * 5, 4097):
                joined = streamed(signal, in_rate, out_rate, device, block)
                assert len(joined) == len(whole), (device, in_rate, out_rate, len(joined), len(whole))
                worst_here = max(worst_here, float(np.abs(joined - whole).max()))
        worst[device] = worst_here
    figures["stream_vs_whole_max_abs_diff"] = worst

    if args.reference:
        source = np.load(args.reference / "1min_32k.npy")
        soxr_hq = np.load(args.reference / "1min_48k_soxr_hq.npy")
        ours = streamed(source, 32000, 48000, devices[-1], 32000 * 5)
        assert len(ours) == len(soxr_hq)
        difference = ours - soxr_hq
        figures["vs_soxr_hq_db"] = round(10 * float(np.log10(np.sum(soxr_hq**2) / np.sum(difference**2))), 1)
        middle = slice(48000, len(ours) - 48000)  # away from the edges, where the filters' tails differ
        figures["vs_soxr_hq_max_abs_diff_inside"] = round(float(np.abs(difference[middle]).max()), 5)

    seconds = args.hours * 3600
    long_signal = (0.1 * rng.standard_normal(int(44100 * seconds))).astype(np.float32)
    throughput = {}
    for device in devices:
        block = int(44100 * args.block_s)
        streamed(long_signal[: 2 * block], 44100, 48000, device, block)  # warm up (kernels, CUDA context)
        if device == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        out = streamed(long_signal, 44100, 48000, device, block)
        if device == "cuda":
            torch.cuda.synchronize()
        throughput[device] = round(seconds / (time.perf_counter() - began), 1)
        assert len(out) == -(-len(long_signal) * 480 // 441)
    figures["block_s"] = args.block_s
    figures["audio_s_per_s_44k1_to_48k"] = throughput
    if "cuda" in throughput:
        figures["gpu_vs_cpu"] = round(throughput["cuda"] / throughput["cpu"], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
