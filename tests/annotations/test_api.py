"""The sound event annotation API: draw, list and filter, move, retag, delete, confirm a detection, history."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotations import services
from annotations.models import SoundEventAnnotation
from echoroo.models import ModelRun, SoundEvent, SoundEventPrediction, SoundEventPredictionTag, Tag

GROUSE = "Bonasa umbellus_Ruffed Grouse"
URL = "/api/v1/sound-event-annotations/"


def body(target, **changes):
    values = {
        "recording": str(target.uuid),
        "start_time": 1.0,
        "end_time": 2.0,
        "low_freq": 300.0,
        "high_freq": 2500.0,
        "species": ["Ruffed Grouse"],
        "tags": [{"key": "call_type", "value": "drum"}],
    }
    return values | changes


def test_a_box_drawn_through_the_api_comes_back_with_its_species_label(api_client, field_recording):
    answer = api_client.post(URL, body(field_recording), format="json")
    assert answer.status_code == 201, answer.json()
    data = answer.json()
    assert data["species"] == [GROUSE]
    assert data["tags"] == [{"key": "call_type", "value": "drum"}]
    assert (data["start_time"], data["end_time"], data["low_freq"], data["high_freq"]) == (1.0, 2.0, 300.0, 2500.0)
    assert data["created_by"] == "ecologist" and data["source"] == "drawn"
    assert api_client.get(f"{URL}{data['uuid']}/").json() == data


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"end_time": 61.0}, "end_time"),
        ({"high_freq": 20_000.0}, "high_freq"),
        ({"species": ["Not a bird"]}, "species"),
        ({"start_time": "soon"}, "start_time"),
        ({"recording": "7f1d2c3b-0000-4000-8000-000000000000"}, "recording"),
    ],
)
def test_a_bad_box_is_a_400_naming_the_field_and_writes_nothing(api_client, field_recording, changes, field):
    answer = api_client.post(URL, body(field_recording, **changes), format="json")
    assert answer.status_code == 400
    assert field in answer.json()
    assert not SoundEvent.objects.exists()


def test_list_filters_by_recording_species_annotator_and_time(api_client, field_dataset, field_recording, user):
    drum = field_dataset.recordings.get(path__endswith="rugr_drum.wav")
    services.create_annotation(field_recording, by=user, start_time=1, end_time=2, species=[GROUSE])
    services.create_annotation(field_recording, by=user, start_time=30, end_time=31, species=["American Robin"])
    services.create_annotation(drum, by=user, start_time=3, end_time=4, species=[GROUSE])

    def starts(**query):
        answer = api_client.get(URL, query)
        assert answer.status_code == 200
        return sorted(row["start_time"] for row in answer.json()["results"])

    assert starts() == [1.0, 3.0, 30.0]
    assert starts(recording=str(field_recording.uuid)) == [1.0, 30.0]
    assert starts(species="rufgro") == [1.0, 3.0]
    assert starts(recording=str(field_recording.uuid), start=10, end=40) == [30.0]
    assert starts(created_by="nobody") == []


def test_patch_moves_the_box_and_only_the_author_or_staff_may(
    api_client, field_recording, user, staff, django_user_model
):
    uuid = api_client.post(URL, body(field_recording), format="json").json()["uuid"]
    moved = api_client.patch(f"{URL}{uuid}/", {"start_time": 5.0, "end_time": 6.0}, format="json")
    assert moved.status_code == 200, moved.json()
    assert (moved.json()["start_time"], moved.json()["species"]) == (5.0, [GROUSE])

    stranger = APIClient()
    stranger.force_authenticate(django_user_model.objects.create_user(username="stranger", password="pw-stranger-1"))
    assert stranger.patch(f"{URL}{uuid}/", {"notes": "mine"}, format="json").status_code == 403
    assert stranger.delete(f"{URL}{uuid}/").status_code == 403
    curator = APIClient()
    curator.force_authenticate(staff)
    assert curator.delete(f"{URL}{uuid}/").status_code == 204
    assert not SoundEventAnnotation.objects.exists()

    history = api_client.get(f"{URL}{uuid}/history/")
    assert [(row["action"], row["by"]) for row in history.json()] == [
        ("created", "ecologist"),
        ("changed", "ecologist"),
        ("deleted", "curator"),
    ]


def test_anonymous_users_get_nothing(client, field_recording):
    assert client.get(URL).status_code == 403


def test_a_detection_is_confirmed_as_an_annotation_once(api_client, field_recording):
    run = ModelRun.objects.create(name="birdnet", version="test")
    event = SoundEvent.objects.create(recording=field_recording, start_time=3.0, end_time=9.0)
    prediction = SoundEventPrediction.objects.create(sound_event=event, model_run=run)
    tag = Tag.objects.create(key="species", value=GROUSE)
    SoundEventPredictionTag.objects.create(sound_event_prediction=prediction, tag=tag, score=0.8)
    first = api_client.post(f"{URL}confirm/", {"detection": str(prediction.uuid)}, format="json")
    assert first.status_code == 201, first.json()
    data = first.json()
    assert (data["start_time"], data["end_time"], data["species"], data["source"]) == (3.0, 9.0, [GROUSE], "detection")
    assert data["detection"] == str(prediction.uuid)
    again = api_client.post(f"{URL}confirm/", {"detection": str(prediction.uuid)}, format="json")
    assert again.json()["uuid"] == data["uuid"]
    assert SoundEventAnnotation.objects.count() == 1
    unknown = api_client.post(f"{URL}confirm/", {"detection": "7f1d2c3b-0000-4000-8000-000000000000"}, format="json")
    assert unknown.status_code == 400 and "detection" in unknown.json()


def test_species_type_ahead(api_client):
    rows = api_client.get("/api/v1/species-names/", {"q": "ruffed g"}).json()
    assert rows[0] == {"label": GROUSE, "scientific_name": "Bonasa umbellus", "common_name": "Ruffed Grouse"}


def test_a_window_detection_is_confirmed_as_the_merged_detection_holding_it(api_client, field_recording):
    from echoroo.models import Clip, ClipPrediction
    from inference.models import InferenceJob

    run = ModelRun.objects.create(name="birdnet", version="test")
    job = InferenceJob.objects.create(model_run=run, recording=field_recording)
    grouse = Tag.objects.create(key="species", value=GROUSE)
    event = SoundEvent.objects.create(recording=field_recording, start_time=3.0, end_time=9.0)
    merged = SoundEventPrediction.objects.create(sound_event=event, model_run=run, job=job)
    SoundEventPredictionTag.objects.create(sound_event_prediction=merged, tag=grouse, score=0.8)
    inside = Clip.objects.create(recording=field_recording, start_time=6.0, end_time=9.0)
    alone = Clip.objects.create(recording=field_recording, start_time=30.0, end_time=33.0)
    window = ClipPrediction.objects.create(clip=inside, model_run=run, job=job)
    lonely = ClipPrediction.objects.create(clip=alone, model_run=run, job=job)

    held = api_client.post(
        f"{URL}confirm/", {"clip_prediction": str(window.uuid), "species": GROUSE}, format="json"
    ).json()
    assert (held["start_time"], held["end_time"], held["detection"]) == (3.0, 9.0, str(merged.uuid))
    own = api_client.post(f"{URL}confirm/", {"clip_prediction": str(lonely.uuid), "species": "rufgro"}, format="json")
    assert (own.json()["start_time"], own.json()["end_time"], own.json()["species"]) == (30.0, 33.0, [GROUSE])
    assert api_client.post(f"{URL}confirm/", {"clip_prediction": str(lonely.uuid)}, format="json").status_code == 400
