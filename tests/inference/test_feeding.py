"""Several recordings at once: producer processes decode, the model's batches are filled across recordings."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from inference.config import InferenceConfig
from inference.feeding import FeedStats, analyze_many
from inference.pipeline import Cancelled, PipelineOptions, analyze
from inference.selection import storage_floor

from .conftest import SHARED_DATA

RECORDINGS = ("1min.wav", "great_plains_toad.wav", "rugr_drum.wav", "metadata.wav", "veryshort.wav")


def options(**config) -> PipelineOptions:
    return PipelineOptions(config=InferenceConfig(**config), floor_logit=storage_floor(0.1))


def one_by_one(runtime, path, option):
    batches = list(analyze(runtime, path, option))
    return batches


def collected(events, count: int):
    """Per recording: its batches in the order given, and whether it finished or why it failed."""
    batches = {index: [] for index in range(count)}
    ends = {}
    for event in events:
        assert event.index not in ends, "nothing comes after a recording's end"
        if event.batch is not None:
            batches[event.index].append(event.batch)
        else:
            ends[event.index] = "finished" if event.finished else event.error
    return batches, ends


def joined(batches, name):
    return np.concatenate([getattr(batch, name) for batch in batches])


@pytest.mark.parametrize("in_threads", [False, True])
def test_results_per_recording_equal_one_recording_at_a_time(birdnet, in_threads, monkeypatch):
    paths = [SHARED_DATA / name for name in RECORDINGS]
    option = options(batch_size=16, confidence_threshold=0.1)
    if in_threads:  # as inside a daemonic django-q2 worker, which may not start processes
        import multiprocessing

        monkeypatch.setattr(multiprocessing.current_process(), "daemon", True, raising=False)
    stats = FeedStats()
    batches, ends = collected(
        analyze_many(birdnet, paths, [option] * len(paths), batch_size=48, workers=2, stats=stats), len(paths)
    )
    assert ends == dict.fromkeys(range(len(paths)), "finished")
    for index, path in enumerate(paths):
        expected = one_by_one(birdnet, path, option)
        np.testing.assert_array_equal(joined(batches[index], "starts_s"), joined(expected, "starts_s"))
        np.testing.assert_array_equal(joined(batches[index], "ends_s"), joined(expected, "ends_s"))
        np.testing.assert_allclose(joined(batches[index], "embeddings"), joined(expected, "embeddings"), atol=1e-5)
        ours = [hit for batch in batches[index] for hit in batch.hits]
        theirs = [hit for batch in expected for hit in batch.hits]
        assert [[label for label, _ in window] for window in ours] == [[label for label, _ in w] for w in theirs]
    windows = sum(len(joined(batches[index], "starts_s")) for index in range(len(paths)))
    assert stats.windows == windows
    assert 0 < stats.busy <= 1


class SlowFirstCall:
    """The real runtime, whose first call takes two seconds: meanwhile every recording's windows arrive."""

    def __init__(self, runtime):
        self.runtime, self.batch_sizes = runtime, []

    def predict_logits(self, batch):
        if not self.batch_sizes:
            time.sleep(2.0)
        self.batch_sizes.append(len(batch))
        return self.runtime.predict_logits(batch)

    def __getattr__(self, name):
        return getattr(self.runtime, name)


def test_model_calls_are_filled_across_recordings(birdnet):
    paths = [SHARED_DATA / name for name in RECORDINGS]  # 20 + 15 + 4 + 5 + 1 windows
    runtime = SlowFirstCall(birdnet)
    batches, ends = collected(
        analyze_many(runtime, paths, [options()] * len(paths), batch_size=16, workers=2), len(paths)
    )
    assert set(ends.values()) == {"finished"}
    first, *rest = runtime.batch_sizes
    assert sum(runtime.batch_sizes) == 45
    # After the first call everything waits: every call is full but the last, whatever recording it comes from.
    assert rest[:-1] == [16] * (len(rest) - 1) and 0 < rest[-1] <= 16


def test_a_corrupt_file_fails_that_recording_only(birdnet, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
    paths = [SHARED_DATA / "metadata.wav", broken, SHARED_DATA / "rugr_drum.wav"]
    batches, ends = collected(analyze_many(birdnet, paths, [options()] * 3, batch_size=32, workers=2), len(paths))
    assert ends[0] == ends[2] == "finished"
    assert "broken.wav" in ends[1]
    assert batches[1] == [] and len(joined(batches[0], "starts_s")) == 5


def test_a_cancel_stops_between_batches(birdnet):
    paths = [SHARED_DATA / "1min.wav"] * 3
    calls = iter(range(1000))
    with pytest.raises(Cancelled):
        for _ in analyze_many(
            birdnet, paths, [options()] * 3, batch_size=8, workers=2, should_stop=lambda: next(calls) >= 3
        ):
            pass
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("audio-producer")]


def test_recordings_of_one_call_share_one_overlap(birdnet):
    with pytest.raises(ValueError, match="overlap"):
        list(
            analyze_many(
                birdnet, [SHARED_DATA / "1min.wav"] * 2, [options(), options(overlap=1.0)], batch_size=8, workers=1
            )
        )
