"""Recording -> windows -> batches -> runtime -> raw output, and the job's selected, merged detections (no database)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from echoroo import audio
from echoroo.read_ahead import made_ahead
from inference.config import InferenceConfig
from inference.runtimes.base import ModelRuntime
from inference.selection import Selection, WindowOutputs, storage_floor

# Batches decoded ahead of the model: enough that inference never waits on I/O,
# few enough that memory stays bounded (each is batch_size windows).
PREFETCH_BATCHES = 3


@dataclass(frozen=True)
class PipelineOptions:
    """How one recording is analysed: the job's config (validated), the labels it allows, the output kept."""

    config: InferenceConfig = field(default_factory=InferenceConfig)
    # Label indices kept (species filter or custom list); None keeps every label.
    allowed_labels: frozenset[int] | None = None
    # Raw output kept for storage: every label with a logit at least this (see inference.selection).
    floor_logit: float = storage_floor(0.1)

    def selection(self, runtime: ModelRuntime) -> Selection:
        return Selection.of(runtime, self.config.confidence_threshold, self.config.sensitivity, self.allowed_labels)


@dataclass(frozen=True)
class Detection:
    """A label found on a stretch of a recording, with its best score."""

    label_index: int
    start_s: float
    end_s: float
    score: float


@dataclass
class BatchResult:
    """One batch of windows: their span, raw output, embeddings, and the labels the job selected in each."""

    starts_s: np.ndarray
    ends_s: np.ndarray
    embeddings: np.ndarray | None
    # For each window, (label index, score) selected, best first.
    hits: list[list[tuple[int, float]]]
    # The model's logits at or above the floor (or the selection's needs, when lower).
    outputs: WindowOutputs | None = None

    def __len__(self) -> int:
        return len(self.starts_s)


@dataclass
class RecordingResult:
    """Everything one recording gives, gathered in memory (for tests, benchmarks, small files)."""

    batches: list[BatchResult] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)

    @property
    def window_count(self) -> int:
        return sum(len(batch) for batch in self.batches)

    def window_detections(self) -> list[Detection]:
        """One detection per window and label, as BirdNET-Analyzer lists them."""
        return [
            Detection(label, float(batch.starts_s[i]), float(batch.ends_s[i]), score)
            for batch in self.batches
            for i, window_hits in enumerate(batch.hits)
            for label, score in window_hits
        ]

    def embeddings(self) -> np.ndarray | None:
        parts = [batch.embeddings for batch in self.batches if batch.embeddings is not None]
        return np.concatenate(parts) if parts else None


class Cancelled(Exception):
    """Raised between batches when the caller asks to stop."""


def analyze(
    runtime: ModelRuntime,
    path: str | Path,
    options: PipelineOptions,
    *,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[BatchResult]:
    """Run the model over a recording, a batch at a time, decoding ahead in a thread.

    Memory stays bounded whatever the recording's length: only PREFETCH_BATCHES batches
    of audio and the current batch's results are held.
    """
    config = options.config
    selection = options.selection(runtime)
    kept_from = min(options.floor_logit, selection.min_logit)
    for starts_s, ends_s, windows in _prefetched(
        audio.iter_batches(path, runtime.sample_rate, runtime.window_s, config.overlap, config.batch_size)
    ):
        if should_stop is not None and should_stop():
            raise Cancelled()
        logits, embeddings = runtime.predict_logits(windows)
        outputs = WindowOutputs.from_dense(logits, kept_from)
        yield BatchResult(
            starts_s=starts_s,
            ends_s=ends_s,
            embeddings=embeddings if config.store_embeddings else None,
            hits=selection.hits(outputs),
            outputs=outputs,
        )


def run_recording(runtime: ModelRuntime, path: str | Path, options: PipelineOptions) -> RecordingResult:
    """Analyse a whole recording and merge its detections, keeping everything in memory."""
    result = RecordingResult()
    merger = DetectionMerger()
    for batch in analyze(runtime, path, options):
        result.batches.append(batch)
        result.detections.extend(merger.add(batch))
    result.detections.extend(merger.finish())
    return result


class DetectionMerger:
    """Merges overlapping consecutive windows with the same label into one detection.

    A label found in windows that overlap one another becomes one detection from the start of
    the first window to the end of the last, with the maximum score. Windows that only touch
    (no overlap) stay separate detections, as BirdNET-Analyzer reports them.
    """

    def __init__(self) -> None:
        self._open: dict[int, Detection] = {}

    def add(self, batch: BatchResult) -> list[Detection]:
        """Feed the next batch (in time order); returns the detections that are now complete."""
        finished: list[Detection] = []
        for start_s, end_s, window_hits in zip(batch.starts_s, batch.ends_s, batch.hits, strict=True):
            start_s, end_s = float(start_s), float(end_s)
            seen = set()
            for label, score in window_hits:
                seen.add(label)
                current = self._open.get(label)
                if current is not None and start_s < current.end_s:
                    self._open[label] = Detection(label, current.start_s, end_s, max(current.score, score))
                else:
                    if current is not None:
                        finished.append(current)
                    self._open[label] = Detection(label, start_s, end_s, score)
            for label in [label for label in self._open if label not in seen]:
                finished.append(self._open.pop(label))
        return finished

    def finish(self) -> list[Detection]:
        """The detections still open at the end of the recording."""
        finished = list(self._open.values())
        self._open.clear()
        return finished


def _prefetched(batches: Iterator) -> Iterator:
    """Iterate `batches` produced by a background thread, a few ahead of the consumer."""
    return made_ahead(lambda: batches, PREFETCH_BATCHES, name="audio-producer")
