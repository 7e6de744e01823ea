"""The recording page's sound event annotations through Django's test client: boxes placed by time and band in the
view they fall in, the list below the viewer, who may edit what, the detections' confirm button, and the queries."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from annotations.models import SoundEventAnnotation
from annotations.services import create_annotation
from echoroo.models import ClipPrediction, ModelRun, Recording
from tests.pages.detections import job_with_detections

pytestmark = pytest.mark.django_db

ROBIN = "Turdus migratorius_American Robin"
WREN = "Troglodytes aedon_House Wren"


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def recording(field_recording) -> Recording:
    """1min.wav (32 kHz: the image's top is its Nyquist frequency, 16 kHz), made 150 s long to have three views."""
    Recording.objects.filter(pk=field_recording.pk).update(duration=150.0)
    field_recording.refresh_from_db()
    return field_recording


def annotate(recording, by, start_s, end_s, low_hz=None, high_hz=None, species=(ROBIN,), tags=(), notes=""):
    return create_annotation(
        recording,
        by=by,
        start_time=start_s,
        end_time=end_s,
        low_freq=low_hz,
        high_freq=high_hz,
        species=list(species),
        tags=list(tags),
        notes=notes,
    )


def box_styles(html: str) -> dict[str, str]:
    """uuid -> the style attribute of each annotation box drawn."""
    found = re.findall(r'class="annotation-box[^"]*" data-annotation="([0-9a-f-]{36})"\s+style="([^"]*)"', html)
    return dict(found)


def test_an_annotation_is_drawn_at_its_time_and_band_with_its_species_and_annotator(user_client, recording, user):
    annotation = annotate(recording, user, 12.0, 15.0, 2000.0, 6000.0, tags=[("call_type", "song")])
    response = user_client.get(f"/recordings/{recording.uuid}/")
    html = response.content.decode()
    # 12 s of a 60 s view is 20 % from the left; 6 kHz of 16 kHz leaves 62.5 % above it; 4 kHz is 25 % high.
    assert box_styles(html) == {str(annotation.uuid): "left: 20.000%; width: 5.000%; top: 62.500%; height: 25.000%"}
    assert '<span class="annotation-label">American Robin <span class="by">· ecologist</span></span>' in html
    assert 'aria-label="Annotation American Robin, 0:12.0 to 0:15.0, 2.0–6.0 kHz, by ecologist"' in html
    # Distinct from the detections' boxes: no element of the page's detection box class.
    assert 'class="box lane-' not in html


def test_an_annotation_without_a_band_spans_the_whole_height(user_client, recording, user):
    annotation = annotate(recording, user, 30.0, 33.0)
    html = user_client.get(f"/recordings/{recording.uuid}/").content.decode()
    assert box_styles(html)[str(annotation.uuid)] == "left: 50.000%; width: 5.000%; top: 0.000%; height: 100.000%"
    assert "whole band" in html


def test_a_band_above_the_images_top_is_drawn_at_its_top_edge(user_client, recording, user):
    Recording.objects.filter(pk=recording.pk).update(samplerate=48_000)  # the image still stops at 16 kHz
    recording.refresh_from_db()
    annotation = annotate(recording, user, 1.0, 2.0, 18_000.0, 20_000.0)
    html = user_client.get(f"/recordings/{recording.uuid}/").content.decode()
    assert box_styles(html)[str(annotation.uuid)] == "left: 1.667%; width: 1.667%; top: 0.000%; height: 2.000%"


def test_only_the_annotations_of_the_view_are_drawn_and_a_box_across_its_edge_is_cut_at_it(
    user_client, recording, user
):
    inside = annotate(recording, user, 5.0, 8.0, 1000.0, 3000.0)
    later = annotate(recording, user, 70.0, 72.5, 1000.0, 3000.0)
    across = annotate(recording, user, 58.5, 61.5, 1000.0, 3000.0)
    url = f"/recordings/{recording.uuid}/"
    first = box_styles(user_client.get(url).content.decode())
    assert set(first) == {str(inside.uuid), str(across.uuid)}
    assert first[str(across.uuid)].startswith("left: 97.500%; width: 2.500%;")
    second = box_styles(user_client.get(url, {"t": "60"}).content.decode())
    assert set(second) == {str(later.uuid), str(across.uuid)}
    assert second[str(later.uuid)].startswith("left: 16.667%; width: 4.167%;")
    assert second[str(across.uuid)].startswith("left: 0.000%; width: 2.500%;")
    # The last view (120-150 s) is 30 s wide: nothing of these falls in it.
    assert box_styles(user_client.get(url, {"t": "130"}).content.decode()) == {}


def test_the_list_below_the_viewer_shows_every_annotation_by_time_with_links(user_client, recording, user):
    later = annotate(recording, user, 70.0, 72.5, 1000.0, 3000.0, species=(WREN,), notes="faint, behind wind")
    earlier = annotate(recording, user, 5.0, 8.0, tags=[("call_type", "song"), ("sex", "male")])
    response = user_client.get(f"/recordings/{recording.uuid}/")
    html = response.content.decode()
    assert [row["uuid"] for row in response.context["annotations"]] == [str(earlier.uuid), str(later.uuid)]
    table = html[html.index('class="annotations-table"') :]
    assert table.index("American Robin") < table.index("House Wren")
    assert '<span class="tag">call_type: song</span>' in table and '<span class="tag">sex: male</span>' in table
    assert "1.0–3.0 kHz" in table and "faint, behind wind" in table
    # The one in view opens in the form; the other links its minute with the box picked out; both find similar.
    assert f'class="open-annotation" data-annotation="{earlier.uuid}"' in table
    assert f"/recordings/{recording.uuid}/?t=70&amp;annotation={later.uuid}" in table
    for annotation in (earlier, later):
        assert f"/search/?sound_event={annotation.sound_event.uuid}&amp;target=both" in table


def test_the_form_data_says_who_may_change_each_annotation(recording, user, staff, django_user_model):
    mine = annotate(recording, user, 5.0, 8.0, 1000.0, 3000.0, tags=[("call_type", "song")], notes="n")
    theirs = annotate(recording, staff, 10.0, 12.0)
    other = django_user_model.objects.create_user(username="visitor", password="pw-visitor-1")

    def data_for(person) -> dict:
        client = Client()
        client.force_login(person)
        html = client.get(f"/recordings/{recording.uuid}/").content.decode()
        script = re.search(r'<script id="annotations-data" type="application/json">(.*?)</script>', html, re.S)
        return json.loads(script.group(1))

    as_author = data_for(user)
    assert as_author[str(mine.uuid)] | {"created_at": "", "updated_at": ""} == {
        "uuid": str(mine.uuid),
        "sound_event": str(mine.sound_event.uuid),
        "start_time": 5.0,
        "end_time": 8.0,
        "low_freq": 1000.0,
        "high_freq": 3000.0,
        "species": [ROBIN],
        "species_names": ["American Robin"],
        "tags": [{"key": "call_type", "value": "song"}],
        "notes": "n",
        "source": "drawn",
        "created_by": "ecologist",
        "created_at": "",
        "updated_by": "ecologist",
        "updated_at": "",
        "edited": False,
        "can_change": True,
        "similar_url": f"/search/?sound_event={mine.sound_event.uuid}&target=both",
    }
    assert as_author[str(theirs.uuid)]["can_change"] is False
    assert {uuid: row["can_change"] for uuid, row in data_for(staff).items()} == {
        str(mine.uuid): True,
        str(theirs.uuid): True,
    }
    assert not any(row["can_change"] for row in data_for(other).values())


def test_each_detection_row_has_a_confirm_button_that_makes_its_window_an_annotation(user_client, recording, user):
    run = ModelRun.objects.create(name="BirdNET", version="V2.4", kind=ModelRun.Kind.MODEL)
    job_with_detections(run, {recording: {3.0: {ROBIN: 0.9, WREN: 0.4}, 63.0: {WREN: 0.7}}})
    response = user_client.get(f"/recordings/{recording.uuid}/")
    html = response.content.decode()
    rows = response.context["page"].object_list
    assert len(rows) == 3
    forms = re.findall(
        r'<form class="confirm-detection" method="post" action="/api/v1/sound-event-annotations/confirm/">.*?</form>',
        html,
        re.S,
    )
    assert len(forms) == 3
    for row, form in zip(rows, forms, strict=True):
        assert row["clip_prediction_uuid"] == ClipPrediction.objects.get(clip__start_time=row["start_time"]).uuid
        assert f'name="clip_prediction" value="{row["clip_prediction_uuid"]}"' in form
        assert f'name="species" value="{row["species"]}"' in form
        assert "✓ confirm" in form
    # What the button sends, as the page's script sends it: the window becomes a box of that species, drawn.
    robin = next(row for row in rows if row["species"] == ROBIN)
    answer = user_client.post(
        "/api/v1/sound-event-annotations/confirm/",
        {"clip_prediction": str(robin["clip_prediction_uuid"]), "species": ROBIN},
        content_type="application/json",
    )
    assert answer.status_code == 201, answer.content
    created = SoundEventAnnotation.objects.get(uuid=answer.json()["uuid"])
    assert (created.sound_event.start_time, created.sound_event.end_time, created.source) == (3.0, 6.0, "detection")
    html = user_client.get(f"/recordings/{recording.uuid}/", {"annotation": str(created.uuid)}).content.decode()
    assert box_styles(html)[str(created.uuid)] == "left: 5.000%; width: 5.000%; top: 0.000%; height: 100.000%"
    assert re.search(rf'class="annotation-box [^"]*selected" data-annotation="{created.uuid}"', html)


def test_the_page_reads_fifty_annotations_with_their_tags_in_as_many_queries_as_one(
    user_client, recording, user, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    annotate(recording, user, 1.0, 2.0, 1000.0, 2000.0, tags=[("call_type", "song")])
    with CaptureQueriesContext(connection) as one:
        user_client.get(f"/recordings/{recording.uuid}/")
    for i in range(49):
        annotate(recording, user, 2.0 + i, 2.5 + i, 1000.0, 2000.0, species=(ROBIN, WREN), tags=[("n", str(i))])
    with django_assert_num_queries(len(one.captured_queries)):
        response = user_client.get(f"/recordings/{recording.uuid}/")
    assert len(response.context["annotation_boxes"]) == 50
    assert len(response.context["annotations"]) == 50


def test_the_page_offers_annotate_mode_the_form_and_the_label_toggle(user_client, recording):
    html = user_client.get(f"/recordings/{recording.uuid}/").content.decode()
    assert '<button type="button" class="annotate-mode" aria-pressed="false"' in html
    assert 'data-api="/api/v1/sound-event-annotations/" data-species-url="/api/v1/species-names/"' in html
    assert 'data-view-from="0.0" data-view-to="60.0"' in html and 'data-top-hz="16000.0"' in html
    assert '<input type="checkbox" class="show-annotation-labels" checked>' in html
    assert '<section class="annotation-panel" hidden' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert "/static/echoroo/annotate.js" in html and "/static/echoroo/annotate.css" in html
    assert "No annotations yet" in html
