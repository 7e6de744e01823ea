"""Audio I/O: decode recordings to mono float32, resample, and cut model windows."""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from echoroo import resamplers

AudioPath = str | os.PathLike[str]

# Read this much source audio at a time: a few MB even for multichannel
# high-rate files, so memory stays bounded whatever the recording's length.
DEFAULT_BLOCK_S = 5.0

# soxr HQ is what BirdNET-Analyzer uses (librosa.load(res_type="soxr_hq")), so
# our windows match the official analyzer's.
RESAMPLE_QUALITY = resamplers.SOXR_QUALITY

# Source audio read beyond both ends of a segment so the resampling filter sees
# the same neighbours as when the whole recording is resampled; soxr HQ's
# filter spans far less than this at any common rate pair.
SEGMENT_CONTEXT_S = 0.1

# Float seconds that went through a database or JSON may land a hair past the
# end of a recording; this much is treated as "at the end", not "outside".
END_TOLERANCE_S = 1e-6

# What libsndfile reports as the length of a stream whose header does not know it (SF_COUNT_MAX): a FLAC
# whose STREAMINFO says 0 samples, which the format allows. Such files are measured by decoding them.
UNKNOWN_FRAMES = 2**63 - 1

# No field recording lasts this long; a header that says so is broken, and believing it would make
# months of silence to analyse (a week is several times the longest single file a field recorder writes).
MAX_DURATION_S = 7 * 24 * 3600.0

# Frames decoded at a time to measure a stream of unknown length, and read at a time to hash a file.
COUNT_BLOCK_FRAMES = 1 << 16
HASH_CHUNK_BYTES = 1 << 20


# The resampler that streams recordings to a model's rate (see use_resampler); segments read for
# playback, spectrograms and query snippets always use soxr.
_resampler = "soxr"


def resampler_in_use() -> str:
    """The resampler that streams recordings now (see use_resampler)."""
    return _resampler


def use_resampler(backend: str) -> None:
    """Stream recordings through this resampler from now on: "soxr" or "torchaudio" (echoroo.resamplers)."""
    global _resampler
    resamplers.check_backend(backend)
    _resampler = backend


class AudioError(ValueError):
    """A recording that cannot be read, or a request it cannot satisfy."""


@dataclass(frozen=True)
class AudioInfo:
    """What a recording's header says about it."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    format: str
    subtype: str


@dataclass(frozen=True)
class ImportedFile(os.PathLike):
    """A recording's file and the sha256 it had when imported.

    Streamed whole (iter_blocks, iter_windows, iter_batches), it is hashed as it is read, and the stream
    ends in an AudioError if the bytes are no longer those imported. Anywhere else it is just its path.
    """

    path: Path
    sha256: str

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True, eq=False)
class Window:
    """One model window: its place in the recording and its mono samples."""

    start_s: float
    end_s: float
    samples: np.ndarray


def read_info(path: AudioPath) -> AudioInfo:
    """Read a recording's header; a file with 0 frames is valid (duration 0).

    A stream whose header does not know its length is measured by decoding it (once per file and
    process); a length over MAX_DURATION_S is an AudioError.
    """
    with _open(path) as sound_file:
        frames = sound_file.frames
        if frames == UNKNOWN_FRAMES:
            frames = _counted_frames(path, sound_file)
        duration_s = frames / sound_file.samplerate
        if problem := duration_problem(duration_s):
            raise AudioError(f"{path}: {problem}")
        return AudioInfo(
            path=Path(path),
            sample_rate=sound_file.samplerate,
            channels=sound_file.channels,
            frames=frames,
            duration_s=duration_s,
            format=sound_file.format,
            subtype=sound_file.subtype,
        )


def measure(source: AudioPath | io.IOBase) -> tuple[int, int, int]:
    """(frames, sample rate in Hz, channels) of a file or open binary file, decoding it where its header
    does not know its length. Raises soundfile's errors for what is not audio."""
    with _SoundFile(source) as sound_file:
        frames = sound_file.frames
        if frames == UNKNOWN_FRAMES:
            frames = decode_frames(sound_file)
        return frames, sound_file.samplerate, sound_file.channels


