"""The database itself enforces the domain's invariants."""

import pytest
from django.db import IntegrityError, transaction

from echoroo.models import (
    Clip,
    ClipPrediction,
    ClipPredictionTag,
    Dataset,
    ModelRun,
    Recording,
    Site,
    SoundEvent,
    Tag,
)

pytestmark = pytest.mark.django_db

SHA = "0" * 64


@pytest.fixture
def dataset():
    return Dataset.objects.create(name="Field season 2026")


@pytest.fixture
def recording(dataset):
    return Recording.objects.create(
        dataset=dataset, path="site1/20260401_053000.wav", sha256=SHA, duration=60.0, samplerate=48000, channels=1
    )


def violates(constraint_name: str, make) -> None:
    with pytest.raises(IntegrityError) as error, transaction.atomic():
        make()
    assert constraint_name in str(error.value)


def test_clip_must_start_before_it_ends(recording):
    violates("clip_start_before_end", lambda: Clip.objects.create(recording=recording, start_time=3, end_time=3))
    violates("clip_start_before_end", lambda: Clip.objects.create(recording=recording, start_time=4, end_time=3))


def test_clip_cannot_start_before_the_recording(recording):
    violates("clip_start_not_negative", lambda: Clip.objects.create(recording=recording, start_time=-1, end_time=2))


def test_a_span_of_a_recording_is_one_clip(recording):
    Clip.objects.create(recording=recording, start_time=0, end_time=3)
    violates("clip_unique_span", lambda: Clip.objects.create(recording=recording, start_time=0, end_time=3))
    Clip.objects.create(recording=recording, start_time=0, end_time=5)
    assert recording.clips.count() == 2


def test_scores_lie_between_0_and_1(recording):
    clip = Clip.objects.create(recording=recording, start_time=0, end_time=3)
    run = ModelRun.objects.create(name="birdnet", version="2.4")
    prediction = ClipPrediction.objects.create(clip=clip, model_run=run)
    tag = Tag.objects.create(key="species", value="Turdus migratorius_American Robin")
    for bad in (-0.01, 1.01):
        violates(
            "clip_prediction_tag_score_0_1",
            lambda bad=bad: ClipPredictionTag.objects.create(clip_prediction=prediction, tag=tag, score=bad),
        )
    ClipPredictionTag.objects.create(clip_prediction=prediction, tag=tag, score=1.0)
    violates(
        "clip_prediction_tag_unique",
        lambda: ClipPredictionTag.objects.create(clip_prediction=prediction, tag=tag, score=0.5),
    )


def test_one_prediction_per_clip_and_model_run(recording):
    clip = Clip.objects.create(recording=recording, start_time=0, end_time=3)
    run = ModelRun.objects.create(name="birdnet", version="2.4")
    ClipPrediction.objects.create(clip=clip, model_run=run)
    violates("clip_prediction_unique_run", lambda: ClipPrediction.objects.create(clip=clip, model_run=run))


def test_model_name_and_version_are_unique():
    ModelRun.objects.create(name="birdnet", version="2.4")
    violates("model_run_unique_name_version", lambda: ModelRun.objects.create(name="birdnet", version="2.4"))


def test_tags_are_unique_and_not_empty():
    Tag.objects.create(key="species", value="Bonasa umbellus_Ruffed Grouse")
    violates("tag_unique_key_value", lambda: Tag.objects.create(key="species", value="Bonasa umbellus_Ruffed Grouse"))
    violates("tag_value_not_empty", lambda: Tag.objects.create(key="species", value=""))


@pytest.mark.parametrize(
    ("latitude", "longitude", "constraint"),
    [
        (91, 0, "latitude_range"),
        (-90.5, 0, "latitude_range"),
        (0, 180.1, "longitude_range"),
        (0, -181, "longitude_range"),
        (10, None, "latitude_with_longitude"),
    ],
)
def test_coordinates_are_checked_everywhere(dataset, latitude, longitude, constraint):
    violates(
        f"site_{constraint}",
        lambda: Site.objects.create(dataset=dataset, name="A", latitude=latitude, longitude=longitude),
    )
    violates(
        f"dataset_{constraint}",
        lambda: Dataset.objects.create(name="other", latitude=latitude, longitude=longitude),
    )
    violates(
        f"recording_{constraint}",
        lambda: Recording.objects.create(
            dataset=dataset,
            path="x.wav",
            sha256=SHA,
            duration=1,
            samplerate=1,
            channels=1,
            latitude=latitude,
            longitude=longitude,
        ),
    )


def test_coordinates_at_the_limits_are_valid(dataset):
    Site.objects.create(dataset=dataset, name="Pole", latitude=-90, longitude=180)
    assert dataset.sites.get().latitude == -90


def test_recording_is_checked(dataset):
    fields = dict(dataset=dataset, path="a.wav", sha256=SHA, duration=60, samplerate=48000, channels=1)
    violates("recording_duration_positive", lambda: Recording.objects.create(**{**fields, "duration": 0}))
    violates("recording_samplerate_positive", lambda: Recording.objects.create(**{**fields, "samplerate": 0}))
    violates("recording_channels_positive", lambda: Recording.objects.create(**{**fields, "channels": 0}))
    violates("recording_path_relative", lambda: Recording.objects.create(**{**fields, "path": "/etc/passwd"}))
    violates("recording_sha256_hex", lambda: Recording.objects.create(**{**fields, "sha256": "not-a-hash"}))
    Recording.objects.create(**fields)
    violates("recording_unique_path_in_dataset", lambda: Recording.objects.create(**fields))


def test_site_names_are_unique_within_a_dataset(dataset):
    Site.objects.create(dataset=dataset, name="North marsh")
    violates("site_unique_name_in_dataset", lambda: Site.objects.create(dataset=dataset, name="North marsh"))
    other = Dataset.objects.create(name="Other project")
    Site.objects.create(dataset=other, name="North marsh")


def test_sound_event_box_is_checked(recording):
    violates(
        "sound_event_start_before_end",
        lambda: SoundEvent.objects.create(recording=recording, start_time=2, end_time=1),
    )
    violates(
        "sound_event_low_below_high_freq",
        lambda: SoundEvent.objects.create(recording=recording, start_time=1, end_time=2, low_freq=4000, high_freq=2000),
    )
    SoundEvent.objects.create(recording=recording, start_time=1, end_time=2, low_freq=2000, high_freq=4000)


def test_every_entity_gets_a_uuid(recording):
    clip = Clip.objects.create(recording=recording, start_time=0, end_time=3)
    assert recording.uuid and clip.uuid and recording.uuid != clip.uuid


def test_the_vector_extension_is_installed():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        (version,) = cursor.fetchone()
    assert tuple(int(part) for part in version.split(".")[:2]) >= (0, 8)
