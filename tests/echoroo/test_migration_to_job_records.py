"""Migration 0006 on rows the previous schema wrote: predictions become raw output and the writer job's detections."""

import math
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("echoroo", "0004_cascade_in_database"), ("inference", "0001_initial"), ("classifiers", "0001_initial")]
WOOD_THRUSH = "Hylocichla mustelina_Wood Thrush"
FIELD_SPARROW = "Spizella pusilla_Field Sparrow"


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def old_rows(apps) -> dict:
    """What the previous schema held: two jobs of one run on a recording (the newer wrote last), a classifier."""
    get = apps.get_model
    dataset = get("echoroo", "Dataset").objects.create(uuid=uuid.uuid4(), name="Old season")
    recording = get("echoroo", "Recording").objects.create(
        uuid=uuid.uuid4(),
        dataset=dataset,
        path="old/1min.wav",
        sha256="0" * 64,
        duration=60.0,
        samplerate=32000,
        channels=1,
    )
    run = get("echoroo", "ModelRun").objects.create(
        uuid=uuid.uuid4(), name="birdnet", version="2.4", kind="model", segment_duration=3.0, sample_rate=48000
    )
    classifier_run = get("echoroo", "ModelRun").objects.create(
        uuid=uuid.uuid4(), name="classifier:song", version="1", kind="classifier", source=run
    )
    Job, JobRecording = get("inference", "InferenceJob"), get("inference", "JobRecording")
    config = {"confidence_threshold": 0.25, "sensitivity": 1.25, "use_metadata_filter": False, "overlap": 0.0}
    older = Job.objects.create(uuid=uuid.uuid4(), model_run=run, dataset=dataset, status="completed", config={})
    writer = Job.objects.create(uuid=uuid.uuid4(), model_run=run, dataset=dataset, status="completed", config=config)
    now = timezone.now()
    for job, finished in ((older, now - timedelta(days=1)), (writer, now)):
        JobRecording.objects.create(job=job, recording=recording, status="done", total_clips=20, finished_at=finished)
    Tag = get("echoroo", "Tag")
    thrush = Tag.objects.create(uuid=uuid.uuid4(), key="species", value=WOOD_THRUSH)
    sparrow = Tag.objects.create(uuid=uuid.uuid4(), key="species", value=FIELD_SPARROW)
    song = Tag.objects.create(uuid=uuid.uuid4(), key="species", value="Wood Thrush song")
    Clip, Prediction, PredictionTag = (get("echoroo", n) for n in ("Clip", "ClipPrediction", "ClipPredictionTag"))
    first = Clip.objects.create(uuid=uuid.uuid4(), recording=recording, start_time=0.0, end_time=3.0)
    second = Clip.objects.create(uuid=uuid.uuid4(), recording=recording, start_time=6.0, end_time=9.0)
    for clip, scores in ((first, {thrush: 0.9, sparrow: 0.3}), (second, {thrush: 0.6})):
        prediction = Prediction.objects.create(uuid=uuid.uuid4(), clip=clip, model_run=run)
        for tag, score in scores.items():
            PredictionTag.objects.create(clip_prediction=prediction, tag=tag, score=score)
    scored = Prediction.objects.create(uuid=uuid.uuid4(), clip=first, model_run=classifier_run)
    PredictionTag.objects.create(clip_prediction=scored, tag=song, score=0.0002)
    event = get("echoroo", "SoundEvent").objects.create(
        uuid=uuid.uuid4(), recording=recording, start_time=0, end_time=3
    )
    detection = get("echoroo", "SoundEventPrediction").objects.create(
        uuid=uuid.uuid4(), sound_event=event, model_run=run
    )
    get("echoroo", "SoundEventPredictionTag").objects.create(sound_event_prediction=detection, tag=thrush, score=0.9)
    return {"recording": recording.pk, "run": run.pk, "writer": writer.pk, "older": older.pk, "thrush": thrush.pk}


def test_old_predictions_become_raw_output_and_the_writer_jobs_detections():
    migrate(BEFORE)
    ids = old_rows(MigrationExecutor(connection).loader.project_state(BEFORE).apps)
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    from echoroo.models import ClipOutput, ClipPrediction, RecordingOutput, SoundEventPrediction
    from inference import services
    from inference.models import InferenceJob

    outputs = {o.clip.start_time: o for o in ClipOutput.objects.select_related("clip")}
    assert sorted(outputs) == [0.0, 6.0]
    first = outputs[0.0]
    assert first.tags[0] == ids["thrush"] and len(first.tags) == 2
    # The logit the writer's sensitivity 1.25 turned into 0.9.
    assert first.logits[0] == pytest.approx(math.log(0.9 / 0.1) / 1.25, abs=1e-5)
    assert set(ClipPrediction.objects.filter(model_run_id=ids["run"]).values_list("job", flat=True)) == {ids["writer"]}
    assert not ClipPrediction.objects.filter(job_id=ids["older"]).exists()
    assert SoundEventPrediction.objects.get().job_id == ids["writer"]
    # The classifier's score stays a classifier score, with no job.
    assert ClipPrediction.objects.filter(job__isnull=True).count() == 1
    stored = RecordingOutput.objects.get()
    assert (stored.windows, stored.overlap, stored.embeddings) == (20, 0.0, False)
    assert stored.floor_logit == pytest.approx(math.log(0.25 / 0.75) / 1.25)

    # A stricter job on the migrated recording selects from it without the model (no audio file needed).
    job = InferenceJob.objects.get(pk=ids["writer"])
    stricter = services.create_job(
        model_name="birdnet",
        dataset=job.dataset,
        config={
            "confidence_threshold": 0.7,
            "sensitivity": 1.25,
            "use_metadata_filter": False,
            "store_embeddings": False,
        },
    )
    stricter = services.start_job(stricter, sync=True)
    assert stricter.status == "completed" and stricter.job_recordings.get().reused
    found = ClipPrediction.objects.filter(job=stricter).values_list(
        "clip__start_time", "tags__tag__value", "tags__score"
    )
    assert [(start, value) for start, value, _ in found] == [(0.0, WOOD_THRUSH)]
    assert list(found)[0][2] == pytest.approx(0.9, abs=1e-6)