def decode_frames(sound_file: sf.SoundFile) -> int:
    """Count a stream's frames by decoding it from where it stands to its end."""
    block = np.empty((COUNT_BLOCK_FRAMES, sound_file.channels), dtype=np.int16)
    frames = 0
    while True:
        read = len(sound_file.read(COUNT_BLOCK_FRAMES, dtype="int16", always_2d=True, out=block))
        frames += read
        if read < COUNT_BLOCK_FRAMES:
            return frames


def duration_problem(duration_s: float) -> str | None:
    """Why a recording cannot last this long (more than MAX_DURATION_S), or None."""
    if duration_s <= MAX_DURATION_S:
        return None
    return (
        f"the file says it lasts {duration_s:.3g} s, more than the {MAX_DURATION_S / 86400:g} days a recording "
        "may last: its header is broken; re-export or re-encode it"
    )


def count_windows(duration_s: float, window_s: float, overlap_s: float = 0.0, *, sample_rate: int) -> int:
    """Number of windows iter_windows cuts from a recording of this duration."""
    window_samples, step_samples = _window_grid(sample_rate, window_s, overlap_s)
    return _count(_samples_at(duration_s, sample_rate), window_samples, step_samples)


def window_starts(duration_s: float, window_s: float, overlap_s: float = 0.0, *, sample_rate: int) -> np.ndarray:
    """Start times in seconds of the windows iter_windows cuts."""
    window_samples, step_samples = _window_grid(sample_rate, window_s, overlap_s)
    total = _samples_at(duration_s, sample_rate)
    count = _count(total, window_samples, step_samples)
    return np.arange(count, dtype=np.int64) * step_samples / sample_rate


def window_spans(
    duration_s: float, window_s: float, overlap_s: float = 0.0, *, sample_rate: int
) -> list[tuple[float, float]]:
    """(start, end) in seconds of the windows iter_windows cuts, computed exactly as it computes them."""
    window_samples, step_samples = _window_grid(sample_rate, window_s, overlap_s)
    count = _count(_samples_at(duration_s, sample_rate), window_samples, step_samples)
    return [_span(index, step_samples, window_samples, sample_rate, duration_s) for index in range(count)]


def iter_blocks(path: AudioPath, sample_rate: int, *, block_s: float = DEFAULT_BLOCK_S) -> Iterator[np.ndarray]:
    """Yield the recording as mono float32 blocks at sample_rate, in order.

    The blocks add up to exactly duration_s * sample_rate samples, rounded: the
    header's length is the authority, so counts from read_info and
    count_windows always agree with what is yielded. Where a decoder ends
    early (an estimated MP3 length) the rest is silence; audio past the
    header's length is dropped.
    """
    return _exact_blocks(read_info(path), sample_rate, block_s, _expected_sha256(path))


def iter_windows(
    path: AudioPath,
    sample_rate: int,
    window_s: float,
    overlap_s: float = 0.0,
    *,
    block_s: float = DEFAULT_BLOCK_S,
) -> Iterator[Window]:
    """Yield the recording's windows; the last partial one is zero-padded."""
    window_samples, step_samples = _window_grid(sample_rate, window_s, overlap_s)
    info = read_info(path)
    total = _samples_at(info.duration_s, sample_rate)
    count = _count(total, window_samples, step_samples)
    # Holds only what the next windows still need: at most one window plus
    # one block, so memory does not grow with the recording.
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = 0
    index = 0
    for block in _exact_blocks(info, sample_rate, block_s, _expected_sha256(path)):
        buffer = np.concatenate([buffer, block])
        while index < count:
            offset = index * step_samples - buffer_start
            if offset + window_samples > buffer.size:
                break
            samples = buffer[offset : offset + window_samples].copy()
            yield _window(index, step_samples, samples, sample_rate, info.duration_s)
            index += 1
        keep_from = min(index * step_samples - buffer_start, buffer.size)
        buffer = buffer[keep_from:]
        buffer_start += keep_from
    while index < count:
        offset = index * step_samples - buffer_start
        samples = np.zeros(window_samples, dtype=np.float32)
        tail = buffer[offset : offset + window_samples]
        samples[: tail.size] = tail
        yield _window(index, step_samples, samples, sample_rate, info.duration_s)
        index += 1


