"""The model-agnostic pipeline: windows, batches, threshold, label filter, merging, streaming."""

import numpy as np
import pytest
import soundfile as sf

from inference.config import InferenceConfig
from inference.pipeline import (
    BatchResult,
    Cancelled,
    Detection,
    DetectionMerger,
    PipelineOptions,
    analyze,
    run_recording,
)
from inference.runtimes.base import Label, ModelRuntime


class LoudnessRuntime(ModelRuntime):
    """A tiny test runtime: label 0 scores a window's peak, label 1 its mean level, label 2 is always 0.9."""

    name = "loudness-test"
    version = "1"
    sample_rate = 8000
    window_s = 1.0
    embedding_dim = 4
    labels = (Label("Peak", "peak"), Label("Mean", "mean"), Label("Always", "always"))

    def __init__(self):
        self.batch_sizes = []

    def predict_logits(self, batch):
        batch = self._check_batch(batch)
        self.batch_sizes.append(len(batch))
        peak = np.abs(batch).max(axis=1)
        mean = np.abs(batch).mean(axis=1)
        scores = np.clip(np.stack([peak, mean, np.full(len(batch), 0.9)], axis=1), 1e-6, 1 - 1e-6)
        embeddings = np.stack([peak, mean, peak * 2, mean * 2], axis=1).astype(np.float32)
        return np.log(scores / (1 - scores)).astype(np.float32), embeddings


@pytest.fixture
def loud_seconds(tmp_path):
    """10 s at 8 kHz: loud (0.8) during seconds 2-4 and 7, quiet (0.01) elsewhere."""
    rate = 8000
    signal = np.full(10 * rate, 0.01, dtype=np.float32)
    signal[2 * rate : 5 * rate] = 0.8
    signal[7 * rate : 8 * rate] = 0.8
    path = tmp_path / "loud.wav"
    sf.write(path, signal, rate, subtype="FLOAT")
    return path


def test_windows_are_batched_and_scored(loud_seconds):
    runtime = LoudnessRuntime()
    result = run_recording(
        runtime, loud_seconds, PipelineOptions(InferenceConfig(confidence_threshold=0.5, batch_size=4))
    )
    assert result.window_count == 10
    assert runtime.batch_sizes == [4, 4, 2]
    peaks = sorted((d.start_s, d.end_s) for d in result.window_detections() if d.label_index == 0)
    assert peaks == [(2.0, 3.0), (3.0, 4.0), (4.0, 5.0), (7.0, 8.0)]
    assert result.embeddings().shape == (10, 4)


def test_threshold_drops_low_scores(loud_seconds):
    result = run_recording(LoudnessRuntime(), loud_seconds, PipelineOptions(InferenceConfig(confidence_threshold=0.95)))
    assert result.window_detections() == []


def test_label_filter_keeps_only_allowed_labels(loud_seconds):
    options = PipelineOptions(InferenceConfig(confidence_threshold=0.5), allowed_labels=frozenset({2}))
    labels = {d.label_index for d in run_recording(LoudnessRuntime(), loud_seconds, options).window_detections()}
    assert labels == {2}


def test_windows_that_only_touch_are_not_merged(loud_seconds):
    options = PipelineOptions(InferenceConfig(confidence_threshold=0.5), allowed_labels=frozenset({0}))
    result = run_recording(LoudnessRuntime(), loud_seconds, options)
    assert len(result.detections) == 4


def test_overlapping_windows_merge_into_one_detection(loud_seconds):
    options = PipelineOptions(InferenceConfig(confidence_threshold=0.5, overlap=0.5), allowed_labels=frozenset({0}))
    result = run_recording(LoudnessRuntime(), loud_seconds, options)
    spans = sorted((d.start_s, d.end_s) for d in result.detections)
    # Windows 1.5-2.5 ... 4.5-5.5 all see the loud stretch 2-5; 6.5-7.5 ... 7.5-8.5 see second 7.
    assert spans == [(1.5, 5.5), (6.5, 8.5)]
    assert all(d.score == pytest.approx(0.8) for d in result.detections)


def test_merger_keeps_the_maximum_score_and_carries_across_batches():
    merger = DetectionMerger()
    first = BatchResult(np.array([0.0, 1.0]), np.array([3.0, 4.0]), None, [[(5, 0.6)], [(5, 0.9)]])
    second = BatchResult(np.array([2.0, 3.0]), np.array([5.0, 6.0]), None, [[(5, 0.7)], []])
    assert merger.add(first) == []
    assert merger.add(second) == [Detection(5, 0.0, 5.0, 0.9)]
    assert merger.finish() == []


def test_hits_are_best_first(loud_seconds):
    result = run_recording(LoudnessRuntime(), loud_seconds, PipelineOptions(InferenceConfig(confidence_threshold=0.5)))
    loud = result.batches[0].hits[2]
    assert loud[0][0] == 2 and {label for label, _ in loud} == {0, 1, 2}
    assert [score for _, score in loud] == sorted((score for _, score in loud), reverse=True)


def test_embeddings_can_be_left_out(loud_seconds):
    result = run_recording(LoudnessRuntime(), loud_seconds, PipelineOptions(InferenceConfig(store_embeddings=False)))
    assert result.embeddings() is None


def test_cancel_stops_between_batches(loud_seconds):
    runtime = LoudnessRuntime()
    calls = iter([False, True])
    batches = analyze(
        runtime, loud_seconds, PipelineOptions(InferenceConfig(batch_size=4)), should_stop=lambda: next(calls)
    )
    assert len(next(batches)) == 4
    with pytest.raises(Cancelled):
        next(batches)
    assert runtime.batch_sizes == [4]


def test_a_decoding_error_reaches_the_caller(tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    from echoroo.audio import AudioError

    with pytest.raises(AudioError, match="broken.wav"):
        run_recording(LoudnessRuntime(), broken, PipelineOptions())


def test_an_empty_recording_gives_nothing(shared_data):
    result = run_recording(LoudnessRuntime(), shared_data / "empty_2c.wav", PipelineOptions())
    assert result.window_count == 0 and result.detections == []
