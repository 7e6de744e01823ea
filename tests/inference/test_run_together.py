"""A task's recordings run together where the model wants large batches (a GPU), with the same rows as one by one."""

import pytest

from echoroo.models import ClipOutput, ClipPredictionTag, SoundEventPredictionTag
from embeddings.models import ClipEmbedding
from inference import runner, services, tasks
from inference.models import InferenceJob, JobRecording
from tests.conftest import import_field_recordings

pytestmark = pytest.mark.django_db

CONFIG = {"confidence_threshold": 0.1}


class LargeBatchRuntime:
    """The real BirdNET runtime, declaring that it runs best on batches of 40 (as a GPU's runtime does)."""

    preferred_batch_size = 40

    def __init__(self, runtime):
        self.runtime = runtime
        self.batch_sizes: list[int] = []

    def predict_logits(self, batch):
        self.batch_sizes.append(len(batch))
        return self.runtime.predict_logits(batch)

    def __getattr__(self, name):
        return getattr(self.runtime, name)


@pytest.fixture
def large_batches(monkeypatch):
    wrappers = []
    load = runner.load_runtime

    def wrapped(model_name, config, **options):
        wrappers.append(LargeBatchRuntime(load(model_name, config, **options)))
        return wrappers[-1]

    monkeypatch.setattr(runner, "load_runtime", wrapped)
    return wrappers


@pytest.fixture
def dataset(audio_root):
    dataset = import_field_recordings(
        audio_root, ["1min.wav", "rugr_drum.wav", "great_plains_toad.wav", "metadata.wav"], dataset="Together"
    )
    broken = audio_root / "Together" / "broken.wav"
    broken.write_bytes((audio_root / "Together" / "metadata.wav").read_bytes()[:2000])  # cut short: corrupt
    return dataset


def rows(job) -> dict[str, list]:
    return {
        "windows": sorted(
            ClipPredictionTag.objects.filter(clip_prediction__job=job).values_list(
                "clip_prediction__clip_id", "tag__value", "score"
            )
        ),
        "detections": sorted(
            SoundEventPredictionTag.objects.filter(sound_event_prediction__job=job).values_list(
                "sound_event_prediction__sound_event__recording_id",
                "sound_event_prediction__sound_event__start_time",
                "tag__value",
                "score",
            )
        ),
    }


def started(dataset) -> tuple[InferenceJob, list[int]]:
    job = services.create_job(model_name="birdnet", dataset=dataset, config=CONFIG)
    job = services.start_job(job, sync=False)  # nothing is queued in tests until the transaction commits
    return job, list(
        JobRecording.objects.filter(job=job).order_by("recording__path").values_list("recording_id", flat=True)
    )


def test_a_task_runs_its_recordings_together_with_the_rows_of_one_by_one(dataset, large_batches, settings):
    settings.FEED_WORKERS = 2
    together, recordings = started(dataset)
    states = tasks.run_job_recordings(together.pk, recordings)
    assert states == ["done"] * len(recordings)
    # One model call at a time for the whole task, never more than the runtime's batch (how full each call is
    # depends on how fast the producers decode: tests/inference/test_feeding.py checks the filling).
    assert sum(large_batches[-1].batch_sizes) == 44 and max(large_batches[-1].batch_sizes) <= 40
    together.refresh_from_db()
    assert together.status == InferenceJob.Status.COMPLETED and together.progress == 100.0
    raw, embeddings = ClipOutput.objects.count(), ClipEmbedding.objects.count()
    assert raw == embeddings == 44

    one_by_one = services.create_job(model_name="birdnet", dataset=dataset, config=CONFIG)
    one_by_one = services.start_job(one_by_one, sync=True)
    assert one_by_one.status == InferenceJob.Status.COMPLETED
    mine, theirs = rows(together), rows(one_by_one)
    assert mine["windows"] and [row[:2] for row in mine["windows"]] == [row[:2] for row in theirs["windows"]]
    assert [row[:3] for row in mine["detections"]] == [row[:3] for row in theirs["detections"]]
    for ours, reference in zip(mine["windows"], theirs["windows"], strict=True):
        assert ours[2] == pytest.approx(reference[2], abs=1e-4)


def test_a_corrupt_recording_fails_alone_when_run_together(dataset, large_batches, settings, audio_root):
    from echoroo.importing import import_recordings

    import_recordings([audio_root / "Together"], dataset="Together")
    (audio_root / "Together" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE" + bytes(64))  # broken since
    job, recordings = started(dataset)
    states = dict(zip(recordings, tasks.run_job_recordings(job.pk, recordings), strict=True))
    broken = JobRecording.objects.get(job=job, recording__path__endswith="broken.wav")
    assert states[broken.recording_id] == "failed" and "broken.wav" in broken.error_message
    assert sorted(states.values()) == ["done"] * (len(recordings) - 1) + ["failed"]
