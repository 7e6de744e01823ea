"""Streaming resamplers: soxr HQ (the default, BirdNET-Analyzer's) and torchaudio, for GPU hosts.

Each stream takes blocks of mono float32 audio and gives back blocks at the new rate, holding
only a little audio between calls, so a 24-hour file streams in bounded memory. Joined, the
blocks equal the whole signal resampled at once (tests/echoroo/test_resamplers.py; the torchaudio
backend is also checked on a GPU by benchmarks/torchaudio_resampler.py).

No Django and no torch import here until a torchaudio stream is made: the default install has no
torch, and GPU workers install it with requirements/gpu.txt.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np

# soxr HQ is what BirdNET-Analyzer uses (librosa.load(res_type="soxr_hq")).
SOXR_QUALITY = "HQ"
BACKENDS = ("soxr", "torchaudio")
# torchaudio's windowed-sinc filter with librosa's "kaiser_best" settings: a passband to 94.8 %
# of the lower Nyquist and ~100 dB of stopband, the closest of its options to soxr HQ.
TORCHAUDIO_FILTER = {
    "lowpass_filter_width": 64,
    "rolloff": 0.9475937167399596,
    "resampling_method": "sinc_interp_kaiser",
    "beta": 14.769656459379492,
}


class ResamplerStream(Protocol):
    def resample_chunk(self, block: np.ndarray, last: bool = False) -> np.ndarray: ...


def open_stream(in_rate: int, out_rate: int, backend: str = "soxr") -> ResamplerStream:
    """A stream from `in_rate` to `out_rate` with the chosen backend ("soxr" or "torchaudio")."""
    if backend == "soxr":
        import soxr

        return soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=SOXR_QUALITY)
    if backend == "torchaudio":
        return TorchaudioStream(in_rate, out_rate)
    raise ValueError(f"unknown resampler {backend!r}: use one of {', '.join(BACKENDS)}")


def check_backend(backend: str) -> None:
    """Refuse an unknown backend, or torchaudio where it is not installed, saying what to do."""
    if backend not in BACKENDS:
        raise ValueError(f"ECHOROO_RESAMPLER={backend!r} is not a resampler: use one of {', '.join(BACKENDS)}")
    if backend == "torchaudio":
        try:
            import torchaudio  # noqa: F401
        except ImportError as error:
            raise ValueError(
                "ECHOROO_RESAMPLER=torchaudio, but torchaudio is not installed: install the GPU requirements "
                "(pip install -r requirements/gpu.txt) or leave ECHOROO_RESAMPLER unset for soxr"
            ) from error


class TorchaudioStream:
    """torchaudio's resampling, streamed: equal to `torchaudio.transforms.Resample` over the whole signal.

    torchaudio computes output sample j from the input around j * orig / new with a filter `width`
    input samples wide on each side (rates reduced by their gcd). Each call resamples the new input
    with `context` samples of history before it and keeps `context` samples back after it, both
    multiples of `orig`, so every output sample sees exactly the input it would see in the whole
    signal and lands on the same grid. Runs on the GPU when torch sees one.
    """

    def __init__(self, in_rate: int, out_rate: int, device: str | None = None):
        import torch
        import torchaudio

        gcd = math.gcd(in_rate, out_rate)
        self.orig, self.new = in_rate // gcd, out_rate // gcd
        base = min(self.orig, self.new) * TORCHAUDIO_FILTER["rolloff"]
        width = math.ceil(TORCHAUDIO_FILTER["lowpass_filter_width"] * self.orig / base)
        self.context = (width // self.orig + 2) * self.orig
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.torch = torch
        self.resample = torchaudio.transforms.Resample(in_rate, out_rate, **TORCHAUDIO_FILTER).to(self.device)
        self.history = np.zeros(0, dtype=np.float32)  # already emitted input, a multiple of orig long
        self.pending = np.zeros(0, dtype=np.float32)  # input not emitted yet

    def _resampled(self, chunk: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            waveform = self.torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32)).to(self.device)
            return self.resample(waveform[None, :])[0].cpu().numpy()

    def resample_chunk(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        self.pending = np.concatenate([self.pending, np.asarray(block, dtype=np.float32).ravel()])
        ready = len(self.pending) if last else (len(self.pending) - self.context) // self.orig * self.orig
        if ready <= 0:
            return np.zeros(0, dtype=np.float32)
        chunk = np.concatenate([self.history, self.pending if last else self.pending[: ready + self.context]])
        skip = len(self.history) // self.orig * self.new
        resampled = self._resampled(chunk)
        out = resampled[skip:] if last else resampled[skip : skip + ready // self.orig * self.new]
        emitted = np.concatenate([self.history, self.pending[:ready]])
        self.history = emitted[len(emitted) - min(len(emitted), self.context) :]
        self.pending = self.pending[ready:]
        return out.astype(np.float32, copy=False)
