"""Query by example: a snippet embedded with the real BirdNET and searched, and every way an upload is refused."""

import io
import tempfile

import numpy as np
import pytest
import soundfile as sf
import soxr
from django.core.files.uploadedfile import SimpleUploadedFile

from echoroo.models import Clip
from embeddings.storage import store_embeddings
from inference import services
from search.uploads import MAX_UPLOAD_BYTES
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.django_db

URL = "/api/v1/search/audio/"


def wav(samples: np.ndarray, rate: int, name: str = "snippet.wav", subtype: str = "PCM_16") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="audio/wav")


def cut(start_s: float, end_s: float) -> tuple[np.ndarray, int]:
    """A stretch of 1min.wav as its own samples (32 kHz, 16-bit)."""
    samples, rate = sf.read(SHARED_DATA / "1min.wav", dtype="int16")
    return samples[round(start_s * rate) : round(end_s * rate)], rate


def query(api_client, upload, **fields):
    return api_client.post(URL, {"file": upload, "model_name": "birdnet", "min_similarity": -1, **fields})


def spans(response) -> list[tuple[float, float]]:
    assert response.status_code == 200, response.content
    return [(result["clip"]["start_time"], result["clip"]["end_time"]) for result in response.json()["results"]]


@pytest.fixture
def embedded_minute(field_recording):
    """1min.wav analysed by a real BirdNET job: 20 clips with their embeddings."""
    job = services.create_job(model_name="birdnet", recording=field_recording)
    services.start_job(job, sync=True)
    assert Clip.objects.filter(embeddings__isnull=False).count() == 20
    return field_recording


@pytest.fixture
def birdnet_run(db):
    """A BirdNET model run with one (made-up) embedding: enough to get past the model checks."""
    from echoroo.models import Dataset, Recording

    run = services.model_run_for("birdnet")
    recording = Recording.objects.create(
        dataset=Dataset.objects.create(name="d"),
        path="x.wav",
        sha256="0" * 64,
        duration=3,
        samplerate=48000,
        channels=1,
    )
    clip = Clip.objects.create(recording=recording, start_time=0, end_time=3)
    store_embeddings("clip", np.array([clip.pk]), run.pk, np.ones((1, run.embedding_dimension)))
    return run


def test_a_snippet_of_exactly_one_clip_finds_that_clip_first(api_client, embedded_minute, field_dataset):
    samples, rate = cut(9, 12)
    response = query(api_client, wav(samples, rate), limit=5, dataset=str(field_dataset.uuid))
    assert spans(response)[0] == (9.0, 12.0)
    first = response.json()["results"][0]
    assert first["similarity"] == pytest.approx(1.0, abs=0.01)
    assert first["recording"]["uuid"] == str(embedded_minute.uuid)
    assert first["model_run"]["name"] == "birdnet"


def test_a_snippet_at_another_rate_in_stereo_is_decoded_to_the_models_mono(api_client, embedded_minute):
    samples, rate = cut(30, 33)
    stereo = soxr.resample(samples.astype(np.float32) / 32768, rate, 44_100)
    stereo = np.stack([stereo, stereo], axis=1)
    response = query(api_client, wav(stereo, 44_100, "snippet.flac", subtype="FLOAT"), limit=3)
    assert spans(response)[0] == (30.0, 33.0)
    assert response.json()["results"][0]["similarity"] > 0.97


def test_a_longer_snippet_finds_the_clips_it_spans(api_client, embedded_minute):
    samples, rate = cut(42, 48)
    assert set(spans(query(api_client, wav(samples, rate), limit=2))) == {(42.0, 45.0), (45.0, 48.0)}


def test_a_snippet_shorter_than_a_window_is_zero_padded(api_client, embedded_minute):
    samples, rate = cut(57, 59.5)
    assert spans(query(api_client, wav(samples, rate), limit=1)) == [(57.0, 60.0)]


def test_the_upload_goes_through_a_temporary_file_of_our_naming_deleted_afterwards(
    api_client, embedded_minute, tmp_path, monkeypatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    made = []
    mkstemp = tempfile.mkstemp

    def recording_mkstemp(*args, **kwargs):
        made.append(mkstemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkstemp", recording_mkstemp)
    samples, rate = cut(9, 12)
    assert query(api_client, wav(samples, rate, name="../../etc/evil name.wav")).status_code == 200
    assert query(api_client, SimpleUploadedFile("../x.wav", b"RIFF not really")).status_code == 400
    names = [name for _, name in made]
    assert len(names) == 2
    assert all(name.startswith(str(tmp_path / "echoroo-query-")) and "evil" not in name for name in names)
    assert list(tmp_path.glob("echoroo-query-*")) == []


def test_an_upload_over_the_size_limit_is_refused_before_it_is_decoded(api_client, birdnet_run, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("decoded an upload over the limit")

    monkeypatch.setattr("search.uploads.audio.read_info", never)
    # Just over: the body passes the check of its declared length, the file fails its own.
    response = query(api_client, SimpleUploadedFile("big.wav", b"\0" * (MAX_UPLOAD_BYTES + 1)))
    assert response.status_code == 400
    assert response.json()["file"] == ["is 10.0 MiB; the most is 10 MiB: upload a snippet of at most 60 s"]
    # Far over: refused from the request's declared length, before the body is read.
    response = query(api_client, SimpleUploadedFile("huge.wav", b"\0" * (MAX_UPLOAD_BYTES + 200_000)))
    assert response.status_code == 400 and "a snippet may be 10 MiB" in response.json()["file"][0]


def test_a_snippet_over_a_minute_is_refused_from_its_header(api_client, birdnet_run):
    response = query(api_client, wav(np.zeros(61 * 8000, dtype=np.int16), 8000))
    assert response.status_code == 400
    assert response.json()["file"] == ["lasts 61.0 s; the most is 60 s: cut a shorter snippet"]


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (SimpleUploadedFile("notes.wav", b"these are not samples"), "not a readable audio file"),
        (SimpleUploadedFile("empty.wav", b""), "empty"),
        (wav(np.zeros(0, dtype=np.int16), 48000), "holds no audio"),
    ],
    ids=["not audio", "empty file", "no samples"],
)
def test_an_upload_that_is_not_audio_is_refused(api_client, birdnet_run, upload, message):
    response = query(api_client, upload)
    assert response.status_code == 400, response.content
    [error] = response.json()["file"]
    assert message in error and "echoroo-query-" not in error


def test_the_model_must_be_known_and_have_embeddings(api_client, db):
    samples, rate = cut(9, 12)
    response = query(api_client, wav(samples, rate), model_name="birdclef")
    assert response.status_code == 400 and "model_name" in response.json()
    response = api_client.post(URL, {"file": wav(samples, rate)})
    assert response.status_code == 400 and "model_name" in response.json()
    response = query(api_client, wav(samples, rate))
    assert response.status_code == 400
    assert "birdnet" in response.json()["model_name"][0] and "no embeddings yet" in response.json()["model_name"][0]


def test_a_file_is_required_and_json_is_not_accepted(api_client, birdnet_run):
    assert "file" in api_client.post(URL, {"model_name": "birdnet"}).json()
    response = api_client.post(URL, {"model_name": "birdnet"}, format="json")
    assert response.status_code == 415
