"""The recording page's view through Django's test client: a spectrogram 256 px high whatever the recording's length,
as wide as its share of the view; the view's length (zoom) and band chosen and kept in links; annotation boxes placed
in the band shown; and a clip played with a second of the recording either side."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from annotations.services import create_annotation
from echoroo.models import Clip, ModelRun, Recording
from tests.conftest import import_field_recordings
from tests.pages.detections import job_with_detections

pytestmark = pytest.mark.django_db

ROBIN = "Turdus migratorius_American Robin"


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def veryshort(audio_root) -> Recording:
    """veryshort.wav: 0.14 s at 44.1 kHz, shorter than any model window."""
    return import_field_recordings(audio_root, ["veryshort.wav"], dataset="Short").recordings.get()


def image_size(client, url: str) -> tuple[int, int]:
    response = client.get(url.replace("&amp;", "&"))
    assert response.status_code == 200, response.content
    return Image.open(io.BytesIO(b"".join(response.streaming_content))).size


def spectrogram_src(html: str) -> str:
    return re.search(r'<img src="([^"]+)" alt="Spectrogram', html).group(1)


def test_a_ten_second_recording_fills_the_view_256_px_high(user_client, field_dataset):
    rugr = field_dataset.recordings.get(path__endswith="rugr_drum.wav")
    response = user_client.get(f"/recordings/{rugr.uuid}/")
    html = response.content.decode()
    # The view is the shortest holding the whole recording: 10 s, drawn 1,200 px wide, never stretched taller.
    assert (response.context["view_from"], response.context["view_to"]) == (0, 10)
    assert "aspect-ratio" not in html
    assert '<div class="spectrogram-track" style="height: 256px">' in html
    assert '<div class="spectrogram" style="width: 100.000%"' in html
    assert 'width="1200" height="256"' in html
    assert image_size(user_client, spectrogram_src(html)) == (1200, 256)
    # A tick each second, under the image.
    assert [tick["label"] for tick in response.context["ticks"]] == [f"0:{s:02}" for s in range(10)]


def test_a_recording_of_a_seventh_of_a_second_is_drawn_at_its_share_of_a_one_second_view(user_client, veryshort):
    response = user_client.get(f"/recordings/{veryshort.uuid}/")
    html = response.content.decode()
    view = response.context["view"]
    assert view.length_s == 1.0 and view.to_s == pytest.approx(0.1421, abs=1e-4)
    # 0.142 s of a 1 s view: 14.2 % of the column, 171 px of 1,200, still 256 px high; the rest says it is past the end.
    assert '<div class="spectrogram" style="width: 14.209%"' in html
    assert 'width="171" height="256"' in html and "end of the recording" in html
    assert '<div class="spectrogram-track ends-early" style="height: 256px">' in html
    assert image_size(user_client, spectrogram_src(html)) == (171, 256)
    assert [tick["label"] for tick in response.context["ticks"]] == ["0:00", "0:00.1"]
    # 44.1 kHz: the band goes up to 16 kHz by default, and the top choice is the recording's own, 22.05 kHz.
    assert response.context["band_choices"]["max"][-1] == ("22050", "22.05 kHz")


def test_the_view_length_is_chosen_zoomed_and_kept_in_every_link(user_client, field_recording, user):
    run = ModelRun.objects.create(name="BirdNET", version="V2.4", kind=ModelRun.Kind.MODEL)
    job_with_detections(run, {field_recording: {21.0: {ROBIN: 0.9}}})
    url = f"/recordings/{field_recording.uuid}/"
    response = user_client.get(url, {"t": "25", "view": "10", "min_freq": "1000"})
    context = response.context
    assert (context["view_from"], context["view_to"]) == (20, 30)
    keep = f"job={context['job'].uuid}&view=10&min_freq=1000"
    assert context["prev_url"] == f"{url}?t=10&{keep}"
    assert context["next_url"] == f"{url}?t=30&{keep}"
    assert context["zoom_in_url"] == f"{url}?t=20&{keep.replace('view=10', 'view=3')}"
    assert context["zoom_out_url"] == f"{url}?t=20&{keep.replace('view=10', 'view=30')}"
    # The detection at 21-24 s is placed in percent of these 10 s.
    (box,) = context["boxes"]
    assert (box["left_pct"], box["width_pct"]) == ("10.000", "30.000")
    html = response.content.decode()
    assert "‹ previous 10 s" in html and "next 10 s ›" in html
    assert '<option value="10" selected>10 s</option>' in html
    # The job picker and the detections' filters keep the view when they are sent.
    assert html.count('<input type="hidden" name="view" value="10">') == 2
    # One-second views: the shortest, with no zooming in further.
    shortest = user_client.get(url, {"t": "25", "view": "1"}).context
    assert (shortest["view_from"], shortest["view_to"], shortest["zoom_in_url"]) == (25, 26, None)
    assert user_client.get(url, {"view": "60"}).context["zoom_out_url"] is None


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({"view": "7"}, "No view of 7 s: the views are 1, 3, 10, 30, 60 s long."),
        ({"view": "soon"}, "“soon” is not a view length: pick one of the list."),
        ({"min_freq": "9000", "max_freq": "8000"}, "No band from 9 kHz to 8 kHz"),
        ({"min_freq": "-5"}, "No band from -0.005 kHz to 16 kHz"),
        ({"max_freq": "lots"}, "The band's frequencies must be numbers of Hz"),
    ],
)
def test_a_view_that_cannot_be_shown_says_why_and_shows_the_default(user_client, field_recording, query, problem):
    response = user_client.get(f"/recordings/{field_recording.uuid}/", query)
    assert response.status_code == 200
    view = response.context["view"]
    assert (view.length_s, view.min_freq_hz, view.max_freq_hz, view.params) == (60.0, 0.0, 16000.0, {})
    assert any(line.startswith(problem) for line in view.problems), view.problems
    assert '<ul class="messages view-problems">' in response.content.decode()


def test_annotation_boxes_are_placed_in_the_band_shown(user_client, field_recording, user):
    annotation = create_annotation(
        field_recording, by=user, start_time=12.0, end_time=15.0, low_freq=2000.0, high_freq=6000.0, species=[ROBIN]
    )
    below = create_annotation(
        field_recording, by=user, start_time=30.0, end_time=33.0, low_freq=200.0, high_freq=500.0, species=[ROBIN]
    )
    response = user_client.get(f"/recordings/{field_recording.uuid}/", {"min_freq": "1000", "max_freq": "8000"})
    html = response.content.decode()
    styles = dict(re.findall(r'data-annotation="([0-9a-f-]{36})"\s+style="([^"]*)"', html))
    # 1-8 kHz is 7 kHz high: 6 kHz is 2/7 below its top, and the 4 kHz band is 4/7 of its height.
    assert styles[str(annotation.uuid)] == "left: 20.000%; width: 5.000%; top: 28.571%; height: 57.143%"
    # A band below the one shown sits on its bottom edge, thin but there to click.
    assert styles[str(below.uuid)] == "left: 50.000%; width: 5.000%; top: 98.000%; height: 2.000%"
    assert 'data-top-hz="8000.0" data-bottom-hz="1000.0"' in html
    assert "&amp;min_freq=1000&amp;max_freq=8000" in spectrogram_src(html)
    assert response.context["freq_labels"] == ["8 kHz", "4.5 kHz", "1 kHz"]
    assert image_size(user_client, spectrogram_src(html)) == (1200, 256)
    # The list's link to its time keeps the band.
    assert all("min_freq=1000&max_freq=8000" in row["url"] for row in response.context["annotations"])
    # A top above the recording's own (carried from a 48 kHz recording) stops at it: 32 kHz, 16 kHz.
    high = user_client.get(f"/recordings/{field_recording.uuid}/", {"max_freq": "24000"}).context["view"]
    assert (high.max_freq_hz, high.params, high.problems) == (16000.0, {"max_freq": "16000"}, [])


def test_the_next_recording_opens_with_the_same_view_and_band(user_client, field_dataset):
    first, second = field_dataset.recordings.order_by("path")
    context = user_client.get(f"/recordings/{first.uuid}/", {"view": "3", "max_freq": "8000"}).context
    assert context["next_recording_url"].endswith(f"/recordings/{second.uuid}/?view=3&max_freq=8000")


def test_the_page_offers_the_detection_label_toggle_and_play_with_context(user_client, field_recording):
    html = user_client.get(f"/recordings/{field_recording.uuid}/").content.decode()
    assert '<input type="checkbox" class="show-detection-labels" checked> detection labels' in html
    assert '<input type="checkbox" class="show-annotation-labels" checked>' in html
    assert '<input type="checkbox" class="show-detections" checked>' in html
    assert '<input type="checkbox" class="play-context" value="1"> with 1 s before and after' in html


# --- The spectrogram's width and band, and the clip's context ------------------------------------


def test_the_spectrogram_is_drawn_at_the_width_and_band_asked_for(user_client, field_recording, spectrogram_cache):
    url = f"/recordings/{field_recording.uuid}/spectrogram.png"
    asked = {"start": "0", "end": "10", "width": "600", "min_freq": "2000", "max_freq": "4000"}
    assert image_size(user_client, f"{url}?start=0&end=10&width=600&min_freq=2000&max_freq=4000") == (600, 256)
    # 2 kHz of a 32 kHz recording is 64 bins of a 1,024-point FFT: drawn with 2,048 points, 128 bins.
    (cached,) = spectrogram_cache.rglob("*.png")
    assert "w600h256n2048f2000-4000" in cached.name
    assert user_client.get(url, {**asked, "min_freq": "0", "max_freq": "16000"}).status_code == 200


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"width": "0"}, "width is the image's width in pixels: a whole number from 1 to 2400, not 0"),
        ({"width": "2.5"}, "not 2.5"),
        ({"width": "5000"}, "not 5000"),
        ({"width": "wide"}, "width must be a number, not 'wide'"),
        ({"max_freq": "24000"}, "max_freq is 24000 Hz, above this recording's highest frequency (16000 Hz)"),
        ({"min_freq": "-1"}, "min_freq is -1 Hz; it starts at 0"),
        ({"min_freq": "5000", "max_freq": "5000"}, "min_freq (5000 Hz) must be below max_freq (5000 Hz)"),
        ({"max_freq": "inf"}, "max_freq must be a number, not 'inf'"),
    ],
)
def test_a_spectrogram_of_a_bad_width_or_band_is_refused_saying_why(user_client, field_recording, params, message):
    url = f"/recordings/{field_recording.uuid}/spectrogram.png"
    response = user_client.get(url, {"start": "0", "end": "5", **params})
    assert response.status_code == 400
    assert message in response.content.decode()


def clip_samples(client, clip: Clip, **params) -> np.ndarray:
    response = client.get(f"/clips/{clip.uuid}/audio.wav", params)
    assert response.status_code == 200, response.content
    samples, rate = sf.read(io.BytesIO(response.content), dtype="float32")
    assert rate == 32000
    return samples


@pytest.mark.parametrize(
    ("start_s", "played"),
    [(20.0, (19.0, 24.0)), (0.0, (0.0, 4.0)), (57.0, (56.0, 60.0))],
    ids=["middle", "at the start", "at the end"],
)
def test_a_clip_plays_with_a_second_either_side_as_far_as_the_recording_goes(
    user_client, field_recording, start_s, played
):
    clip = Clip.objects.create(recording=field_recording, start_time=start_s, end_time=start_s + 3)
    alone = clip_samples(user_client, clip)
    assert len(alone) == 3 * 32000
    with_context = clip_samples(user_client, clip, context="1")
    original, _ = sf.read(field_recording.absolute_path, dtype="float32")
    first, last = (round(s * 32000) for s in played)
    assert len(with_context) == last - first
    assert np.allclose(with_context, original[first:last], atol=1 / 32767)


@pytest.mark.parametrize("context", ["-1", "6", "nan", "a second"])
def test_a_bad_context_is_refused_saying_why(user_client, field_recording, context):
    clip = Clip.objects.create(recording=field_recording, start_time=20.0, end_time=23.0)
    response = user_client.get(f"/clips/{clip.uuid}/audio.wav", {"context": context})
    assert response.status_code == 400
    assert "context" in response.content.decode()
