"""What a job selects from a model's raw output: scores at its sensitivity, its threshold, its labels (no database).

The raw output of a window is every label whose logit is at least a floor. A job's detections are
derived from it by one function, `Selection.hits`, whether the logits came from the model a moment
ago or from the database years later: the same logits give the same detections, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# The sensitivities a job may ask for (BirdNET's factor on the logit).
MIN_SENSITIVITY, MAX_SENSITIVITY = 0.5, 1.5
# Logits kept below what a threshold strictly needs, so that float32 rounding in a score computed
# at the boundary can never make stored output miss a detection (a score moves at most a quarter
# of a logit step: 1e-3 of logit is ~2e-4 of score, far above float32's 6e-8).
LOGIT_MARGIN = 1e-3


def logit(probability: float) -> float:
    """The logit of a score in [0, 1] (+-inf at the ends)."""
    if probability <= 0:
        return -math.inf
    if probability >= 1:
        return math.inf
    return math.log(probability / (1.0 - probability))


def storage_floor(floor_score: float) -> float:
    """The lowest logit stored: every label that reaches `floor_score` at some sensitivity in 0.5-1.5 is kept."""
    edge = logit(floor_score)
    return min(edge / MIN_SENSITIVITY, edge / MAX_SENSITIVITY) - 2 * LOGIT_MARGIN


def needed_logit(threshold: float, sensitivity: float) -> float:
    """The lowest logit whose score at `sensitivity` can reach `threshold` (with a margin for rounding)."""
    return logit(threshold) / sensitivity - LOGIT_MARGIN


@dataclass(frozen=True)
class WindowOutputs:
    """Sparse logits of consecutive windows: for window i, `labels[offsets[i]:offsets[i+1]]` and their `logits`."""

    offsets: np.ndarray  # [windows + 1] int64
    labels: np.ndarray  # [entries] int64, label indices of the model
    logits: np.ndarray  # [entries] float32

    @property
    def windows(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def from_dense(cls, logits: np.ndarray, floor_logit: float) -> WindowOutputs:
        """The entries of logits [windows, labels] at or above `floor_logit`, window by window."""
        windows, labels = np.nonzero(logits >= floor_logit)
        counts = np.bincount(windows, minlength=len(logits))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(offsets, labels.astype(np.int64), np.asarray(logits[windows, labels], dtype=np.float32))

    @classmethod
    def from_lists(cls, labels: list[np.ndarray], logits: list[np.ndarray]) -> WindowOutputs:
        """One window per pair of arrays (labels, logits)."""
        counts = [len(window) for window in labels]
        offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
        flat_labels = np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64)
        flat_logits = np.concatenate(logits).astype(np.float32) if logits else np.zeros(0, np.float32)
        return cls(offsets, flat_labels, flat_logits)

    @classmethod
    def concatenate(cls, parts: list[WindowOutputs]) -> WindowOutputs:
        if not parts:
            return cls(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
        offsets, start = [np.zeros(1, np.int64)], 0
        for part in parts:
            offsets.append(part.offsets[1:] + start)
            start += int(part.offsets[-1])
        return cls(
            np.concatenate(offsets),
            np.concatenate([part.labels for part in parts]),
            np.concatenate([part.logits for part in parts]),
        )

    def window_of_entries(self) -> np.ndarray:
        return np.repeat(np.arange(self.windows), np.diff(self.offsets))

    def at_least(self, floor_logit: float) -> WindowOutputs:
        """Only the entries at or above `floor_logit` (what is stored at that floor)."""
        keep = self.logits >= floor_logit
        counts = np.bincount(self.window_of_entries()[keep], minlength=self.windows)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return WindowOutputs(offsets, self.labels[keep], self.logits[keep])


@dataclass(frozen=True)
class Selection:
    """A job's choice: its threshold on the score at its sensitivity, and the labels it allows (None: all)."""

    threshold: float
    sensitivity: float
    allowed: np.ndarray | None  # bool mask over the model's labels
    scores: Callable[[np.ndarray, float], np.ndarray]  # the model's score from logits at a sensitivity

    @classmethod
    def of(cls, runtime, threshold: float, sensitivity: float, allowed_labels: frozenset[int] | None) -> Selection:
        mask = None
        if allowed_labels is not None:
            mask = np.zeros(len(runtime.labels), dtype=bool)
            mask[list(allowed_labels)] = True
        return cls(float(threshold), float(sensitivity), mask, runtime.scores)

    @property
    def min_logit(self) -> float:
        """Output at or above this logit is all the selection can take."""
        return needed_logit(self.threshold, self.sensitivity)

    def hits(self, outputs: WindowOutputs) -> list[list[tuple[int, float]]]:
        """Per window, (label index, score) of the labels selected, best score first (then label order)."""
        scores = self.scores(outputs.logits, self.sensitivity)
        keep = scores >= self.threshold
        if self.allowed is not None:
            keep &= self.allowed[outputs.labels]
        windows, labels, kept_scores = outputs.window_of_entries()[keep], outputs.labels[keep], scores[keep]
        order = np.lexsort((labels, -kept_scores, windows))
        hits: list[list[tuple[int, float]]] = [[] for _ in range(outputs.windows)]
        for window, label, score in zip(
            windows[order].tolist(), labels[order].tolist(), kept_scores[order].tolist(), strict=True
        ):
            hits[window].append((label, score))
        return hits
