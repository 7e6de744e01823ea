"""Bad audio ends in a clear per-recording error or a correct result, never a stuck job."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from echoroo.models import Clip, ClipPredictionTag, Dataset, Recording
from embeddings.models import ClipEmbedding
from inference import services
from inference.models import InferenceJob, JobRecording

pytestmark = pytest.mark.django_db

SHA = "0" * 64


def recording_of(audio_root: Path, name: str, *, duration: float, samplerate: int = 48_000, channels: int = 1):
    """A Recording row for a file in AUDIO_ROOT, as if imported as it is now (a job refuses a file whose sha256
    is not the recording's); where no file is there, as if imported before it went."""
    dataset, _ = Dataset.objects.get_or_create(name="Bad audio")
    path = audio_root / name
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else SHA
    return Recording.objects.create(
        dataset=dataset, path=name, sha256=sha256, duration=duration, samplerate=samplerate, channels=channels
    )


def run_job(recording) -> JobRecording:
    job = services.start_job(services.create_job(model_name="birdnet", recording=recording, config={}), sync=True)
    assert job.status in InferenceJob.FINISHED, "the job ended"
    return job.job_recordings.get()


def bird_call(rate: int, seconds: float = 6.0) -> np.ndarray:
    """A piece of 1min.wav (real birds) resampled to `rate`."""
    import soxr

    from tests.conftest import SHARED_DATA

    samples, source_rate = sf.read(
        SHARED_DATA / "1min.wav", dtype="float32", frames=int(seconds * 32_000), start=int(8 * 32_000)
    )
    return soxr.resample(samples, source_rate, rate).astype(np.float32)


def test_an_emptied_file_fails_its_recording(audio_root):
    (audio_root / "empty.wav").write_bytes(b"")
    state = run_job(recording_of(audio_root, "empty.wav", duration=10))
    assert state.status == JobRecording.Status.FAILED and "empty" in state.error_message


def test_a_file_with_no_samples_fails_its_recording(audio_root, shared_data):
    (audio_root / "zero.wav").write_bytes((shared_data / "empty_2c.wav").read_bytes())
    state = run_job(recording_of(audio_root, "zero.wav", duration=10, samplerate=44_100, channels=2))
    assert state.status == JobRecording.Status.FAILED and "no audio samples" in state.error_message


def test_text_with_an_audio_extension_fails_its_recording(audio_root):
    (audio_root / "notes.wav").write_text("field notes, not audio\n" * 100)
    state = run_job(recording_of(audio_root, "notes.wav", duration=10))
    assert state.status == JobRecording.Status.FAILED and "notes.wav" in state.error_message


def test_a_truncated_file_fails_its_recording_naming_where_decoding_stopped(audio_root):
    path = audio_root / "cut.flac"
    sf.write(path, bird_call(48_000, 12.0), 48_000)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    state = run_job(recording_of(audio_root, "cut.flac", duration=12))
    # The header promises 12 s; libsndfile loses the FLAC stream's sync after 5 s of it.
    assert state.status == JobRecording.Status.FAILED
    assert state.error_message == (
        f"{path}: decoding failed after 5.0 s (flac decoder lost sync); "
        "the file looks truncated or corrupt, re-export it"
    )
    assert Clip.objects.count() == 0


def test_nan_and_inf_samples_are_silenced_and_the_rest_analysed(audio_root):
    samples = bird_call(48_000, 6.0)
    samples[1000:2000] = np.nan
    samples[50_000] = np.inf
    sf.write(audio_root / "nan.wav", samples, 48_000, subtype="FLOAT")
    state = run_job(recording_of(audio_root, "nan.wav", duration=6))
    assert state.status == JobRecording.Status.DONE
    assert ClipEmbedding.objects.count() == 2
    scores = list(ClipPredictionTag.objects.values_list("score", flat=True))
    assert all(np.isfinite(scores))
    vectors = np.array([e.embedding for e in ClipEmbedding.objects.all()], dtype=np.float32)
    assert np.isfinite(vectors).all()


def test_eight_channels_are_mixed_down(audio_root):
    mono = bird_call(48_000)
    sf.write(audio_root / "array.wav", np.repeat(mono[:, None], 8, axis=1) * 0.9, 48_000)
    state = run_job(recording_of(audio_root, "array.wav", duration=6, channels=8))
    assert state.status == JobRecording.Status.DONE and ClipEmbedding.objects.count() == 2


@pytest.mark.parametrize("rate", [8_000, 384_000])
def test_unusual_sample_rates_are_resampled(audio_root, rate):
    sf.write(audio_root / f"rate_{rate}.wav", bird_call(rate), rate)
    state = run_job(recording_of(audio_root, f"rate_{rate}.wav", duration=6, samplerate=rate))
    assert state.status == JobRecording.Status.DONE
    assert sorted(Clip.objects.values_list("start_time", "end_time")) == [(0.0, 3.0), (3.0, 6.0)]


def test_a_directory_where_the_file_was_fails_its_recording(audio_root):
    (audio_root / "gone.wav").mkdir()
    state = run_job(recording_of(audio_root, "gone.wav", duration=6))
    assert state.status == JobRecording.Status.FAILED and "gone.wav" in state.error_message
