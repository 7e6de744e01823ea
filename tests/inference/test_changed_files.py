"""A job refuses a recording whose file changed since its import: that recording fails with why, the job goes on."""

from __future__ import annotations

import pytest

from echoroo.models import Clip, ClipOutput
from inference import runner, services, tasks
from inference.models import InferenceJob, JobRecording
from tests.conftest import import_field_recordings

pytestmark = pytest.mark.django_db

CHANGED = "the file changed since it was imported"


@pytest.fixture
def dataset(audio_root):
    return import_field_recordings(audio_root, ["rugr_drum.wav", "metadata.wav"], dataset="Edited")


def edit_after_import(audio_root, name: str) -> None:
    """Change a few samples in the middle of the file, as a denoiser or an editor saving in place would."""
    path = audio_root / "Edited" / name
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))


def test_a_recording_changed_after_import_fails_with_why_and_the_others_complete(dataset, audio_root):
    edit_after_import(audio_root, "rugr_drum.wav")
    job = services.create_job(model_name="birdnet", dataset=dataset, config={"confidence_threshold": 0.1})

    job = services.start_job(job, sync=True)

    states = {state.recording.path: state for state in JobRecording.objects.filter(job=job).select_related("recording")}
    edited, kept = states["Edited/rugr_drum.wav"], states["Edited/metadata.wav"]
    assert edited.status == JobRecording.Status.FAILED
    assert edited.error_message.startswith(f"{audio_root / 'Edited' / 'rugr_drum.wav'}: {CHANGED} (its sha256 is now")
    assert "import the new one as a new recording" in edited.error_message
    assert kept.status == JobRecording.Status.DONE
    assert not Clip.objects.filter(recording=edited.recording).exists()  # nothing of the edited audio is kept
    assert not ClipOutput.objects.filter(clip__recording=edited.recording).exists()
    assert ClipOutput.objects.filter(clip__recording=kept.recording).count() == 5
    assert job.status == InferenceJob.Status.COMPLETED
    assert job.error_message.startswith("1 of 2 recordings failed; first: Edited/rugr_drum.wav: ")


class LargeBatchRuntime:
    """The real BirdNET runtime, saying that it runs best on large batches, as a GPU's does: the runner then
    analyses a task's recordings together (inference.feeding)."""

    preferred_batch_size = 40

    def __init__(self, runtime):
        self.runtime = runtime

    def __getattr__(self, name):
        return getattr(self.runtime, name)


def test_run_together_a_changed_recording_fails_alone(dataset, audio_root, monkeypatch, settings):
    load = runner.load_runtime
    monkeypatch.setattr(runner, "load_runtime", lambda *args, **options: LargeBatchRuntime(load(*args, **options)))
    settings.FEED_WORKERS = 2
    edit_after_import(audio_root, "metadata.wav")
    job = services.start_job(services.create_job(model_name="birdnet", dataset=dataset, config={}), sync=False)
    recordings = list(
        JobRecording.objects.filter(job=job).order_by("recording__path").values_list("recording_id", flat=True)
    )

    states = tasks.run_job_recordings(job.pk, recordings)

    assert states == ["failed", "done"]  # metadata.wav, rugr_drum.wav
    edited = JobRecording.objects.get(job=job, recording__path="Edited/metadata.wav")
    assert edited.error_message.startswith(f"{audio_root / 'Edited' / 'metadata.wav'}: {CHANGED}")
    assert not Clip.objects.filter(recording=edited.recording).exists()
