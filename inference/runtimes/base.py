"""The interface every model runtime implements, and the label record it speaks in."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from inference.config import InferenceConfig


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

    Runtimes are loaded once per worker process and kept (see `inference.runtimes.get_runtime`). What the
    layers above need to know of a model before loading it (its name for people, which job settings it
    reads, how it is built from the project's settings) is on the class, so they never name a model.
    `settings` below is any object with the project's settings as attributes (Django's, in the app).
    """

    name: str
    version: str
    sample_rate: int
    window_s: float
    embedding_dim: int
    labels: tuple[Label, ...]
    # The factor on the logit that `predict` applies (BirdNET's sensitivity); 1 for every other model.
    sensitivity: float = 1.0
    # The batch the runtime runs best at (a GPU's), filled across recordings by the pipeline; None: the job's.
    preferred_batch_size: int | None = None
    # The model's name for people ("BirdNET"); `name` is the one the database, the API and the commands use.
    display_name: str = ""
    # Whether a job's "use a GPU" changes anything for this model.
    can_use_gpu: bool = False
    # The settings of a job's config that only some models read (inference.config.MODEL_SETTINGS) and this one does.
    job_settings: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A new model without a name for people is shown by its own name.
        if "name" in cls.__dict__ and "display_name" not in cls.__dict__:
            cls.display_name = cls.name

    @classmethod
    def options(cls, settings: Any, config: InferenceConfig) -> dict[str, Any]:
        """The keyword arguments of the constructor for a job with `config`, under the project's `settings`."""
        return {}

    @classmethod
    def prepare(cls, **options: Any) -> list[Path]:
        """Make, once, the files a runtime built with `options` derives from its model and keeps on disk, so that
        the first job does not wait for them; returns them. Nothing to make by default."""
        return []

    @classmethod
    def unavailable_reason(cls, settings: Any) -> str | None:
        """Why jobs cannot run this model under `settings` (naming the fix), or None when they can."""
        return None

    @classmethod
    def known_labels(cls, settings: Any) -> tuple[Label, ...] | None:
        """The model's labels read without loading it (from a label file); None where only the loaded model knows."""
        return None

    @classmethod
    def known_label_names(cls, settings: Any) -> frozenset[str] | None:
        """The names a custom species list may use (full labels and scientific names), known without loading the
        model; None when they can be checked only once it is loaded."""
        labels = cls.known_labels(settings)
        return None if labels is None else _names_of(labels)

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


@cache
def _names_of(labels: tuple[Label, ...]) -> frozenset[str]:
    return frozenset(label.name for label in labels) | frozenset(label.scientific_name for label in labels)
