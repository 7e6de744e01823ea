"""The interface every model runtime implements, and the label record it speaks in."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Label:
    """One output class of a model, split into scientific and common name."""

    scientific_name: str
    common_name: str = ""

    @property
    def name(self) -> str:
        """The label as BirdNET writes it ("Turdus migratorius_American Robin"), or the bare class name."""
        return f"{self.scientific_name}_{self.common_name}" if self.common_name else self.scientific_name

    @classmethod
    def parse(cls, text: str) -> Label:
        """Read "Scientific_Common" (BirdNET) or a bare class name (Perch)."""
        scientific_name, _, common_name = text.strip().partition("_")
        return cls(scientific_name, common_name)


class ModelRuntime(ABC):
    """A loaded model: batches of mono float32 windows in, scores and embeddings out.

    Runtimes are loaded once per worker process and kept (see `inference.runtimes.get_runtime`).
    """

    name: str
    version: str
    sample_rate: int
    window_s: float
    embedding_dim: int
    labels: tuple[Label, ...]
    # The factor on the logit that `predict` applies (BirdNET's sensitivity); 1 for every other model.
    sensitivity: float = 1.0

    @property
    def window_samples(self) -> int:
        return round(self.sample_rate * self.window_s)

    @abstractmethod
    def predict_logits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows [B, window_samples] float32 -> (logits [B, n_labels] float32, embeddings [B, embedding_dim]).

        The logits are the model's raw output: what is stored, and what every score is derived from.
        """

    def predict(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows [B, window_samples] float32 -> (scores [B, n_labels] in [0, 1], embeddings [B, embedding_dim])."""
        logits, embeddings = self.predict_logits(batch)
        return self.scores(logits, self.sensitivity), embeddings

    @staticmethod
    def scores(logits: np.ndarray, sensitivity: float = 1.0) -> np.ndarray:
        """The model's scores from its logits at a sensitivity (the factor on the logit), float32 in [0, 1]."""
        logits = np.asarray(logits, dtype=np.float32)
        return (0.5 * (1.0 + np.tanh(0.5 * np.float32(sensitivity) * logits))).astype(np.float32)

    def species_filter(self, lat: float, lon: float, week: int = -1, threshold: float = 0.03) -> frozenset[int] | None:
        """Indices of the labels likely at a place and week; None when the model has no range filter."""
        return None

    @cached_property
    def label_names(self) -> tuple[str, ...]:
        """Each label's name ("Turdus migratorius_American Robin"), in the order of the model's output."""
        return tuple(label.name for label in self.labels)

    @cached_property
    def label_index(self) -> dict[str, int]:
        """Label name -> its index in the model's output."""
        return {name: index for index, name in enumerate(self.label_names)}

    @cached_property
    def _indices_by_name(self) -> dict[str, list[int]]:
        by_name: dict[str, list[int]] = {}
        for index, label in enumerate(self.labels):
            by_name.setdefault(label.name, []).append(index)
            if label.scientific_name != label.name:
                by_name.setdefault(label.scientific_name, []).append(index)
        return by_name

    def label_indices(self, names: Iterable[str]) -> frozenset[int]:
        """Indices of a custom species list: full labels ("Turdus migratorius_American Robin") or scientific names."""
        by_name = self._indices_by_name
        wanted = [name.strip() for name in names if name.strip()]
        unknown = [name for name in wanted if name not in by_name]
        if unknown:
            shown = ", ".join(repr(name) for name in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise ValueError(f"not in {self.name}'s labels: {shown}{more}")
        return frozenset(index for name in wanted for index in by_name[name])

    def _check_batch(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != self.window_samples:
            raise ValueError(
                f"{self.name} takes windows of {self.window_samples} samples ({self.window_s:g} s at "
                f"{self.sample_rate} Hz) as an array [batch, samples]; got shape {batch.shape}"
            )
        return batch
