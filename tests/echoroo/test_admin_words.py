"""The admin says lengths, times and rows in people's words: durations formatted, clips by path and clock time."""

import pytest
from django.urls import reverse

from annotations.models import SoundEventAnnotation
from echoroo.models import (
    SPECIES,
    Clip,
    ClipPrediction,
    ClipPredictionTag,
    Dataset,
    ModelRun,
    Recording,
    SoundEvent,
    Tag,
)
from inference.models import InferenceJob, JobRecording
from validation.models import Verdict

pytestmark = pytest.mark.django_db

SHA = "ef" * 32
PATH = "Marsh/North/20260401_053000.WAV"


def changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.fixture
def recording():
    dataset = Dataset.objects.create(name="Marsh")
    return Recording.objects.create(
        dataset=dataset, path=PATH, sha256=SHA, duration=1800.0, samplerate=48000, channels=1
    )


def test_recording_durations_read_as_lengths_of_time_not_raw_floats(admin_client, recording):
    Recording.objects.create(
        dataset=recording.dataset, path="Marsh/veryshort.wav", sha256=SHA, duration=0.14208616780045352,
        samplerate=48000, channels=1,
    )  # fmt: skip
    page = admin_client.get(changelist(Recording)).content.decode()
    assert "0.142 s" in page and "30 min" in page
    assert "0.14208616780045352" not in page and "1800.0" not in page


def test_clips_and_sound_events_show_clock_times_and_bands(admin_client, recording):
    Clip.objects.create(recording=recording, start_time=1797, end_time=1800)
    SoundEvent.objects.create(recording=recording, start_time=61.5, end_time=63, low_freq=1200, high_freq=5000)
    clips = admin_client.get(changelist(Clip)).content.decode()
    assert "29:57.0" in clips and "30:00.0" in clips and "1797.0" not in clips
    events = admin_client.get(changelist(SoundEvent)).content.decode()
    assert "1:01.5" in events and "1.2–5 kHz" in events


def test_the_model_runs_window_reads_in_seconds(admin_client):
    ModelRun.objects.create(name="birdnet", version="2.4", segment_duration=3.0)
    assert '<td class="field-window">3 s</td>' in admin_client.get(changelist(ModelRun)).content.decode()


def test_rows_name_their_recording_and_times_not_database_ids(admin_client, admin_user, recording):
    clip = Clip.objects.create(recording=recording, start_time=1797, end_time=1800)
    event = SoundEvent.objects.create(recording=recording, start_time=3, end_time=6)
    run = ModelRun.objects.create(name="birdnet", version="2.4")
    job = InferenceJob.objects.create(model_run=run, recording=recording)
    prediction = ClipPrediction.objects.create(clip=clip, model_run=run, job=job)
    thrush = Tag.objects.create(key=SPECIES, value="Hylocichla mustelina_Wood Thrush")
    tag = ClipPredictionTag.objects.create(clip_prediction=prediction, tag=thrush, score=0.8125)
    verdict = Verdict.objects.create(clip=clip, species=thrush, verdict="correct", reviewer=admin_user)
    annotation = SoundEventAnnotation.objects.create(sound_event=event, recording=recording)
    job_recording = JobRecording.objects.create(job=job, recording=recording, status="failed")

    assert str(clip) == f"{PATH} 29:57.0–30:00.0"
    assert str(event) == f"{PATH} 0:03.0–0:06.0"
    assert str(prediction) == f"birdnet 2.4 on {PATH} 29:57.0–30:00.0"
    assert str(tag) == "Hylocichla mustelina_Wood Thrush 0.812"
    assert str(verdict) == f"Hylocichla mustelina_Wood Thrush at {PATH} 29:57.0–30:00.0: correct"
    assert str(annotation) == f"annotation {PATH} 0:03.0–0:06.0"
    assert str(job_recording) == f"{PATH}: failed"

    # The list of a prediction's tags names the prediction by them, with no query per row.
    page = admin_client.get(changelist(ClipPredictionTag)).content.decode()
    assert f"birdnet 2.4 on {PATH} 29:57.0–30:00.0" in page
    assert f"{recording.pk}:1797" not in page