def iter_batches(
    path: AudioPath,
    sample_rate: int,
    window_s: float,
    overlap_s: float = 0.0,
    batch_size: int = 32,
    *,
    block_s: float = DEFAULT_BLOCK_S,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (starts_s [B], ends_s [B], samples [B, N] float32); the last B may be smaller."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    batch: list[Window] = []
    for window in iter_windows(path, sample_rate, window_s, overlap_s, block_s=block_s):
        batch.append(window)
        if len(batch) == batch_size:
            yield _stack(batch)
            batch = []
    if batch:
        yield _stack(batch)


def load_segment(path: AudioPath, start_s: float, end_s: float, sample_rate: int | None = None) -> np.ndarray:
    """Read [start_s, end_s) as mono float32, seeking rather than reading the whole file.

    With sample_rate set, the samples match those iter_windows yields for the
    same span (the recording's own rate when None).
    """
    info = read_info(path)
    if not 0 <= start_s < end_s <= info.duration_s + END_TOLERANCE_S:
        raise AudioError(
            f"{path}: segment {start_s:g}-{end_s:g} s lies outside the recording "
            f"(0-{info.duration_s:g} s); ask for 0 <= start < end <= duration"
        )
    end_s = min(end_s, info.duration_s)
    out_rate = info.sample_rate if sample_rate is None else sample_rate
    if out_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {out_rate}")
    first = _samples_at(start_s, out_rate)
    stop = _samples_at(end_s, out_rate)
    if out_rate == info.sample_rate:
        return _read_mono(info, first, stop)
    # Start reading on a frame that maps exactly onto an output sample, so the
    # segment's samples sit on the same grid as the whole recording's.
    period = info.sample_rate // math.gcd(info.sample_rate, out_rate)
    context = math.ceil(SEGMENT_CONTEXT_S * info.sample_rate)
    read_from = max(0, (first * info.sample_rate // out_rate - context) // period * period)
    read_to = min(info.frames, -(-stop * info.sample_rate // out_rate) + context)
    source = _read_mono(info, read_from, read_to)
    resampled = soxr.resample(source, info.sample_rate, out_rate, quality=RESAMPLE_QUALITY)
    offset = read_from * out_rate // info.sample_rate
    segment = np.zeros(stop - first, dtype=np.float32)
    piece = resampled[first - offset : stop - offset]
    segment[: piece.size] = piece
    return segment


class _SoundFile(sf.SoundFile):
    """soundfile's SoundFile, able to read a stream of unknown length to its end.

    soundfile seeks back to its own count after every read; libsndfile refuses that seek past the last
    frame of a FLAC whose header says 0 samples, so such a stream is read as a non-seekable one (a
    seek asked for explicitly still works).
    """

    def seekable(self) -> bool:
        return self.frames != UNKNOWN_FRAMES and super().seekable()


# Frames counted by decoding, per (path, size, modification time): a stream of unknown length is
# decoded once per process, not on every read_info.
_COUNTED_FRAMES: dict[tuple[str, int, int], int] = {}
_COUNTED_FRAMES_KEPT = 256


def _counted_frames(path: AudioPath, sound_file: sf.SoundFile) -> int:
    status = os.stat(path)
    key = (os.fspath(path), status.st_size, status.st_mtime_ns)
    if key not in _COUNTED_FRAMES:
        try:
            frames = decode_frames(sound_file)
        except sf.SoundFileError as error:
            raise AudioError(
                f"{path}: the header does not give the length and decoding it failed ({_reason(error)}); "
                "the file looks truncated or corrupt, re-export it"
            ) from error
        if len(_COUNTED_FRAMES) >= _COUNTED_FRAMES_KEPT:
            _COUNTED_FRAMES.pop(next(iter(_COUNTED_FRAMES)))
        _COUNTED_FRAMES[key] = frames
    return _COUNTED_FRAMES[key]


def _expected_sha256(path: AudioPath) -> str | None:
    return path.sha256 if isinstance(path, ImportedFile) else None


class _HashingReader(io.RawIOBase):
    """A file handed to the decoder and hashed on the way, so checking it costs no second read.

    Bytes read in order from the start are hashed as they pass; whatever the decoder skipped, read out
    of order or never reached is read at the end by `hexdigest`, so the digest is always the whole file's.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close())
        self._digest = hashlib.sha256()
        self._position = 0
        self._hashed = 0  # the digest covers bytes [0, _hashed)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._file.readinto(buffer) or 0
        start = self._position
        if start <= self._hashed < start + count:
            with memoryview(buffer) as view:
                self._digest.update(view.cast("B")[self._hashed - start : count])
            self._hashed = start + count
        self._position = start + count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._position = self._file.seek(offset, whence)
        return self._position

    def tell(self) -> int:
        return self._position

    def hexdigest(self) -> str:
        """The sha256 of the whole file, reading what the decoder has not read in order."""
        self._file.seek(self._hashed)
        chunk = bytearray(HASH_CHUNK_BYTES)
        with memoryview(chunk) as view:
            while size := self._file.readinto(chunk):
                self._digest.update(view[:size])
                self._hashed += size
        self._position = self._file.tell()
        return self._digest.hexdigest()

    def close(self) -> None:
        self._file.close()
        super().close()


def _open(path: AudioPath, source: _HashingReader | None = None) -> sf.SoundFile:
    """Open a recording for reading (through `source` when given), or raise an AudioError that says why not."""
    file_path = Path(path)
    if not file_path.is_file():
        raise AudioError(f"{path}: no such file (or not a regular file); check the path and that its volume is mounted")
    if file_path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes); re-copy or re-export it")
    try:
        return _SoundFile(file_path if source is None else source)
    except sf.SoundFileError as error:
        raise AudioError(
            f"{path}: not a readable audio file ({_reason(error)}); "
            "use wav, flac, mp3 or ogg, and check that the file is not damaged"
        ) from error


def _reason(error: sf.SoundFileError) -> str:
    """libsndfile's own words for an error, without the repeated file name."""
    message = str(error).split(": ", 1)[-1].strip().rstrip(".")
    return message or "decoder error"


def _mono(block: np.ndarray) -> np.ndarray:
    """Average a [frames, channels] block to one channel, with non-finite samples zeroed."""
    # A single NaN or Inf (a corrupt float WAV) would otherwise spread through
    # resampling into neighbouring windows and poison a whole batch of scores;
    # silencing that one sample keeps the rest of the recording usable.
    if not np.isfinite(block).all():
        np.nan_to_num(block, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0])
    return block.mean(axis=1, dtype=np.float32)


def _source_blocks(
    info: AudioInfo, block_frames: int, source: _HashingReader | None
) -> Iterator[tuple[np.ndarray, bool]]:
    """Yield (mono block at the file's rate, is_last) until the decoder runs dry."""
    with _open(info.path, source) as sound_file:
        frames_read = 0
        while True:
            try:
                block = sound_file.read(block_frames, dtype="float32", always_2d=True)
            except sf.SoundFileError as error:
                raise AudioError(
                    f"{info.path}: decoding failed after {frames_read / info.sample_rate:.1f} s "
                    f"({_reason(error)}); the file looks truncated or corrupt, re-export it"
                ) from error
            frames_read += block.shape[0]
            is_last = block.shape[0] < block_frames
            yield _mono(block), is_last
            if is_last:
                return


def _exact_blocks(
    info: AudioInfo, sample_rate: int, block_s: float, expected_sha256: str | None = None
) -> Iterator[np.ndarray]:
    """Resampled blocks trimmed or padded to the length the header promises.

    With expected_sha256, the file is hashed as it is decoded, and after the last block comes an
    AudioError if it is not the file imported: a consumer that reads to the end never takes the blocks
    of a changed file for the recording's.
    """
    if expected_sha256 is None:
        yield from _fitted_blocks(info, sample_rate, block_s, None)
        return
    with _HashingReader(info.path) as source:
        yield from _fitted_blocks(info, sample_rate, block_s, source)
        actual = source.hexdigest()
    if actual != expected_sha256:
        raise AudioError(
            f"{info.path}: the file changed since it was imported (its sha256 is now {actual[:12]}…, the "
            f"recording's {expected_sha256[:12]}…), so it is not the audio of this recording: restore the file "
            "as imported, or import the new one as a new recording (import_recordings --verify lists such files)"
        )


def _fitted_blocks(
    info: AudioInfo, sample_rate: int, block_s: float, source: _HashingReader | None
) -> Iterator[np.ndarray]:
    total = _samples_at(info.duration_s, sample_rate)
    produced = 0
    with closing(_resampled_blocks(info, sample_rate, block_s, source)) as blocks:
        for block in blocks:
            block = block[: total - produced]
            if block.size:
                produced += block.size
                yield block
            if produced == total:
                return
    pad_samples = max(1, _samples_at(block_s, sample_rate))
    while produced < total:
        silence = np.zeros(min(pad_samples, total - produced), dtype=np.float32)
        produced += silence.size
        yield silence


def _resampled_blocks(
    info: AudioInfo, sample_rate: int, block_s: float, source: _HashingReader | None = None
) -> Iterator[np.ndarray]:
    """Yield the decoded recording at sample_rate, streamed through the resampler in use (soxr by default)."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if block_s <= 0:
        raise ValueError(f"block_s must be positive, got {block_s}")
    block_frames = max(1, round(block_s * info.sample_rate))
    if info.sample_rate == sample_rate:
        for block, _ in _source_blocks(info, block_frames, source):
            yield block
        return
    stream = resamplers.open_stream(info.sample_rate, sample_rate, _resampler)
    for block, is_last in _source_blocks(info, block_frames, source):
        # last=True flushes the filter's tail, or the final samples are lost.
        yield stream.resample_chunk(block, last=is_last)


def _read_mono(info: AudioInfo, first_frame: int, stop_frame: int) -> np.ndarray:
    """Read frames [first_frame, stop_frame) as mono float32, seeking to the start."""
    with _open(info.path) as sound_file:
        try:
            sound_file.seek(first_frame)
            block = sound_file.read(stop_frame - first_frame, dtype="float32", always_2d=True)
        except sf.SoundFileError as error:
            raise AudioError(
                f"{info.path}: decoding failed near {first_frame / info.sample_rate:.1f} s "
                f"({_reason(error)}); the file looks truncated or corrupt, re-export it"
            ) from error
    samples = np.zeros(stop_frame - first_frame, dtype=np.float32)
    mono = _mono(block)
    samples[: mono.size] = mono
    return samples


def _samples_at(seconds: float, sample_rate: int) -> int:
    """Whole samples in a span, rounding halves up as soxr sizes its output."""
    return math.floor(seconds * sample_rate + 0.5)


def _window_grid(sample_rate: int, window_s: float, overlap_s: float) -> tuple[int, int]:
    """(window, step) in samples; everything after works in whole samples to avoid drift."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    if not 0 <= overlap_s < window_s:
        raise ValueError(f"overlap_s must be at least 0 and less than window_s ({window_s:g} s), got {overlap_s:g}")
    window_samples = _samples_at(window_s, sample_rate)
    step_samples = window_samples - _samples_at(overlap_s, sample_rate)
    if window_samples < 1 or step_samples < 1:
        raise ValueError(
            f"window_s={window_s:g} with overlap_s={overlap_s:g} leaves less than one "
            f"sample per step at {sample_rate} Hz; use a longer window or a smaller overlap"
        )
    return window_samples, step_samples


def _count(total_samples: int, window_samples: int, step_samples: int) -> int:
    """Windows needed so the last one is the first to reach the end of the recording."""
    if total_samples <= 0:
        return 0
    if total_samples <= window_samples:
        return 1
    return 1 + -(-(total_samples - window_samples) // step_samples)


def _span(index: int, step_samples: int, window_samples: int, sample_rate: int, duration_s: float):
    """The index-th window's (start, end) in seconds, its end clipped to the recording."""
    start_s = index * step_samples / sample_rate
    return start_s, min(start_s + window_samples / sample_rate, duration_s)


def _window(index: int, step_samples: int, samples: np.ndarray, sample_rate: int, duration_s: float) -> Window:
    """A Window for the index-th step, its end clipped to the recording."""
    start_s, end_s = _span(index, step_samples, samples.size, sample_rate, duration_s)
    return Window(start_s=start_s, end_s=end_s, samples=samples)


def _stack(batch: list[Window]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn a list of windows into the arrays a model runtime consumes."""
    starts_s = np.array([window.start_s for window in batch], dtype=np.float64)
    ends_s = np.array([window.end_s for window in batch], dtype=np.float64)
    samples = np.stack([window.samples for window in batch])
    return starts_s, ends_s, samples
