"""Jobs end to end in one process (sync): the rows a job stores, exactly once, and how it fails."""

import numpy as np
import pytest
from django.conf import settings
from django.db.models import Count

from echoroo.models import (
    Clip,
    ClipOutput,
    ClipPrediction,
    ClipPredictionTag,
    RecordingOutput,
    SoundEvent,
    SoundEventPrediction,
    Tag,
)
from embeddings.models import ClipEmbedding
from inference import services
from inference.config import ConfigError, InferenceConfig
from inference.models import InferenceJob, JobRecording
from inference.runner import run_job_recording

pytestmark = pytest.mark.django_db


def counts() -> dict[str, int]:
    return {
        "clips": Clip.objects.count(),
        "predictions": ClipPrediction.objects.count(),
        "prediction_tags": ClipPredictionTag.objects.count(),
        "sound_events": SoundEvent.objects.count(),
        "detections": SoundEventPrediction.objects.count(),
        "embeddings": ClipEmbedding.objects.count(),
        "raw_outputs": ClipOutput.objects.count(),
    }


def run(target, **config):
    kwargs = {"dataset": target} if hasattr(target, "recordings") else {"recording": target}
    job = services.create_job(model_name="birdnet", config={"confidence_threshold": 0.25, **config}, **kwargs)
    return services.start_job(job, sync=True)


def test_a_birdnet_job_stores_clips_predictions_detections_and_embeddings(field_recording):
    job = run(field_recording)
    assert job.status == InferenceJob.Status.COMPLETED
    assert (job.progress, job.processed_clips, job.total_clips) == (100.0, 20, 20)
    stored = counts()
    assert stored["clips"] == 20 and stored["embeddings"] == 20
    assert stored["predictions"] > 0 and stored["prediction_tags"] >= stored["predictions"]
    # Without overlap, every window detection is its own sound event.
    assert stored["detections"] == stored["prediction_tags"] == stored["sound_events"]
    spans = sorted(Clip.objects.values_list("start_time", "end_time"))
    assert spans[0] == (0.0, 3.0) and spans[-1] == (57.0, 60.0)
    assert Tag.objects.filter(key="species", value="Hylocichla mustelina_Wood Thrush").exists()
    dims = {len(e.embedding) for e in ClipEmbedding.objects.all()}
    assert dims == {1024}
    assert job.model_run.embedding_dimension == 1024 and job.model_run.name == "birdnet"
    # The raw output: a row per window, the whole recording marked as stored.
    assert stored["raw_outputs"] == 20
    assert RecordingOutput.objects.get().windows == 20
    assert set(ClipPrediction.objects.values_list("job", flat=True)) == {job.pk}


def test_scores_respect_the_threshold(field_recording):
    run(field_recording, confidence_threshold=0.6)
    scores = list(ClipPredictionTag.objects.values_list("score", flat=True))
    assert scores and min(scores) >= 0.6


def test_rerunning_a_recording_adds_no_rows(field_recording):
    job = run(field_recording)
    before = counts()
    JobRecording.objects.filter(job=job).update(status=JobRecording.Status.PENDING)
    assert run_job_recording(job.id, field_recording.id) == JobRecording.Status.DONE
    assert counts() == before


def test_a_second_job_adds_its_own_detections_and_no_model_output(field_recording):
    first = run(field_recording)
    before = counts()
    second = run(field_recording)
    assert second.model_run_id == first.model_run_id
    after = counts()
    # The same settings select the same detections, as the second job's own rows.
    for kind in ("predictions", "prediction_tags", "detections", "sound_events"):
        assert after[kind] == 2 * before[kind]
    for kind in ("clips", "embeddings", "raw_outputs"):
        assert after[kind] == before[kind]


def test_a_task_delivered_twice_does_its_work_once(field_recording):
    job = run(field_recording)
    before = counts()
    assert run_job_recording(job.id, field_recording.id) == "skipped"
    assert counts() == before
    assert JobRecording.objects.get(job=job).attempts == 1


def test_overlapping_windows_merge_into_detections(field_recording):
    run(field_recording, overlap=1.5)
    assert Clip.objects.count() == 39
    assert SoundEventPrediction.objects.count() < ClipPredictionTag.objects.count()
    longest = max(SoundEvent.objects.values_list("end_time", "start_time"), key=lambda span: span[0] - span[1])
    assert longest[0] - longest[1] > 3.0


def test_store_options_are_honoured(field_recording):
    run(field_recording, store_embeddings=False)
    assert ClipEmbedding.objects.count() == 0 and ClipPrediction.objects.count() > 0
    # Every window is a clip: the model's raw output is kept per window.
    assert Clip.objects.count() == 20
    assert not RecordingOutput.objects.get().embeddings


def test_embeddings_without_predictions(field_recording):
    run(field_recording, store_predictions=False)
    assert ClipEmbedding.objects.count() == 20
    assert ClipPrediction.objects.count() == 0 and SoundEvent.objects.count() == 0


