"""echoroo.audio on files that are not what they say: a FLAC of unknown or absurd length, a file changed since."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import soundfile as sf

from echoroo import audio
from echoroo.audio import AudioError, ImportedFile, iter_batches, iter_blocks, load_segment, read_info
from tests.audio_files import flac_with_total_samples


def noise(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    # Quantised to 16 bits, so that what a FLAC gives back is exactly this.
    values = np.random.default_rng(seed).integers(-16000, 16000, round(seconds * sample_rate), dtype=np.int16)
    return values.astype(np.float32) / 32768


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_flac_of_unknown_length_is_measured_by_decoding_it(tmp_path):
    samples = noise(3.5, 8000)
    path = flac_with_total_samples(tmp_path / "stream.flac", samples, 8000, total_samples=0)
    assert sf.info(path).frames == audio.UNKNOWN_FRAMES  # what libsndfile makes of it: 1.15e15 s at 8 kHz

    info = read_info(path)

    assert (info.frames, info.duration_s) == (28000, 3.5)
    assert audio.measure(path) == (28000, 8000, 1)
    with open(path, "rb") as file:
        assert audio.measure(file) == (28000, 8000, 1)


def test_a_flac_of_unknown_length_streams_and_seeks_like_any_other(tmp_path):
    samples = noise(3.5, 8000)
    path = flac_with_total_samples(tmp_path / "stream.flac", samples, 8000, total_samples=0)

    streamed = np.concatenate(list(iter_blocks(path, 8000, block_s=1.0)))
    assert np.array_equal(streamed, samples)
    starts = [float(start) for batch in iter_batches(path, 8000, 1.0) for start in batch[0]]
    assert starts == [0.0, 1.0, 2.0, 3.0]
    assert np.array_equal(load_segment(path, 3.0, 3.5), samples[24000:28000])


def test_a_flac_whose_header_claims_months_is_refused(tmp_path):
    path = flac_with_total_samples(tmp_path / "broken.flac", noise(1.0, 8000), 8000, total_samples=(1 << 36) - 1)

    with pytest.raises(AudioError, match=r"broken\.flac: the file says it lasts 8\.59e\+06 s, more than the 7 days"):
        read_info(path)
    with pytest.raises(AudioError, match="its header is broken"):
        next(iter_batches(path, 48000, 3.0))


def test_an_imported_file_streams_as_its_path_does_when_it_is_unchanged(tmp_path, shared_data):
    for name in ("metadata.wav", "soundscape.flac"):
        path = shared_data / name
        plain = list(iter_batches(path, 48000, 3.0))
        checked = list(iter_batches(ImportedFile(path, sha256(path)), 48000, 3.0))
        assert len(checked) == len(plain)
        for (starts, ends, windows), (their_starts, their_ends, their_windows) in zip(checked, plain, strict=True):
            assert np.array_equal(starts, their_starts) and np.array_equal(ends, their_ends)
            assert np.array_equal(windows, their_windows)


@pytest.mark.parametrize("format", ["WAV", "FLAC", "OGG", "MP3"])
def test_a_file_changed_since_import_ends_its_stream_in_an_error(tmp_path, format):
    path = tmp_path / f"changed.{format.lower()}"
    sf.write(path, noise(7.0, 32000), 32000, format=format)
    imported = sha256(path)
    sf.write(path, noise(7.0, 32000, seed=1), 32000, format=format)  # re-exported: same length, other audio

    starts = []
    with pytest.raises(AudioError) as failure:
        for batch_starts, _, _ in iter_batches(ImportedFile(path, imported), 48000, 3.0, batch_size=1):
            starts.append(float(batch_starts[0]))
    assert starts == [0.0, 3.0]  # the error comes once the file is read, before its last (padded) window
    assert str(failure.value).startswith(
        f"{path}: the file changed since it was imported (its sha256 is now {sha256(path)[:12]}…, "
        f"the recording's {imported[:12]}…), so it is not the audio of this recording"
    )


def test_the_check_hashes_the_bytes_the_decoder_skips(tmp_path, shared_data):
    # metadata.wav keeps AudioMoth's comment after its samples; libsndfile reads it out of order when it opens
    # the file, and a change there (a comment edited) is a change of the file all the same.
    path = tmp_path / "moth.wav"
    data = (shared_data / "metadata.wav").read_bytes()
    path.write_bytes(data)
    assert list(iter_blocks(ImportedFile(path, sha256(path)), 32000))
    path.write_bytes(data.replace(b"gain setting 2", b"gain setting 3"))

    with pytest.raises(AudioError, match="changed since it was imported"):
        list(iter_blocks(ImportedFile(path, hashlib.sha256(data).hexdigest()), 32000))
