"""Behaviour of echoroo.audio: decoding, resampling, windowing, bounded memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from echoroo import audio
from echoroo.audio import (
    AudioError,
    count_windows,
    iter_batches,
    iter_blocks,
    iter_windows,
    load_segment,
    read_info,
    window_starts,
)
from tests.conftest import SHARED_DATA


def write_tone(
    path: Path,
    *,
    frequency_hz: float = 1000.0,
    sample_rate: int = 44100,
    duration_s: float = 2.0,
    **write_options: str,
) -> np.ndarray:
    """Write a sine tone at amplitude 0.5 and return the samples written."""
    t = np.arange(round(duration_s * sample_rate)) / sample_rate
    tone = (0.5 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
    sf.write(path, tone, sample_rate, **write_options)
    return tone


def write_noise(path: Path, *, sample_rate: int, frames: int, seed: int = 0) -> np.ndarray:
    """Write lossless float noise (exact round trip) and return it."""
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, frames).astype(np.float32)
    sf.write(path, noise, sample_rate, subtype="FLOAT")
    return noise


def peak_frequency_hz(samples: np.ndarray, sample_rate: int) -> float:
    """Frequency of the strongest FFT bin."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / sample_rate)[np.argmax(spectrum)])


def shared_recording(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"shared test audio {path} is not present")
    return path


# --- header ------------------------------------------------------------------


def test_read_info_reports_the_header():
    info = read_info(shared_recording("1min.wav"))
    assert (info.sample_rate, info.channels, info.frames) == (32000, 1, 1_920_000)
    assert info.duration_s == 60.0
    assert info.format == "WAV"


def test_a_file_with_no_frames_is_readable_with_zero_duration():
    info = read_info(shared_recording("empty_2c.wav"))
    assert (info.channels, info.frames, info.duration_s) == (2, 0, 0.0)


def test_random_bytes_raise_audio_error_naming_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioError, match="corrupt.wav.*not a readable audio file"):
        read_info(corrupt)


def test_empty_file_raises_audio_error_naming_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav.*empty"):
        list(iter_windows(empty, 48000, 3.0))


def test_missing_file_raises_audio_error_naming_the_file(tmp_path):
    with pytest.raises(AudioError, match="nowhere.flac.*no such file"):
        read_info(tmp_path / "nowhere.flac")


def test_audio_error_is_a_value_error():
    assert issubclass(AudioError, ValueError)


def test_truncated_file_raises_audio_error_while_decoding(tmp_path):
    whole = tmp_path / "whole.flac"
    write_tone(whole, sample_rate=32000, duration_s=20.0)
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(AudioError, match="truncated.flac.*truncated or corrupt"):
        list(iter_windows(truncated, 48000, 3.0))


# --- window arithmetic ---------------------------------------------------------


@pytest.mark.parametrize(
    ("duration_s", "window_s", "overlap_s", "expected_starts"),
    [
        (9.0, 3.0, 0.0, [0, 3, 6]),  # exact multiple: no redundant tail window
        (10.0, 3.0, 0.0, [0, 3, 6, 9]),
        (9.0, 3.0, 1.5, [0, 1.5, 3, 4.5, 6]),
        (10.0, 3.0, 1.0, [0, 2, 4, 6, 8]),
        (10.0, 5.0, 2.5, [0, 2.5, 5]),
        (3.0, 3.0, 0.0, [0]),
        (3.5, 3.0, 2.0, [0, 1]),
        (2.0, 3.0, 0.0, [0]),  # shorter than one window
        (0.3, 0.1, 0.0, [0, 0.1, 0.2]),  # 0.3 / 0.1 < 3 in floats
        (0.0, 3.0, 0.0, []),
        (60.0, 3.0, 0.0, list(range(0, 60, 3))),
    ],
)
def test_window_counts_and_start_times(duration_s, window_s, overlap_s, expected_starts):
    count = count_windows(duration_s, window_s, overlap_s, sample_rate=48000)
    starts = window_starts(duration_s, window_s, overlap_s, sample_rate=48000)
    assert count == len(expected_starts)
    np.testing.assert_allclose(starts, expected_starts, atol=1e-12)


def test_a_window_reaching_past_the_end_by_one_sample_adds_a_window():
    one_sample_s = 1 / 48000
    assert count_windows(6.0 + one_sample_s, 3.0, sample_rate=48000) == 3


@pytest.mark.parametrize("overlap_s", [3.0, 4.0, -0.5])
def test_overlap_outside_zero_to_window_raises(overlap_s):
    with pytest.raises(ValueError, match="overlap_s"):
        count_windows(10.0, 3.0, overlap_s, sample_rate=48000)


def test_iter_windows_checks_overlap_too(tmp_path):
    path = tmp_path / "tone.wav"
    write_tone(path)
    with pytest.raises(ValueError, match="overlap_s"):
        next(iter_windows(path, 48000, 3.0, 3.0))


