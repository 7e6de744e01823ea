"""One embedding per span of audio: the span cut into model windows, the windows embedded in batches.

Query by example and backfill_embeddings both embed audio this way. A span of one window or less
(zero-padded, as `echoroo.audio` pads a recording's last window) gets exactly the embedding a job
stores for that window; a longer span gets the mean of its windows' unit vectors, so each window
counts the same in the cosine similarity whatever its loudness.
"""

from __future__ import annotations

import math

import numpy as np

from echoroo import audio
from echoroo.models import Recording
from embeddings.storage import store_embeddings
from inference.runtimes.base import ModelRuntime

# Clips read, embedded and stored at a time: memory stays bounded on a day-long recording.
CLIPS_PER_STORE = 512


def cut_windows(samples: np.ndarray, window_samples: int) -> np.ndarray:
    """Back-to-back windows [W, window_samples] covering the samples; the last one is zero-padded."""
    count = max(1, math.ceil(len(samples) / window_samples))
    windows = np.zeros((count, window_samples), dtype=np.float32)
    windows.reshape(-1)[: len(samples)] = samples
    return windows


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
        span_embeddings = embedded[first : first + count]
        first += count
        if count == 1:
            result[index] = span_embeddings[0]
        else:
            norms = np.linalg.norm(span_embeddings, axis=1, keepdims=True)
            result[index] = (span_embeddings / np.where(norms > 0, norms, 1)).mean(axis=0)
    return result


def embed_clips(
    runtime: ModelRuntime,
    model_run_id: int,
    recording: Recording,
    clips: list[tuple[int, float, float]],
    *,
    batch_size: int = 32,
    on_stored=None,
) -> int:
    """Compute and store the embeddings of (clip_id, start_s, end_s) of one recording; returns the rows added.

    Each clip's span is read at the model's rate the way a job reads its windows, so a clip gets
    the embedding a job with embeddings would have stored. Rows already there are kept.
    """
    path = recording.absolute_path
    added = 0
    for first in range(0, len(clips), CLIPS_PER_STORE):
        chunk = clips[first : first + CLIPS_PER_STORE]
        spans = [audio.load_segment(path, start_s, end_s, runtime.sample_rate) for _, start_s, end_s in chunk]
        vectors = embed_spans(runtime, spans, batch_size=batch_size)
        added += store_embeddings("clip", np.array([clip_id for clip_id, _, _ in chunk]), model_run_id, vectors)
        if on_stored is not None:
            on_stored(len(chunk))
    return added
