"""Embeddings computed from audio: a span cut into model windows, the windows embedded in batches (no database).

A span of one window or less (zero-padded, as `echoroo.audio` pads a recording's last window) gets
exactly the embedding a job stores for that window; a longer span gets the mean of its windows'
unit vectors, so each window counts the same in the cosine similarity whatever its loudness.
"""

from __future__ import annotations

import math

import numpy as np

from inference.runtimes.base import ModelRuntime


def event_span(start_s: float, end_s: float, duration_s: float, window_s: float) -> tuple[float, float]:
    """(start_s, end_s) of the audio a sound event is embedded from: whole windows centred on it, inside the recording.

    An event of a window or less gets the one window centred on it; a longer one the fewest
    back-to-back windows that cover it, centred on it (embed_spans then averages their unit
    vectors). Near an end of the recording the span is shifted inside it; a recording shorter than
    the span gives all of itself, which embed_spans zero-pads. Measured against the job's own grid
    windows and against masking the band outside the box: benchmarks/sound_event_mapping.py.
    """
    count = max(1, math.ceil((end_s - start_s) / window_s - 1e-9))
    length_s = count * window_s
    start = min(max((start_s + end_s) / 2 - length_s / 2, 0.0), max(duration_s - length_s, 0.0))
    return start, min(start + length_s, duration_s)


def cut_windows(samples: np.ndarray, window_samples: int) -> np.ndarray:
    """Back-to-back windows [W, window_samples] covering the samples; the last one is zero-padded."""
    count = max(1, math.ceil(len(samples) / window_samples))
    windows = np.zeros((count, window_samples), dtype=np.float32)
    windows.reshape(-1)[: len(samples)] = samples
    return windows


def mean_of_unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """One vector for several windows: the mean of their unit vectors (one window: its vector as it is)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(vectors) == 1:
        return vectors[0]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1)).mean(axis=0)


def embed_spans(runtime: ModelRuntime, spans: list[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
    """Embeddings [len(spans), embedding_dim] of spans of mono float32 samples at the runtime's rate."""
    if not spans:
        return np.zeros((0, runtime.embedding_dim), dtype=np.float32)
    windows = [cut_windows(np.asarray(span, dtype=np.float32), runtime.window_samples) for span in spans]
    counts = [len(span_windows) for span_windows in windows]
    stacked = np.concatenate(windows)
    embedded = np.concatenate(
        [runtime.predict(stacked[start : start + batch_size])[1] for start in range(0, len(stacked), batch_size)]
    ).astype(np.float32)
    result = np.empty((len(spans), embedded.shape[1]), dtype=np.float32)
    first = 0
    for index, count in enumerate(counts):
        result[index] = mean_of_unit_vectors(embedded[first : first + count])
        first += count
    return result