@pytest.mark.parametrize(("window_s", "overlap_s"), [(3.0, 0.0), (1.0, 0.25), (0.5, 0.4)])
def test_windows_from_a_file_follow_window_starts(tmp_path, window_s, overlap_s):
    path = tmp_path / "noise.wav"
    write_noise(path, sample_rate=44100, frames=44100 * 7 + 123)
    duration_s = read_info(path).duration_s
    windows = list(iter_windows(path, 48000, window_s, overlap_s, block_s=0.7))
    expected = window_starts(duration_s, window_s, overlap_s, sample_rate=48000)
    np.testing.assert_allclose([w.start_s for w in windows], expected)
    assert all(w.samples.shape == (round(window_s * 48000),) for w in windows)
    assert all(w.samples.dtype == np.float32 for w in windows)
    assert windows[-1].end_s == duration_s
    assert all(w.end_s == w.start_s + window_s for w in windows[:-1])


def test_zero_sample_file_gives_no_windows(tmp_path):
    path = tmp_path / "no_samples.wav"
    sf.write(path, np.zeros((0, 2), dtype=np.float32), 44100)
    assert list(iter_windows(path, 48000, 3.0)) == []
    assert list(iter_batches(path, 48000, 3.0)) == []


def test_file_shorter_than_a_window_gives_one_zero_padded_window():
    path = shared_recording("veryshort.wav")
    info = read_info(path)
    [window] = iter_windows(path, 48000, 3.0)
    resampled = round(info.frames * 48000 / info.sample_rate)
    assert (window.start_s, window.end_s) == (0.0, info.duration_s)
    assert window.samples.shape == (144000,)
    assert np.any(window.samples[:resampled] != 0)
    assert not np.any(window.samples[resampled:])


@pytest.mark.parametrize(
    ("name", "expected_count"),
    [
        ("1min.wav", 20),
        ("rugr_drum.wav", 4),
        ("metadata.wav", 5),
        ("great_plains_toad.wav", 15),
        ("veryshort.wav", 1),
        ("empty_2c.wav", 0),
    ],
)
def test_shared_recordings_give_the_expected_window_counts(name, expected_count):
    path = shared_recording(name)
    info = read_info(path)
    windows = list(iter_windows(path, 48000, 3.0))
    assert len(windows) == expected_count
    assert count_windows(info.duration_s, 3.0, sample_rate=48000) == expected_count


# --- decoding and resampling ---------------------------------------------------


@pytest.mark.parametrize("target_rate", [48000, 32000])
def test_tone_keeps_its_frequency_after_resampling(tmp_path, target_rate):
    path = tmp_path / "tone.wav"
    write_tone(path, frequency_hz=1000.0, sample_rate=44100, duration_s=3.0)
    window = next(iter_windows(path, target_rate, 1.0))
    assert peak_frequency_hz(window.samples, target_rate) == pytest.approx(1000.0, abs=1.0)
    assert np.abs(window.samples[1000:-1000]).max() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize(("source_rate", "target_rate"), [(44100, 48000), (48000, 32000)])
def test_streamed_windows_equal_resampling_the_whole_signal(tmp_path, source_rate, target_rate):
    path = tmp_path / "noise.wav"
    signal = write_noise(path, sample_rate=source_rate, frames=source_rate * 7 + 55)
    whole = soxr.resample(signal, source_rate, target_rate, quality="HQ")
    windows = list(iter_windows(path, target_rate, 0.5, 0.125, block_s=0.37))
    assert len(windows) > 10
    for window in windows:
        start = round(window.start_s * target_rate)
        expected = np.zeros(round(0.5 * target_rate), dtype=np.float32)
        piece = whole[start : start + expected.size]
        expected[: piece.size] = piece
        np.testing.assert_allclose(window.samples, expected, atol=1e-5)


@pytest.mark.parametrize(
    ("source_rate", "target_rate", "frames"),
    [(44100, 48000, 44100 * 5 + 17), (32000, 48000, 12345), (48000, 32000, 99999), (22050, 48000, 1)],
)
def test_resampled_length_matches_the_rate_ratio(tmp_path, source_rate, target_rate, frames):
    path = tmp_path / "noise.wav"
    write_noise(path, sample_rate=source_rate, frames=frames)
    info = read_info(path)
    raw = sum(block.size for block in audio._resampled_blocks(info, target_rate, 0.3))
    expected = round(frames * target_rate / source_rate)
    assert abs(raw - expected) <= 2
    assert sum(block.size for block in iter_blocks(path, target_rate, block_s=0.3)) == expected


def test_same_rate_is_passed_through_unchanged(tmp_path):
    path = tmp_path / "noise.wav"
    signal = write_noise(path, sample_rate=48000, frames=48000 * 4)
    windows = list(iter_windows(path, 48000, 1.0, block_s=0.3))
    np.testing.assert_array_equal(np.concatenate([w.samples for w in windows]), signal)


