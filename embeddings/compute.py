"""Embeddings computed from audio: a span cut into model windows, the windows embedded in batches (no database).

A span of one window or less (zero-padded, as `echoroo.audio` pads a recording's last window) gets
exactly the embedding a job stores for that window; a longer span gets the mean of its windows'
unit vectors, so each window counts the same in the cosine similarity whatever its loudness.
"""

from __future__ import annotations

import math

import numpy as np

from inference.runtimes.base import ModelRuntime


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
