"""Spectrogram images: the band drawn (a tone lands on the row of its frequency), frames centred on their time
whatever the FFT size, and the FFT size chosen for narrow bands."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from echoroo.spectrogram import SpectrogramParams, fft_size_for_band, power_db, render_png

RATE = 32_000


def tone(freq_hz: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def loudest_row(decibels: np.ndarray) -> int:
    return int(np.argmax(decibels.mean(axis=1)))


@pytest.mark.parametrize(
    ("low_hz", "high_hz", "row"),
    [(0.0, 16_000.0, 208), (2_000.0, 4_000.0, 128), (2_500.0, 12_500.0, 243)],
    ids=["whole band", "2-4 kHz", "2.5-12.5 kHz"],
)
def test_a_tone_is_drawn_on_the_row_of_its_frequency_in_the_band(low_hz, high_hz, row):
    params = SpectrogramParams(width_px=100, min_freq_hz=low_hz, max_freq_hz=high_hz)
    decibels = power_db(tone(3_000.0), RATE, params)
    assert decibels.shape == (256, 100)
    # Row 0 is the top (high_hz), row 255 the bottom (low_hz): 3 kHz is (high - 3k) / (high - low) of the way down.
    assert loudest_row(decibels) == pytest.approx(row, abs=3)


@pytest.mark.parametrize("n_fft", [1024, 4096])
def test_a_click_is_drawn_at_its_time_whatever_the_fft_size(n_fft):
    samples = np.zeros(RATE, dtype=np.float32)
    samples[RATE // 2 : RATE // 2 + 64] = 0.9  # at 0.5 s of 1 s
    decibels = power_db(samples, RATE, SpectrogramParams(width_px=100, n_fft=n_fft))
    # 4,096 points are 128 ms: uncentred, the click would be drawn 64 ms (6 columns) early.
    loudest = np.argsort(decibels.mean(axis=0))[-3:]
    assert abs(loudest.mean() - 50) <= 1.5


@pytest.mark.parametrize(
    ("rate", "low_hz", "high_hz", "n_fft"),
    [(32_000, 0, 16_000, 1024), (48_000, 0, 16_000, 1024), (32_000, 2_000, 4_000, 2048), (48_000, 0, 1_000, 4096)],
)
def test_a_narrow_band_is_drawn_with_a_longer_fft(rate, low_hz, high_hz, n_fft):
    assert fft_size_for_band(rate, low_hz, high_hz, 256) == n_fft


def test_a_seventh_of_a_second_is_drawn_at_any_width():
    png = render_png(tone(3_000.0, seconds=0.142), RATE, SpectrogramParams(width_px=171, min_freq_hz=1000))
    assert Image.open(io.BytesIO(png)).size == (171, 256)
