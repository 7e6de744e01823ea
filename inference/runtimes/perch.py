"""Perch 2.0: a TensorFlow SavedModel the user downloads (its weights are not bundled), batched, GPU if TF sees one."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.runtimes.base import Label, ModelRuntime

if TYPE_CHECKING:
    from inference.config import InferenceConfig

TARGET_PEAK = 0.25
OUTPUTS = ("embedding", "label", "spatial_embedding", "frontend")
DOWNLOAD_HELP = (
    "Perch 2.0's weights are not bundled with Echoroo ML: download them from Kaggle "
    "(google/bird-vocalization-classifier, TensorFlow 2, variation perch_v2_cpu for CPU hosts or perch_v2 for "
    "GPU hosts) or TF Hub, and set PERCH_MODEL to the downloaded folder"
)
# How a GPU-only export fails on a CPU: "The current platform CPU is not among the platforms required by the
# module: [CUDA]" from XlaCallModule, or a device placement error naming the GPU.
_GPU_ONLY_ERROR = re.compile(r"platforms required by the module|CUDA|GPU|XlaLaunch|device placement|assign a device")


class PerchModelError(RuntimeError):
    """PERCH_MODEL is unset, missing, or not a usable Perch 2.0 SavedModel."""


def peak_normalise(batch: np.ndarray, peak: float = TARGET_PEAK) -> np.ndarray:
    """Each window with its mean removed and scaled to `peak`, as perch-hoplite feeds Perch; silence stays silent."""
    centred = batch - batch.mean(axis=1, keepdims=True)
    peaks = np.abs(centred).max(axis=1, keepdims=True)
    scale = np.divide(peak, peaks, out=np.zeros_like(peaks), where=peaks > 0)
    return (centred * scale).astype(np.float32)


def resolve_location(model: str | Path | None) -> Path:
    """A local folder for PERCH_MODEL: itself, or a TF Hub / Kaggle URL fetched through tensorflow_hub."""
    text = str(model or "").strip()
    if not text:
        raise PerchModelError(f"PERCH_MODEL is not set: {DOWNLOAD_HELP}")
    if text.startswith(("https://", "http://")):
        try:
            import tensorflow_hub
        except ImportError:
            raise PerchModelError(
                f"PERCH_MODEL={text} is a hub handle, which needs the tensorflow-hub package (pip install "
                f"tensorflow-hub); or: {DOWNLOAD_HELP}"
            ) from None
        try:
            return Path(tensorflow_hub.resolve(text))
        except Exception as error:
            raise PerchModelError(f"cannot fetch PERCH_MODEL={text} ({error}): {DOWNLOAD_HELP}") from error
    path = Path(text).expanduser()
    if not path.is_dir():
        raise PerchModelError(f"PERCH_MODEL={text} is not a folder: {DOWNLOAD_HELP}")
    return path


def find_model_files(location: Path) -> tuple[Path, list[Path]]:
    """(SavedModel folder, candidate class-list CSVs) in either Kaggle layout:
    <folder>/saved_model.pb + <folder>/assets/*.csv, or <folder>/savedmodel/saved_model.pb + <folder>/*.csv."""
    if (location / "saved_model.pb").is_file():
        model_dir, beside = location, location.parent
    elif (location / "savedmodel" / "saved_model.pb").is_file():
        model_dir, beside = location / "savedmodel", location
    else:
        raise PerchModelError(
            f"PERCH_MODEL={location} holds no saved_model.pb (nor savedmodel/saved_model.pb): {DOWNLOAD_HELP}"
        )
    return model_dir, sorted((model_dir / "assets").glob("*.csv")) or sorted(beside.glob("*.csv"))


def read_class_list(path: Path) -> tuple[str, ...]:
    """A Perch class list: the list's name in the first row, then one class per row in the first column."""
    with path.open(newline="", encoding="utf-8") as rows:
        return tuple(row[0].strip() for row in list(csv.reader(rows))[1:] if row)


def _tensorflow():
    """TensorFlow, imported on first use: reading a runtime's name and window needs no 600 MB import."""
    import tensorflow

    return tensorflow


def _explain(error: Exception, location: Path) -> PerchModelError:
    tf = _tensorflow()
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    gpu_lines = [line for line in lines if _GPU_ONLY_ERROR.search(line)]
    if gpu_lines and not tf.config.list_physical_devices("GPU"):
        return PerchModelError(
            f"PERCH_MODEL={location} is a GPU export of Perch 2.0 and TensorFlow sees no GPU here: download the CPU "
            f"export (Kaggle google/bird-vocalization-classifier, variation perch_v2_cpu) and set PERCH_MODEL to "
            f"it ({gpu_lines[0]})"
        )
    return PerchModelError(f"cannot load PERCH_MODEL={location} as Perch 2.0 ({lines[0]}); {DOWNLOAD_HELP}")


def _let_gpu_memory_grow() -> None:
    # Without this TensorFlow takes every GPU's whole memory at start, leaving none to other workers.
    tf = _tensorflow()
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # the GPU is already initialised: too late, and harmless
            pass


class PerchRuntime(ModelRuntime):
    name = "perch"
    version = "2.0"
    sample_rate = 32_000
    window_s = 5.0
    embedding_dim = 1536
    display_name = "Perch"
    can_use_gpu = True

    @classmethod
    def options(cls, settings: Any, config: InferenceConfig) -> dict[str, Any]:
        return {"model": settings.PERCH_MODEL or None, "use_gpu": config.use_gpu}

    @classmethod
    def unavailable_reason(cls, settings: Any) -> str | None:
        return None if settings.PERCH_MODEL else f"PERCH_MODEL is not set: {DOWNLOAD_HELP}"

    def __init__(self, model: str | Path | None = None, *, use_gpu: bool = True) -> None:
        """`model` is settings.PERCH_MODEL: a downloaded Perch 2.0 folder or a TF Hub / Kaggle URL.

        With `use_gpu` the model runs on the first GPU TensorFlow sees (a worker given one GPU by
        CUDA_VISIBLE_DEVICES sees exactly that one), else on the CPU.
        """
        self.location = resolve_location(model)
        model_dir, class_lists = find_model_files(self.location)
        _let_gpu_memory_grow()
        gpus = _tensorflow().config.list_physical_devices("GPU")
        self.device = "/GPU:0" if use_gpu and gpus else "/CPU:0"
        try:
            with _tensorflow().device(self.device):
                self._model = _tensorflow().saved_model.load(str(model_dir))
            self._serve = self._model.signatures["serving_default"]
            # One call now, so that a model that cannot run here fails at load time with a clear message.
            warm_up = self.outputs(np.zeros((1, self.window_samples), np.float32))
        except PerchModelError:
            raise
        except Exception as error:
            raise _explain(error, self.location) from error
        if warm_up["embedding"].shape[-1] != self.embedding_dim:
            raise PerchModelError(
                f"PERCH_MODEL={self.location} gives {warm_up['embedding'].shape[-1]}-d embeddings, "
                f"not Perch 2.0's {self.embedding_dim}: {DOWNLOAD_HELP}"
            )
        self.labels = self._match_class_list(class_lists, warm_up["label"].shape[-1])

    def _match_class_list(self, class_lists: list[Path], n_classes: int) -> tuple[Label, ...]:
        for path in class_lists:
            classes = read_class_list(path)
            if len(classes) == n_classes:
                return tuple(Label(name) for name in classes)
        raise PerchModelError(
            f"PERCH_MODEL={self.location} has no class list of its {n_classes} classes "
            f"(looked at: {', '.join(path.name for path in class_lists) or 'no CSV files'}): {DOWNLOAD_HELP}"
        )

    def outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The model's outputs for windows [B, 160000]: embedding, label (logits), spatial_embedding, frontend."""
        batch = peak_normalise(self._check_batch(batch))
        with _tensorflow().device(self.device):
            result = self._serve(inputs=_tensorflow().constant(batch))
        missing = [name for name in OUTPUTS if name not in result]
        if missing:
            raise PerchModelError(f"PERCH_MODEL={self.location} has no output {', '.join(missing)}: {DOWNLOAD_HELP}")
        return {name: value.numpy() for name, value in result.items()}

    def predict_logits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = self._check_batch(batch)
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), np.float32), np.zeros((0, self.embedding_dim), np.float32)
        result = self.outputs(batch)
        # Scores are the sigmoid of these (ModelRuntime.scores, written with tanh: no overflow for large logits).
        return result["label"].astype(np.float32), result["embedding"].astype(np.float32)
