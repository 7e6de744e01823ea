"""Sound events get embeddings: a job's merged detections when it ends, people's boxes when saved, by the real model."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import call_command
from django_q.models import OrmQ

from echoroo import audio
from echoroo.models import SoundEvent
from embeddings import service, tasks
from embeddings.compute import embed_spans, event_span
from embeddings.indexes import index_state
from embeddings.models import ClipEmbedding, SoundEventEmbedding
from inference import services
from inference.config import InferenceConfig
from inference.runner import load_runtime
from tests.conftest import import_field_recordings

pytestmark = pytest.mark.django_db

# fp16 storage: a vector from the audio and one averaged from stored windows agree to this.
HALF = {"rtol": 2e-3, "atol": 2e-3}


@pytest.fixture
def birdnet():
    return load_runtime("birdnet", InferenceConfig())


@pytest.fixture
def model_run(db):
    return services.model_run_for("birdnet")


def run_job(recording, **config):
    config = {"confidence_threshold": 0.25, **config}
    job = services.create_job(model_name="birdnet", recording=recording, config=config)
    return services.start_job(job, sync=True)


def stored(model_run) -> dict[int, np.ndarray]:
    rows = SoundEventEmbedding.objects.filter(model_run=model_run)
    return {row.sound_event_id: np.asarray(row.embedding, dtype=np.float32) for row in rows}


def from_audio(runtime, event: SoundEvent) -> np.ndarray:
    recording = event.recording
    start_s, end_s = event_span(event.start_time, event.end_time, recording.duration, runtime.window_s)
    samples = audio.load_segment(recording.absolute_path, start_s, end_s, runtime.sample_rate)
    return embed_spans(runtime, [samples])[0]


def boxes(recording, *spans: tuple[float, float]) -> list[SoundEvent]:
    """Boxes as a person draws them: sound events no model made."""
    return [
        SoundEvent.objects.create(recording=recording, start_time=s, end_time=e, low_freq=2000, high_freq=6000)
        for s, e in spans
    ]


def test_a_box_gets_the_embedding_of_the_window_centred_on_it(field_recording, model_run, birdnet):
    (call,) = boxes(field_recording, (10.0, 10.6))
    assert service.embed_sound_events(birdnet, model_run.pk, field_recording, [(call.pk, 10.0, 10.6)]) == 1
    window = audio.load_segment(field_recording.absolute_path, 8.8, 11.8, 48_000)
    expected = birdnet.predict(window[None, :])[1][0]
    np.testing.assert_allclose(stored(model_run)[call.pk], expected.astype(np.float16), **HALF)


def test_a_long_box_gets_the_mean_of_its_windows_unit_vectors(field_recording, model_run, birdnet):
    (song,) = boxes(field_recording, (20.0, 24.5))
    service.embed_sound_events(birdnet, model_run.pk, field_recording, [(song.pk, 20.0, 24.5)])
    windows = np.stack([audio.load_segment(field_recording.absolute_path, s, s + 3, 48_000) for s in (19.25, 22.25)])
    vectors = birdnet.predict(windows)[1]
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(stored(model_run)[song.pk], units.mean(axis=0), **HALF)


def test_a_box_on_a_recording_shorter_than_a_window_gets_its_zero_padded_window(audio_root, model_run, birdnet):
    recording = import_field_recordings(audio_root, ["veryshort.wav"], dataset="Short").recordings.get()
    (call,) = boxes(recording, (0.02, 0.1))
    service.embed_sound_events(birdnet, model_run.pk, recording, [(call.pk, 0.02, 0.1)])
    window = np.zeros(birdnet.window_samples, dtype=np.float32)
    samples = audio.load_segment(recording.absolute_path, 0.0, recording.duration, 48_000)
    window[: len(samples)] = samples
    np.testing.assert_allclose(stored(model_run)[call.pk], birdnet.predict(window[None, :])[1][0], **HALF)


def test_a_jobs_detections_average_its_stored_windows_as_from_the_audio(field_recording, birdnet, monkeypatch):
    job = run_job(field_recording)
    detections = list(SoundEvent.objects.filter(predictions__job=job).select_related("recording"))
    assert len(detections) > 3 and not SoundEventEmbedding.objects.exists()
    # At overlap 0 every merged detection is exactly windows the job embedded: no model call is needed.
    assert load_runtime("birdnet", job.settings) is birdnet
    calls = []
    monkeypatch.setattr(birdnet, "predict", lambda batch: calls.append(batch) or ())
    assert tasks.embed_job_detections(job.pk).startswith(f"{len(detections)} detections embedded")
    assert not calls
    monkeypatch.undo()
    vectors = stored(job.model_run)
    assert set(vectors) == {event.pk for event in detections}
    for event in detections:
        np.testing.assert_allclose(vectors[event.pk], from_audio(birdnet, event), **HALF, err_msg=str(event))


def test_detections_of_an_overlapping_job_are_computed_from_the_audio(field_recording, birdnet):
    job = run_job(field_recording, overlap=1.5)
    detections = list(SoundEvent.objects.filter(predictions__job=job).select_related("recording"))
    assert any(event.end_time - event.start_time > 3 for event in detections)  # merged windows
    tasks.embed_job_detections(job.pk)
    vectors = stored(job.model_run)
    assert set(vectors) == {event.pk for event in detections}
    for event in detections:
        np.testing.assert_allclose(vectors[event.pk], from_audio(birdnet, event), **HALF, err_msg=str(event))


def test_embedding_a_jobs_detections_again_adds_nothing_and_the_index_is_there(field_recording):
    job = run_job(field_recording)
    tasks.embed_job_detections(job.pk)
    before = stored(job.model_run)
    assert tasks.embed_job_detections(job.pk).startswith("0 detections embedded")
    assert stored(job.model_run).keys() == before.keys()
    assert index_state("sound_event", job.model_run_id) == "valid"


def test_a_job_without_embeddings_leaves_its_detections_to_the_backfill(field_recording):
    job = run_job(field_recording, store_embeddings=False)
    assert SoundEvent.objects.filter(predictions__job=job).exists()
    assert tasks.embed_job_detections(job.pk) == "the job stores no embeddings"
    assert not SoundEventEmbedding.objects.exists()


def test_a_job_that_ends_queues_the_embedding_of_its_detections(field_recording, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run_job(field_recording)
    queued = [task.func() for task in OrmQ.objects.all()]
    assert "embeddings.tasks.embed_job_detections" in queued


def test_boxes_are_embedded_with_every_installed_model_that_has_a_run(field_recording, model_run):
    first, second = boxes(field_recording, (1.0, 1.5), (40.0, 47.0))
    assert tasks.embed_sound_events([first.pk, second.pk]) == f"{model_run}: 2 added"
    assert tasks.embed_sound_events([first.pk, second.pk]) == f"{model_run}: 0 added"
    assert set(stored(model_run)) == {first.pk, second.pk}
    assert index_state("sound_event", model_run.pk) == "valid"


def test_a_model_that_cannot_load_here_does_not_stop_the_others(field_recording, model_run):
    services.model_run_for("perch")  # PERCH_MODEL names a folder that is not there, in the tests
    (call,) = boxes(field_recording, (1.0, 1.5))
    result = tasks.embed_sound_events([call.pk])
    assert f"{model_run}: 1 added" in result and "cannot be loaded" in result
    assert SoundEventEmbedding.objects.get().model_run == model_run


def test_without_a_run_of_an_installed_model_nothing_is_embedded(field_recording):
    (call,) = boxes(field_recording, (1.0, 1.5))
    assert tasks.embed_sound_events([call.pk]) == "no installed model has a run with embeddings"


def test_queueing_boxes_queues_one_task(field_recording):
    first, second = boxes(field_recording, (1.0, 1.5), (4.0, 4.5))
    tasks.queue_sound_event_embeddings([])
    assert not OrmQ.objects.exists()
    tasks.queue_sound_event_embeddings([first.pk, second.pk])
    (task,) = OrmQ.objects.all()
    assert task.func() == "embeddings.tasks.embed_sound_events" and task.args() == ([first.pk, second.pk],)


def test_a_box_moved_while_it_was_embedded_keeps_no_vector_of_its_old_place(field_recording, model_run, birdnet):
    (call,) = boxes(field_recording, (1.0, 1.5))
    SoundEvent.objects.filter(pk=call.pk).update(start_time=30.0, end_time=30.5)
    assert service.embed_sound_events(birdnet, model_run.pk, field_recording, [(call.pk, 1.0, 1.5)]) == 0
    assert not SoundEventEmbedding.objects.exists()


def test_backfill_fills_the_detections_and_boxes_the_run_lacks(field_recording):
    job = run_job(field_recording, store_embeddings=False)
    detections = set(SoundEvent.objects.filter(predictions__job=job).values_list("pk", flat=True))
    (call,) = boxes(field_recording, (12.0, 12.4))
    out, errors = io.StringIO(), io.StringIO()
    call_command("backfill_embeddings", stdout=out, stderr=errors)
    assert f"of clips and {len(detections) + 1} of sound events" in out.getvalue()
    assert set(stored(job.model_run)) == detections | {call.pk}
    assert ClipEmbedding.objects.filter(model_run=job.model_run).count() == 20
    assert index_state("sound_event", job.model_run_id) == "valid"
    out = io.StringIO()
    call_command("backfill_embeddings", stdout=out, stderr=io.StringIO())
    assert "nothing to do" in out.getvalue()


def test_backfill_help_says_it_fills_sound_events_too():
    from embeddings.management.commands.backfill_embeddings import Command

    help_text = " ".join(Command().create_parser("manage.py", "backfill_embeddings").format_help().split())
    assert "sound events it embeds (its merged detections and people's annotated boxes)" in help_text