def test_custom_species_list_keeps_only_those_species(field_recording):
    run(field_recording, custom_species_list=["Hylocichla mustelina"], confidence_threshold=0.1)
    values = set(ClipPredictionTag.objects.values_list("tag__value", flat=True))
    assert values == {"Hylocichla mustelina_Wood Thrush"}


def test_the_species_filter_uses_the_site_location(field_recording):
    run(field_recording, confidence_threshold=0.1)
    near_home = set(ClipPredictionTag.objects.values_list("tag__value", flat=True))
    ClipPredictionTag.objects.all().delete()
    # Sydney in January: no North American thrushes.
    run(field_recording, confidence_threshold=0.1, latitude=-33.87, longitude=151.21, week=2)
    far_away = set(ClipPredictionTag.objects.values_list("tag__value", flat=True))
    assert "Hylocichla mustelina_Wood Thrush" in near_home
    assert "Hylocichla mustelina_Wood Thrush" not in far_away


def test_a_corrupt_file_fails_that_recording_and_the_others_complete(field_dataset, audio_root):
    broken = field_dataset.recordings.get(path__endswith="rugr_drum.wav")
    (audio_root / broken.path).write_bytes(b"RIFF....WAVEfmt garbage")
    job = run(field_dataset)
    assert job.status == InferenceJob.Status.COMPLETED
    states = dict(job.job_recordings.values_list("recording__path", "status"))
    assert states[broken.path] == JobRecording.Status.FAILED
    assert [s for p, s in states.items() if p != broken.path] == [JobRecording.Status.DONE]
    failed = job.job_recordings.get(recording=broken)
    assert "rugr_drum.wav" in failed.error_message
    assert "1 of 2 recordings failed" in job.error_message
    assert not Clip.objects.filter(recording=broken).exists()
    assert Clip.objects.filter(recording__path__endswith="1min.wav").count() == 20


def test_a_file_that_vanished_fails_its_recording(field_recording, audio_root):
    (audio_root / field_recording.path).unlink()
    job = run(field_recording)
    assert job.status == InferenceJob.Status.FAILED
    assert "1min.wav" in job.job_recordings.get().error_message


def test_retry_failed_runs_the_failed_recordings_again(field_recording, audio_root, shared_data):
    path = audio_root / field_recording.path
    path.rename(path.with_suffix(".away"))
    job = run(field_recording)
    assert job.status == InferenceJob.Status.FAILED
    path.with_suffix(".away").rename(path)
    job = services.retry_failed(job, sync=True)
    assert job.status == InferenceJob.Status.COMPLETED and job.error_message == ""
    assert ClipEmbedding.objects.count() == 20


def test_cancel_keeps_finished_recordings_and_skips_the_rest(field_dataset):
    job = services.create_job(model_name="birdnet", dataset=field_dataset, config={})
    first, second = field_dataset.recordings.order_by("id")
    # Start without running anything, run one recording, cancel, then deliver the other task.
    job = services.start_job(job)
    assert run_job_recording(job.id, first.id) == JobRecording.Status.DONE
    job = services.cancel_job(job)
    assert run_job_recording(job.id, second.id) == "skipped"
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.CANCELLED and job.completed_at
    states = dict(job.job_recordings.values_list("recording_id", "status"))
    assert states == {first.id: JobRecording.Status.DONE, second.id: JobRecording.Status.CANCELLED}
    assert Clip.objects.filter(recording=first).exists() and not Clip.objects.filter(recording=second).exists()


def test_starting_queues_one_task_per_recording(field_dataset, django_capture_on_commit_callbacks):
    from django_q.models import OrmQ

    job = services.create_job(model_name="birdnet", dataset=field_dataset, config={})
    with django_capture_on_commit_callbacks(execute=True):
        job = services.start_job(job)
    assert OrmQ.objects.count() == 2
    assert job.status == InferenceJob.Status.RUNNING and job.total_clips == 20 + 4


def test_jobs_of_one_model_share_its_model_run(field_recording, field_dataset):
    a = services.create_job(model_name="birdnet", recording=field_recording, config={})
    b = services.create_job(model_name="birdnet", dataset=field_dataset, config={"sensitivity": 1.2})
    assert a.model_run_id == b.model_run_id


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"confidence_threshold": 1.5}, "confidence_threshold"),
        ({"confidence_threshold": -0.1}, "confidence_threshold"),
        ({"overlap": 3.0}, "overlap"),
        ({"overlap": -1}, "overlap"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 100000}, "batch_size"),
        ({"latitude": 95, "longitude": 0}, "latitude"),
        ({"latitude": 10}, "longitude"),
        ({"sensitivity": 2}, "sensitivity"),
        ({"week": 49}, "week"),
        ({"use_gpu": "yes"}, "use_gpu"),
        ({"confidence_treshold": 0.5}, "confidence_treshold"),
        ({"custom_species_list": ["Not a bird"]}, "custom_species_list"),
        ({"store_predictions": False, "store_embeddings": False}, "store_predictions"),
    ],
)
def test_invalid_settings_are_refused_naming_the_field(field_recording, config, field):
    with pytest.raises(ConfigError) as error:
        services.create_job(model_name="birdnet", recording=field_recording, config=config)
    assert field in error.value.errors


