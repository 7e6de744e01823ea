"""BirdNET's spectrogram chains folded into one matrix each: the same model, about twice as fast on a CPU."""

from __future__ import annotations

import numpy as np
import pytest

from inference.runtimes.birdnet import MODEL_FILE, RANGE_MODEL_FILE, BirdNetRuntime, has_constant_run
from inference.runtimes.spectrogram_fold import FoldError, fold_spectrograms, folded_weight

from .conftest import SHARED_DATA


def operator_kinds(model_bytes: bytes) -> list[str]:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(model_bytes, 0)
    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    graph = model.Subgraphs(0)
    kinds = []
    for position in range(graph.OperatorsLength()):
        code = model.OperatorCodes(graph.Operators(position).OpcodeIndex())
        kinds.append(names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())])
    return kinds


@pytest.fixture(scope="module")
def original(runtime_cache_dir):
    return BirdNetRuntime(frontend="original", cache_dir=runtime_cache_dir)


@pytest.fixture(scope="module")
def real_windows() -> np.ndarray:
    """Whole 3-s windows of real recordings at 48 kHz: birds, a toad, a grouse drumming."""
    from echoroo import audio

    windows = []
    for name in ("1min.wav", "great_plains_toad.wav", "rugr_drum.wav", "metadata.wav"):
        for _, _, batch in audio.iter_batches(SHARED_DATA / name, 48_000, 3.0, 0.0, 64):
            windows.append(batch[~has_constant_run(batch, 1024)])
    return np.concatenate(windows)


def test_the_folded_matrix_equals_window_rfft_real_part_and_mel_projection():
    rng = np.random.default_rng(3)
    frames = rng.normal(size=(16, 2048))
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2048) / 2048)
    mel = rng.random((96, 1025))
    expected = np.fft.rfft(frames * hann).real @ mel.T
    folded = frames @ folded_weight(hann, mel).astype(np.float64).T
    np.testing.assert_allclose(folded, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_a_mel_matrix_of_the_wrong_width_is_refused():
    with pytest.raises(ValueError, match="1025 columns"):
        folded_weight(np.ones(2048), np.ones((96, 1024)))


def test_the_folded_model_has_no_rfft_and_one_matrix_per_spectrogram(birdnet):
    model = (birdnet.model_dir / MODEL_FILE).read_bytes()
    before, after = operator_kinds(model), operator_kinds(fold_spectrograms(model))
    assert before.count("RFFT2D") == 2 and "RFFT2D" not in after
    assert "CAST" not in after
    assert after.count("FULLY_CONNECTED") == before.count("FULLY_CONNECTED")  # each mel projection became the fold
    assert len(after) < len(before)


def test_a_model_without_a_spectrogram_is_not_folded(birdnet):
    with pytest.raises(FoldError, match="no RFFT2D"):
        fold_spectrograms((birdnet.model_dir / RANGE_MODEL_FILE).read_bytes())


def test_folded_logits_and_embeddings_are_within_1e4_of_the_original(birdnet, original, real_windows):
    assert len(real_windows) >= 40
    folded_logits, folded_embeddings = birdnet.predict_logits(real_windows)
    logits, embeddings = original.predict_logits(real_windows)
    assert np.abs(folded_logits - logits).max() <= 1e-4
    assert np.abs(folded_embeddings - embeddings).max() <= 1e-4
    assert (folded_logits.argmax(axis=1) == logits.argmax(axis=1)).all()


def test_the_folded_model_is_not_the_original(birdnet, original, real_windows):
    # The comparison above means something only if the two really are different computations.
    assert not np.array_equal(birdnet.predict_logits(real_windows[:4])[0], original.predict_logits(real_windows[:4])[0])


def test_windows_with_digital_silence_go_through_the_original_graph(birdnet, original, real_windows):
    padded = real_windows[:3].copy()
    padded[0, 100_000:] = 0.0  # the zero padding of a recording's last window
    padded[2, 50_000:52_000] = 0.0  # a recorder's dropout
    assert has_constant_run(padded, 1024).tolist() == [True, False, True]
    logits, embeddings = birdnet.predict_logits(padded)
    reference_logits, reference_embeddings = original.predict_logits(padded)
    np.testing.assert_array_equal(logits[[0, 2]], reference_logits[[0, 2]])
    np.testing.assert_array_equal(embeddings[[0, 2]], reference_embeddings[[0, 2]])
    assert np.abs(logits[1] - reference_logits[1]).max() <= 1e-4


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ((0, 1024), True),
        ((0, 1023), False),
        ((142_976, 144_000), True),
        ((142_977, 144_000), False),
        ((70_000, 71_100), True),
        ((5, 900), False),
    ],
)
def test_a_constant_run_is_found_wherever_it_lies(run, expected):
    window = np.random.default_rng(0).normal(size=(1, 144_000)).astype(np.float32)
    window[0, run[0] : run[1]] = 0.25
    assert has_constant_run(window, 1024).tolist() == [expected]


def test_a_window_of_one_value_is_one_constant_run():
    assert has_constant_run(np.zeros((2, 144_000), np.float32), 1024).tolist() == [True, True]


def test_the_original_graph_stays_available(original, birdnet):
    assert (original.frontend, birdnet.frontend) == ("original", "folded")
    with pytest.raises(ValueError, match="frontend must be"):
        BirdNetRuntime(frontend="fast")
