"""Spectrogram images of mono audio: a magnitude STFT in decibels, drawn as a PNG (no Django)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

# Viridis at nine stops (dark blue for quiet, yellow for loud), interpolated to 256 colours:
# readable on a laptop screen, and the coloured detection boxes drawn over it stand out.
_VIRIDIS_STOPS = np.array(
    [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ],
    dtype=np.float64,
)
COLOURS = np.stack(
    [np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_VIRIDIS_STOPS)), _VIRIDIS_STOPS[:, c]) for c in range(3)],
    axis=1,
).astype(np.uint8)


@dataclass(frozen=True)
class SpectrogramParams:
    """How a spectrogram is drawn; `key` names them in cache file names."""

    width_px: int
    height_px: int = 256
    n_fft: int = 1024
    # The band drawn, bottom row to top row. Birds sing below 16 kHz; a 48 kHz recording's top half would be
    # empty sky.
    max_freq_hz: float = 16_000.0
    min_freq_hz: float = 0.0
    # Colours span from the image's median level (the background hiss, drawn dark) to this many
    # decibels above it at most: quiet recordings get contrast, loud ones are not washed out.
    dynamic_range_db: float = 50.0

    @property
    def key(self) -> str:
        band = f"{self.min_freq_hz:g}-{self.max_freq_hz:g}"
        return f"w{self.width_px}h{self.height_px}n{self.n_fft}f{band}d{self.dynamic_range_db:g}v2"


# FFT sizes a band may be drawn with: the shortest whose bins fill at least half the image's rows.
FFT_SIZES = (1024, 2048, 4096)


def fft_size_for_band(sample_rate: int, min_freq_hz: float, max_freq_hz: float, height_px: int) -> int:
    """The FFT size to draw a band with: 1,024 (21 ms at 48 kHz) unless the band holds too few of its bins to fill
    the image (0-1 kHz at 48 kHz is 21 bins over 256 rows), then longer, up to 4,096, finer in frequency."""
    band_hz = max(min(max_freq_hz, sample_rate / 2) - min_freq_hz, 1.0)
    for n_fft in FFT_SIZES:
        if band_hz / (sample_rate / n_fft) >= height_px / 2:
            return n_fft
    return FFT_SIZES[-1]


def power_db(samples: np.ndarray, sample_rate: int, params: SpectrogramParams) -> np.ndarray:
    """[height_px, width_px] decibels, low frequencies in the last row (as drawn)."""
    n_fft = params.n_fft
    # Each frame is centred on its time (half a frame of silence either side), so a call is drawn where it is
    # whatever the FFT size.
    half = np.zeros(n_fft // 2, dtype=np.float32)
    padded = np.concatenate([half, samples.astype(np.float32, copy=False), half])
    # A hop that gives at least one frame per pixel column, and overlaps frames by half or more.
    hop = int(np.clip(len(samples) // max(params.width_px, 1), 1, n_fft // 2))
    n_frames = max(1, -(-len(samples) // hop))
    window = np.hanning(n_fft).astype(np.float32)
    columns = _pool_indices(n_frames, params.width_px)
    power = np.empty((params.width_px, n_fft // 2 + 1), dtype=np.float32)
    # Frames are transformed a slice of columns at a time, so a 2-minute range at 48 kHz
    # never holds more than a few MB of complex spectra.
    chunk = 256
    for first in range(0, params.width_px, chunk):
        last = min(first + chunk, params.width_px)
        lo, stop = columns[first], max(columns[last], columns[last - 1] + 1)
        starts = np.arange(lo, stop) * hop
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[starts] * window
        spectra = np.abs(np.fft.rfft(frames, axis=1)).astype(np.float32) ** 2
        # Each pixel column keeps the loudest of its frames: short calls stay visible.
        power[first:last] = _pool_max(spectra, columns[first : last + 1] - lo)
    bin_hz = sample_rate / n_fft
    top_bin = int(round(min(params.max_freq_hz, sample_rate / 2) / bin_hz))
    low_bin = min(int(round(max(params.min_freq_hz, 0.0) / bin_hz)), top_bin)
    rows = _pool_indices(top_bin - low_bin + 1, params.height_px)
    pooled = _pool_max(power.T[low_bin : top_bin + 1], rows)
    return 10 * np.log10(pooled[::-1] + 1e-12)


def render_png(samples: np.ndarray, sample_rate: int, params: SpectrogramParams) -> bytes:
    """The spectrogram of `samples` as PNG bytes, `params.width_px` x `params.height_px`."""
    decibels = power_db(samples, sample_rate, params)
    floor = float(np.median(decibels))
    top = min(float(decibels.max()), floor + params.dynamic_range_db)
    scaled = (decibels - floor) / max(top - floor, 1e-6)
    indices = np.clip(scaled * 255, 0, 255).astype(np.uint8)
    # A palette image: one byte a pixel, so the PNG is about half the size of an RGB one.
    image = Image.fromarray(indices, mode="L").convert("P")
    image.putpalette(COLOURS.tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def _pool_indices(n_in: int, n_out: int) -> np.ndarray:
    """n_out + 1 edges splitting range(n_in) into n_out groups (repeating items when n_in < n_out)."""
    edges = np.linspace(0, n_in, n_out + 1)
    starts = np.minimum(np.floor(edges).astype(np.int64), n_in - 1)
    starts[-1] = n_in
    return starts


def _pool_max(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Max of values[edges[i]:edges[i+1]] along axis 0; an empty group takes the item at its start."""
    # reduceat does exactly that: where an index is not below the next, it returns values[index].
    return np.maximum.reduceat(values, edges[:-1], axis=0)