def test_a_job_needs_exactly_one_target_and_a_known_model(field_recording, field_dataset):
    with pytest.raises(ConfigError) as error:
        services.create_job(model_name="birdnet", config={})
    assert "dataset" in error.value.errors
    with pytest.raises(ConfigError) as error:
        services.create_job(model_name="birdnet", dataset=field_dataset, recording=field_recording, config={})
    assert "dataset" in error.value.errors
    with pytest.raises(ConfigError) as error:
        services.create_job(model_name="whisper", recording=field_recording, config={})
    assert "model_name" in error.value.errors


def test_window_results_match_the_pipeline_directly(field_recording, audio_root):
    """Storage loses nothing: the stored scores are the pipeline's, per window and species."""
    from inference.pipeline import PipelineOptions, run_recording
    from inference.runtimes import get_runtime

    run(field_recording, use_metadata_filter=False)
    runtime = get_runtime("birdnet", sensitivity=1.0, num_threads=1, cache_dir=settings.MODEL_CACHE_DIR)
    expected = {
        (d.start_s, runtime.labels[d.label_index].name): d.score
        for d in run_recording(
            runtime, audio_root / field_recording.path, PipelineOptions(InferenceConfig(confidence_threshold=0.25))
        ).window_detections()
    }
    stored = {
        (start, value): score
        for start, value, score in ClipPredictionTag.objects.values_list(
            "clip_prediction__clip__start_time", "tag__value", "score"
        )
    }
    assert stored.keys() == expected.keys()
    assert np.allclose([stored[k] for k in expected], [expected[k] for k in expected], atol=1e-6)
    per_clip = ClipPrediction.objects.annotate(n=Count("tags")).values_list("n", flat=True)
    assert min(per_clip) >= 1


def test_a_perch_job_needs_perch_model_set(field_recording, settings):
    settings.PERCH_MODEL = ""
    with pytest.raises(ConfigError) as error:
        services.create_job(model_name="perch", recording=field_recording, config={})
    assert "PERCH_MODEL is not set" in error.value.errors["model_name"]


def test_a_job_at_a_higher_threshold_leaves_the_first_jobs_scores_alone(field_recording):
    first = run(field_recording, confidence_threshold=0.25)
    low = list(ClipPredictionTag.objects.order_by("pk").values_list("pk", "score"))
    second = run(field_recording, confidence_threshold=0.6)
    assert (
        list(ClipPredictionTag.objects.filter(clip_prediction__job=first).order_by("pk").values_list("pk", "score"))
        == low
    )
    high = ClipPredictionTag.objects.filter(clip_prediction__job=second)
    assert 0 < high.count() < len(low)
    assert high.filter(score__lt=0.6).count() == 0
    assert high.count() == SoundEventPrediction.objects.filter(job=second).count()
    assert second.job_recordings.get().reused


def test_short_recordings_share_a_task(field_dataset, settings, django_capture_on_commit_callbacks):
    from django_q.models import OrmQ

    from inference.services import task_groups

    assert task_groups([1, 2, 3, 4, 5], {1: 200, 2: 200, 3: 50, 4: 400, 5: 10}, 300) == [[1, 2], [3, 4], [5]]
    assert task_groups([1, 2], {1: 10, 2: 10}, 0) == [[1], [2]]
    settings.INFERENCE_TASK_AUDIO_S = 300
    job = services.create_job(model_name="birdnet", dataset=field_dataset, config={})
    with django_capture_on_commit_callbacks(execute=True):
        services.start_job(job)
    assert OrmQ.objects.count() == 1, "70 s of audio is one task"


def test_deleting_a_job_deletes_its_detections_not_the_raw_output(field_recording):
    first = run(field_recording)
    before = counts()
    second = run(field_recording, confidence_threshold=0.5)
    second.delete()
    assert counts() == before
    assert ClipPrediction.objects.filter(job=first).count() == before["predictions"]


def test_the_admin_deletes_a_finished_job_with_its_detections_and_refuses_a_running_one(
    field_recording, admin_user_logged_in
):
    first = run(field_recording)
    before = counts()
    second = run(field_recording, confidence_threshold=0.5)
    url = f"/admin/inference/inferencejob/{second.pk}/delete/"
    page = admin_user_logged_in.get(url).content.decode()
    assert f"{ClipPrediction.objects.filter(job=second).count()} window detections" in page
    assert admin_user_logged_in.post(url, {"post": "yes"}).status_code == 302
    assert not InferenceJob.objects.filter(pk=second.pk).exists()
    assert counts() == before
    InferenceJob.objects.filter(pk=first.pk).update(status=InferenceJob.Status.RUNNING)
    response = admin_user_logged_in.post(f"/admin/inference/inferencejob/{first.pk}/delete/", {"post": "yes"})
    assert "is running: cancel it first" in response.content.decode()
    assert counts() == before