def test_stereo_is_downmixed_to_the_mean_of_the_channels(tmp_path):
    rng = np.random.default_rng(3)
    stereo = rng.uniform(-0.5, 0.5, (32000 * 2, 2)).astype(np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 32000, subtype="FLOAT")
    [window] = iter_windows(path, 32000, 2.0)
    np.testing.assert_allclose(window.samples, stereo.mean(axis=1), atol=1e-7)


def test_non_finite_samples_become_silence_and_spoil_nothing_else(tmp_path):
    signal = np.full(32000 * 2, 0.25, dtype=np.float32)
    signal[[100, 5000, 40000]] = [np.nan, np.inf, -np.inf]
    path = tmp_path / "bad_samples.wav"
    sf.write(path, signal, 32000, subtype="FLOAT")

    [same_rate] = iter_windows(path, 32000, 2.0)
    expected = signal.copy()
    expected[[100, 5000, 40000]] = 0.0
    np.testing.assert_array_equal(same_rate.samples, expected)

    [resampled] = iter_windows(path, 48000, 2.0)
    assert np.isfinite(resampled.samples).all()


@pytest.mark.parametrize(
    ("suffix", "write_options"),
    [
        ("wav", {"subtype": "PCM_16"}),
        ("flac", {"subtype": "PCM_16"}),
        ("ogg", {"format": "OGG", "subtype": "VORBIS"}),
        ("mp3", {"format": "MP3", "subtype": "MPEG_LAYER_III"}),
    ],
)
def test_each_format_decodes_to_the_same_tone(tmp_path, suffix, write_options):
    path = tmp_path / f"tone.{suffix}"
    try:
        write_tone(path, sample_rate=44100, duration_s=4.0, **write_options)
    except (sf.LibsndfileError, ValueError, TypeError) as error:
        pytest.skip(f"this libsndfile cannot write {suffix}: {error}")
    info = read_info(path)
    assert info.duration_s == pytest.approx(4.0, abs=0.1)
    windows = list(iter_windows(path, 48000, 1.0))
    assert len(windows) == count_windows(info.duration_s, 1.0, sample_rate=48000)
    assert peak_frequency_hz(windows[1].samples, 48000) == pytest.approx(1000.0, abs=1.0)


# --- batches, segments, memory ---------------------------------------------------


def test_batches_stack_windows_for_a_model(tmp_path):
    path = tmp_path / "noise.wav"
    write_noise(path, sample_rate=32000, frames=32000 * 10)
    batches = list(iter_batches(path, 48000, 3.0, 1.0, 3))
    assert [samples.shape for _, _, samples in batches] == [(3, 144000), (2, 144000)]
    starts_s = np.concatenate([starts for starts, _, _ in batches])
    ends_s = np.concatenate([ends for _, ends, _ in batches])
    np.testing.assert_allclose(starts_s, [0, 2, 4, 6, 8])
    np.testing.assert_allclose(ends_s, [3, 5, 7, 9, 10])
    assert all(samples.dtype == np.float32 for _, _, samples in batches)


@pytest.mark.parametrize("target_rate", [44100, 48000, 32000])
def test_load_segment_matches_the_window_over_the_same_span(tmp_path, target_rate):
    path = tmp_path / "noise.wav"
    write_noise(path, sample_rate=44100, frames=44100 * 9 + 7)
    windows = list(iter_windows(path, target_rate, 2.0, 0.5))
    for window in (windows[0], windows[3], windows[-1]):
        segment = load_segment(path, window.start_s, window.end_s, target_rate)
        np.testing.assert_allclose(segment, window.samples[: segment.size], atol=1e-5)
        assert not np.any(window.samples[segment.size :])


def test_load_segment_defaults_to_the_recordings_own_rate(tmp_path):
    path = tmp_path / "noise.wav"
    signal = write_noise(path, sample_rate=32000, frames=32000 * 3)
    np.testing.assert_array_equal(load_segment(path, 1.0, 1.5), signal[32000:48000])


@pytest.mark.parametrize(("start_s", "end_s"), [(-0.1, 1.0), (1.0, 3.5), (2.0, 1.0), (3.0, 4.0)])
def test_load_segment_outside_the_recording_raises(tmp_path, start_s, end_s):
    path = tmp_path / "noise.wav"
    write_noise(path, sample_rate=32000, frames=32000 * 3)
    with pytest.raises(AudioError, match="noise.wav.*outside the recording"):
        load_segment(path, start_s, end_s)


def test_memory_stays_bounded_for_a_long_recording(tmp_path):
    sample_rate, minutes = 48000, 12
    path = tmp_path / "long.wav"
    chunk = (0.1 * np.sin(np.arange(sample_rate * 60) * 0.05)).astype(np.float32)
    with sf.SoundFile(path, "w", sample_rate, 1, subtype="PCM_16") as sound_file:
        for _ in range(minutes):
            sound_file.write(chunk)
    decoded_bytes = sample_rate * 60 * minutes * 4
    del chunk

    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_windows(path, 32000, 3.0))
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == minutes * 20
    assert peak_bytes < decoded_bytes / 10, f"peak {peak_bytes / 1e6:.1f} MB"
