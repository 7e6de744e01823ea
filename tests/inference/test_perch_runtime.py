"""The Perch 2.0 runtime, run on a test model with Perch 2.0's signature (built in conftest; it is not Perch)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from inference.runtimes.perch import PerchModelError, PerchRuntime, peak_normalise


def noise(batch: int, amplitude: float = 0.1, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((batch, 160_000)) * amplitude).astype(np.float32)


def test_describes_perch_2():
    assert (PerchRuntime.sample_rate, PerchRuntime.window_s, PerchRuntime.embedding_dim) == (32_000, 5.0, 1536)


def test_loads_the_hub_layout_with_its_class_list(perch_test_runtime, test_classes):
    assert perch_test_runtime.window_samples == 160_000
    assert [label.name for label in perch_test_runtime.labels] == list(test_classes)
    assert perch_test_runtime.labels[0].scientific_name == "Turdus migratorius"


def test_loads_the_kaggle_layout_with_the_csv_beside_savedmodel(test_model_kaggle_layout, perch_test_runtime):
    runtime = PerchRuntime(test_model_kaggle_layout)
    assert runtime.labels == perch_test_runtime.labels
    np.testing.assert_allclose(runtime.predict(noise(2))[0], perch_test_runtime.predict(noise(2))[0], atol=1e-6)


def test_loads_the_savedmodel_folder_itself_of_the_kaggle_layout(test_model_kaggle_layout, test_classes):
    assert len(PerchRuntime(test_model_kaggle_layout / "savedmodel").labels) == len(test_classes)


def test_predict_gives_scores_per_class_and_1536_d_embeddings(perch_test_runtime, test_classes):
    scores, embeddings = perch_test_runtime.predict(noise(3))
    assert scores.shape == (3, len(test_classes)) and scores.dtype == np.float32
    assert embeddings.shape == (3, 1536) and embeddings.dtype == np.float32
    assert ((scores >= 0) & (scores <= 1)).all()


def test_scores_are_the_sigmoid_of_the_label_logits(perch_test_runtime):
    batch = noise(4)
    logits = perch_test_runtime.outputs(batch)["label"]
    np.testing.assert_allclose(perch_test_runtime.predict(batch)[0], 1 / (1 + np.exp(-logits)), rtol=1e-6)


def test_outputs_have_perch_2_shapes(perch_test_runtime, test_classes):
    outputs = perch_test_runtime.outputs(noise(2))
    assert outputs["embedding"].shape == (2, 1536)
    assert outputs["label"].shape == (2, len(test_classes))
    assert outputs["spatial_embedding"].shape == (2, 5, 3, 1536)
    assert outputs["frontend"].shape == (2, 500, 128)


def test_a_batch_of_16_equals_16_batches_of_1(perch_test_runtime):
    batch = np.concatenate([noise(8, 0.02, seed=1), noise(8, 0.6, seed=2)])
    scores, embeddings = perch_test_runtime.predict(batch)
    one_by_one = [perch_test_runtime.predict(window[None]) for window in batch]
    np.testing.assert_allclose(scores, np.concatenate([s for s, _ in one_by_one]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(embeddings, np.concatenate([e for _, e in one_by_one]), rtol=1e-5, atol=1e-5)


def test_the_model_sees_every_window_at_peak_0_25(perch_test_runtime):
    batch = np.concatenate([noise(1, 0.001), noise(1, 0.9), noise(1, 3.0)])
    fed_peak = perch_test_runtime.outputs(batch)["frontend"][:, 0, 0]
    np.testing.assert_allclose(fed_peak, 0.25, rtol=1e-6)


def test_loudness_does_not_change_the_outputs(perch_test_runtime):
    quiet, loud = noise(1, 0.01), noise(1, 0.01) * 50
    np.testing.assert_allclose(perch_test_runtime.predict(quiet)[1], perch_test_runtime.predict(loud)[1], atol=1e-5)


def test_a_silent_window_stays_silent_without_nans(perch_test_runtime):
    outputs = perch_test_runtime.outputs(np.zeros((2, 160_000), np.float32))
    assert outputs["frontend"].max() == 0
    assert all(np.isfinite(value).all() for value in outputs.values())


def test_peak_normalise_removes_the_offset_and_scales_to_the_peak():
    window = np.full((1, 10), 0.5, np.float32)
    window[0, 3] = 0.9
    normalised = peak_normalise(window)
    assert abs(normalised.mean()) < 1e-7
    assert np.abs(normalised).max() == pytest.approx(0.25)


def test_an_empty_batch_gives_empty_outputs(perch_test_runtime, test_classes):
    scores, embeddings = perch_test_runtime.predict(np.zeros((0, 160_000), np.float32))
    assert scores.shape == (0, len(test_classes)) and embeddings.shape == (0, 1536)


def test_windows_of_the_wrong_length_are_refused(perch_test_runtime):
    with pytest.raises(ValueError, match="160000 samples"):
        perch_test_runtime.predict(np.zeros((1, 144_000), np.float32))


@pytest.mark.parametrize("location", [None, ""])
def test_unset_perch_model_says_the_weights_are_not_bundled(location):
    with pytest.raises(PerchModelError, match="PERCH_MODEL is not set") as error:
        PerchRuntime(location)
    assert "not bundled" in str(error.value) and "Kaggle" in str(error.value)
    assert "set PERCH_MODEL to the downloaded folder" in str(error.value)


def test_a_missing_folder_says_where_to_download(tmp_path):
    with pytest.raises(PerchModelError, match="is not a folder.*not bundled"):
        PerchRuntime(tmp_path / "nowhere")


def test_a_folder_without_a_savedmodel_is_refused(tmp_path):
    with pytest.raises(PerchModelError, match="holds no saved_model.pb"):
        PerchRuntime(tmp_path)


def test_a_model_without_its_class_list_is_refused(tmp_path, test_model_hub_layout):
    import shutil

    shutil.copytree(test_model_hub_layout, tmp_path / "model", ignore=shutil.ignore_patterns("labels.csv"))
    with pytest.raises(PerchModelError, match="no class list of its 7 classes.*another_list.csv"):
        PerchRuntime(tmp_path / "model")


def test_a_hub_handle_loads_through_tensorflow_hub(monkeypatch, test_model_hub_layout, test_classes):
    handles = []

    def resolve(handle):
        handles.append(handle)
        return str(test_model_hub_layout)

    monkeypatch.setitem(sys.modules, "tensorflow_hub", types.SimpleNamespace(resolve=resolve))
    runtime = PerchRuntime(
        "https://www.kaggle.com/models/google/bird-vocalization-classifier/TensorFlow2/perch_v2_cpu/1"
    )
    assert handles == ["https://www.kaggle.com/models/google/bird-vocalization-classifier/TensorFlow2/perch_v2_cpu/1"]
    assert len(runtime.labels) == len(test_classes)


def test_a_hub_handle_without_tensorflow_hub_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_hub", None)
    with pytest.raises(PerchModelError, match="needs the tensorflow-hub package"):
        PerchRuntime("https://tfhub.dev/google/bird-vocalization-classifier/8")


class _GpuOnlyExport:
    """What tf.saved_model.load returns for Perch 2.0's GPU export on a host without a GPU: it fails when called."""

    def __init__(self):
        self.signatures = {"serving_default": self._serve}

    def _serve(self, inputs):
        raise tf.errors.NotFoundError(
            None,
            None,
            "Graph execution error:\n\nDetected at node XlaCallModule defined at (most recent call last):\n"
            "The current platform CPU is not among the platforms required by the module: [CUDA]",
        )


def test_a_gpu_export_on_a_cpu_host_says_to_use_the_cpu_export(monkeypatch, test_model_hub_layout):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this host has a GPU")
    monkeypatch.setattr(tf.saved_model, "load", lambda path: _GpuOnlyExport())
    with pytest.raises(PerchModelError, match="GPU export.*perch_v2_cpu.*platforms required by the module"):
        PerchRuntime(test_model_hub_layout)


def test_the_runtime_runs_on_the_cpu_when_asked_or_when_there_is_no_gpu(test_model_hub_layout):
    import tensorflow as tf

    on_cpu = PerchRuntime(test_model_hub_layout, use_gpu=False)
    assert on_cpu.device == "/CPU:0"
    wanted = PerchRuntime(test_model_hub_layout, use_gpu=True)
    assert wanted.device == ("/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0")
    batch = np.random.default_rng(3).normal(scale=0.1, size=(2, 160_000)).astype(np.float32)
    np.testing.assert_allclose(on_cpu.predict(batch)[1], wanted.predict(batch)[1], atol=1e-4)
