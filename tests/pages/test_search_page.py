"""The search page by an uploaded snippet and by a clip, on a real BirdNET job's embeddings: the model picked for a
snippet, the snippet shown, a file never dropped silently, and the own recording left out by default."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import soundfile as sf
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from echoroo.models import Clip, ClipPredictionTag, ModelRun
from embeddings.storage import store_embeddings

pytestmark = pytest.mark.django_db


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def best_clip(birdnet_job) -> Clip:
    best = ClipPredictionTag.objects.order_by("-score").select_related("clip_prediction__clip__recording").first()
    return best.clip_prediction.clip


def snippet_of(clip: Clip, name: str = "my call.wav", channels: int = 1) -> SimpleUploadedFile:
    """The clip's 3 s of its recording, as an uploaded WAV file."""
    samples, rate = sf.read(clip.recording.absolute_path, dtype="float32")
    first = round(clip.start_time * rate)
    cut = samples[first : first + 3 * rate]
    if channels == 2:
        cut = np.stack([cut, cut * 0.5], axis=1)
    buffer = io.BytesIO()
    sf.write(buffer, cut, rate, format="WAV")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="audio/wav")


def data_url_bytes(html: str, mime: str) -> bytes:
    found = re.search(rf'src="data:{re.escape(mime)};base64,([A-Za-z0-9+/=]+)"', html)
    assert found, f"no {mime} data URL in the page"
    return base64.b64decode(found.group(1))


def test_a_snippet_with_the_model_left_automatic_is_searched_with_the_only_model(user_client, best_clip):
    response = user_client.post("/search/", {"file": snippet_of(best_clip), "min_similarity": "0.9", "limit": "5"})
    assert response.status_code == 200
    assert response.context["form"].errors == {}
    cards = response.context["cards"]
    assert cards and cards[0]["clip"].uuid == best_clip.uuid and cards[0]["similarity"] > 0.99
    assert response.context["model_run"].name == "birdnet"


def test_the_snippet_searched_is_shown_with_its_name_length_player_and_spectrogram(user_client, best_clip):
    response = user_client.post("/search/", {"file": snippet_of(best_clip, channels=2), "min_similarity": "0.9"})
    html = response.content.decode()
    query = response.context["query"]
    assert query["target"] == "snippet" and query["name"] == "my call.wav"
    assert query["duration_s"] == pytest.approx(3.0) and query["channels"] == 2
    assert "By the snippet" in html and "my call.wav" in html and "3.0 s · 32000 Hz · 2 channels, mixed to mono" in html
    played, rate = sf.read(io.BytesIO(data_url_bytes(html, "audio/wav")), dtype="float32")
    assert played.ndim == 1 and rate == 32000 and len(played) == 3 * 32000
    picture = Image.open(io.BytesIO(data_url_bytes(html, "image/png")))
    assert picture.size == (720, 160)
    assert 'class="snippet-player" controls' in html


def test_with_several_models_a_snippet_asks_for_one_and_says_the_file_must_be_chosen_again(user_client, best_clip):
    perch = ModelRun.objects.create(name="perch", version="2.0", embedding_dimension=4)
    store_embeddings("clip", np.array([best_clip.pk]), perch.pk, np.ones((1, 4)))
    response = user_client.post("/search/", {"file": snippet_of(best_clip)})
    assert response.context["cards"] is None
    assert response.context["form"].errors["model"] == [
        "Several models have embeddings (birdnet, perch): pick one for the snippet."
    ]
    html = response.content.decode()
    assert "“my call.wav” was not searched" in html and "choose the file again" in html
    picked = user_client.post(
        "/search/", {"file": snippet_of(best_clip), "model": str(best_clip.embeddings.first().model_run.uuid)}
    )
    assert picked.context["cards"] is not None and "was not searched" not in picked.content.decode()


def test_a_snippet_the_search_refuses_is_not_dropped_silently(user_client, best_clip):
    empty = SimpleUploadedFile("silence.wav", b"RIFF----WAVEfmt ", content_type="audio/wav")
    response = user_client.post("/search/", {"file": empty})
    html = response.content.decode()
    assert response.context["cards"] is None and "file:" in html
    assert "“silence.wav” was not searched" in html


def test_find_similar_leaves_out_the_query_clips_own_recording_by_default(user_client, best_clip):
    response = user_client.get("/search/", {"clip": str(best_clip.uuid), "min_similarity": 0})
    assert response.status_code == 200 and response.context["cards"] == []
    assert response.context["form"]["exclude_own_recording"].value() is True
    assert 'name="exclude_own_recording" id="id_exclude_own_recording" checked' in response.content.decode()
    kept = user_client.get(
        "/search/", {"clip": str(best_clip.uuid), "min_similarity": 0, "exclude_own_recording": "false"}
    )
    assert len(kept.context["cards"]) == 19
    # The form sends the box's state: unticked, the own recording is searched.
    posted = user_client.post("/search/", {"clip": str(best_clip.uuid), "min_similarity": 0})
    assert len(posted.context["cards"]) == 19


def test_the_empty_search_form_ticks_leave_out_own_recording(user_client, db):
    html = user_client.get("/search/").content.decode()
    assert re.search(r'<input type="checkbox" name="exclude_own_recording"[^>]* checked', html)
    assert '<option value="" selected>automatic</option>' in html
