"""Jobs run by real django-q2 clusters in other processes: results, a SIGKILL mid-task, two clusters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from django.conf import settings
from django.db import connection

from echoroo.models import Clip, ClipOutput, ClipPredictionTag, RecordingOutput, SoundEvent, SoundEventPrediction
from embeddings.models import ClipEmbedding
from inference import services
from inference.models import InferenceJob, JobRecording
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# A task that dies is delivered again once this many seconds have passed.
RETRY_S = 25


class Cluster:
    """`manage.py qcluster` in its own session, on the test database."""

    def __init__(self, workers: int = 1):
        db = connection.settings_dict
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "echoroo.settings",
            "DATABASE_URL": f"postgres://{db['USER']}@/{db['NAME']}?host={db['HOST']}",
            "AUDIO_ROOT": str(settings.AUDIO_ROOT),
            "ECHOROO_CACHE_DIR": str(settings.MODEL_CACHE_DIR),
            "Q_WORKERS": str(workers),
            "Q_TIMEOUT": str(RETRY_S - 5),
            "Q_RETRY": str(RETRY_S),
        }
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def pids(self) -> set[int]:
        import psutil

        try:
            parent = psutil.Process(self.process.pid)
            return {parent.pid, *(child.pid for child in parent.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()

    def kill(self) -> None:
        """SIGKILL the whole cluster, mid-task: nothing gets to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            # SIGTERM to the cluster's main process only: sent to the whole group it kills
            # django-q2's sentinel outright and the main process then hangs until killed.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def clusters():
    started: list[Cluster] = []

    def start(workers: int = 1) -> Cluster:
        cluster = Cluster(workers)
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def finished(job: InferenceJob) -> InferenceJob | None:
    job.refresh_from_db()
    return job if job.is_finished else None


def rows(job: InferenceJob | None = None) -> dict:
    """Everything stored (a job's own detections, when given), as comparable values (no ids)."""
    tags, detections = ClipPredictionTag.objects.all(), SoundEventPrediction.objects.all()
    if job is not None:
        tags, detections = tags.filter(clip_prediction__job=job), detections.filter(job=job)
    return {
        "clips": sorted(Clip.objects.values_list("recording__path", "start_time", "end_time")),
        "raw": sorted(
            (path, start, tuple(tag_ids), tuple(logits))
            for path, start, tag_ids, logits in ClipOutput.objects.values_list(
                "clip__recording__path", "clip__start_time", "tags", "logits"
            )
        ),
        "tags": sorted(
            (path, start, value, round(score, 6))
            for path, start, value, score in tags.values_list(
                "clip_prediction__clip__recording__path", "clip_prediction__clip__start_time", "tag__value", "score"
            )
        ),
        "detections": detections.count(),
        "embeddings": ClipEmbedding.objects.count(),
    }


def clean_run_rows(job: InferenceJob) -> dict:
    """The rows the same job gives when run in one process from scratch."""
    Clip.objects.all().delete()
    SoundEvent.objects.all().delete()
    RecordingOutput.objects.all().delete()
    clean = services.create_job(
        model_name="birdnet",
        dataset=job.dataset,
        recording=job.recording,
        config=job.config,
    )
    assert services.start_job(clean, sync=True).status == InferenceJob.Status.COMPLETED
    assert not clean.job_recordings.filter(reused=True).exists()
    return rows(clean)


@pytest.fixture
def long_dataset(audio_root):
    """Fifteen minutes of field audio (1min.wav looped, each minute a little quieter) and rugr_drum.wav: long
    enough (about 5 s of BirdNET's work here) that a test can act while it runs."""
    from tests.conftest import import_field_recordings

    signal_, rate = sf.read(SHARED_DATA / "1min.wav", dtype="float32")
    looped = np.concatenate([signal_ * (1 - 0.05 * i) for i in range(15)])
    folder = audio_root / "Long"
    folder.mkdir()
    sf.write(folder / "fifteen_minutes.wav", looped, rate)
    return import_field_recordings(audio_root, ["rugr_drum.wav"], dataset="Long")


def test_a_cluster_runs_a_job_to_completion(field_dataset, clusters, settings):
    settings.INFERENCE_TASK_AUDIO_S = 300  # both recordings in one task, as in production
    job = services.create_job(model_name="birdnet", dataset=field_dataset, config={"confidence_threshold": 0.25})
    job = services.start_job(job)
    clusters(workers=2)
    job = wait_for(lambda: finished(job), 180, "the job to finish")
    assert job.status == InferenceJob.Status.COMPLETED and job.progress == 100
    assert set(job.job_recordings.values_list("status", flat=True)) == {JobRecording.Status.DONE}
    assert ClipEmbedding.objects.count() == 24
    by_cluster = rows(job)
    assert by_cluster == clean_run_rows(job)


def test_a_worker_killed_mid_task_is_redone_once_with_the_same_rows(long_dataset, clusters):
    job = services.create_job(model_name="birdnet", dataset=long_dataset, config={"confidence_threshold": 0.25})
    job = services.start_job(job)
    first = clusters(workers=1)
    long_one = JobRecording.objects.get(job=job, recording__path__endswith="fifteen_minutes.wav")

    def midway():
        long_one.refresh_from_db()
        return long_one.status == JobRecording.Status.RUNNING and 0 < long_one.processed_clips < long_one.total_clips

    wait_for(midway, 120, "the long recording to be half-way")
    first.kill()
    assert not Clip.objects.filter(recording=long_one.recording).exists(), "nothing half-written"

    clusters(workers=1)
    job = wait_for(lambda: finished(job), RETRY_S + 180, "the job to finish after the restart")
    assert job.status == InferenceJob.Status.COMPLETED
    long_one.refresh_from_db()
    assert long_one.status == JobRecording.Status.DONE and long_one.attempts == 2
    assert job.processed_clips == job.total_clips == 300 + 4
    after_kill = rows(job)
    assert after_kill["embeddings"] == 304
    assert after_kill == clean_run_rows(job)


def test_two_clusters_share_one_job_without_duplicates(audio_root, clusters):
    from tests.conftest import import_field_recordings

    signal_, rate = sf.read(SHARED_DATA / "rugr_drum.wav", dtype="float32")
    folder = audio_root / "Many"
    folder.mkdir()
    for i in range(8):
        sf.write(folder / f"drum_{i}.wav", signal_ * (1 - 0.02 * i), rate)
    dataset = import_field_recordings(audio_root, ["1min.wav"], dataset="Many")
    job = services.start_job(services.create_job(model_name="birdnet", dataset=dataset, config={}))
    a, b = clusters(workers=1), clusters(workers=1)
    job = wait_for(lambda: finished(job), 240, "the job to finish")
    assert job.status == InferenceJob.Status.COMPLETED
    recordings = list(job.job_recordings.values_list("attempts", "worker"))
    assert len(recordings) == 9 and {attempts for attempts, _ in recordings} == {1}
    worker_pids = {int(worker.rsplit(":", 1)[1]) for _, worker in recordings}
    assert worker_pids & a.pids() and worker_pids & b.pids(), "both clusters took part"
    assert ClipEmbedding.objects.count() == Clip.objects.count() == 8 * 4 + 20


def test_two_jobs_on_the_same_recordings_at_once_store_each_row_once(field_dataset, clusters, settings):
    """Two jobs of one model over the same recordings, each one task walking them in the same order,
    run side by side by two worker processes: every clip, score, detection and embedding once."""
    settings.INFERENCE_TASK_AUDIO_S = 3600  # each job's recordings in one task, so the two tasks collide
    jobs = [
        services.start_job(services.create_job(model_name="birdnet", dataset=field_dataset, config={}))
        for _ in range(2)
    ]
    clusters(workers=2)
    jobs = [wait_for(lambda job=job: finished(job), 240, "both jobs to finish") for job in jobs]
    assert [job.status for job in jobs] == [InferenceJob.Status.COMPLETED] * 2
    assert jobs[0].model_run_id == jobs[1].model_run_id
    workers = {job.pk: set(job.job_recordings.values_list("worker", flat=True)) for job in jobs}
    assert all(len(found) == 1 for found in workers.values())
    assert workers[jobs[0].pk] != workers[jobs[1].pk], "two worker processes ran the two jobs"
    first, second = rows(jobs[0]), rows(jobs[1])
    assert first["embeddings"] == Clip.objects.count() > 0
    assert first == second, "the same settings, the same detections, each job its own"
    assert first == clean_run_rows(jobs[0])


@pytest.fixture
def queued_dataset(audio_root):
    """Fifteen minutes of field audio first, then three short drum recordings: tasks that wait behind it."""
    from echoroo.importing import import_recordings

    minute, rate = sf.read(SHARED_DATA / "1min.wav", dtype="float32")
    drum, drum_rate = sf.read(SHARED_DATA / "rugr_drum.wav", dtype="float32")
    folder = audio_root / "Queued"
    folder.mkdir()
    sf.write(folder / "a_fifteen_minutes.wav", np.concatenate([minute] * 15), rate)
    for i in range(3):
        sf.write(folder / f"b_drum_{i}.wav", drum * (1 - 0.05 * i), drum_rate)
    return import_recordings([folder], dataset="Queued").dataset


def test_cancel_while_one_task_runs_and_others_wait(queued_dataset, clusters, settings):
    settings.INFERENCE_TASK_AUDIO_S = 0  # one task per recording: the drums wait in the queue
    job = services.start_job(services.create_job(model_name="birdnet", dataset=queued_dataset, config={}))
    long_one = JobRecording.objects.get(job=job, recording__path__endswith="a_fifteen_minutes.wav")
    assert set(job.job_recordings.exclude(pk=long_one.pk).values_list("status", flat=True)) == {"pending"}
    cluster = clusters(workers=1)

    def midway():
        long_one.refresh_from_db()
        return long_one.status == JobRecording.Status.RUNNING and 0 < long_one.processed_clips < long_one.total_clips

    wait_for(midway, 120, "the long recording to be half-way")
    services.cancel_job(job)

    def settled():
        states = set(job.job_recordings.values_list("status", flat=True))
        return states if not states & {JobRecording.Status.PENDING, JobRecording.Status.RUNNING} else None

    assert wait_for(settled, 30, "the running recording to stop") == {JobRecording.Status.CANCELLED}
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.CANCELLED and job.completed_at
    assert not Clip.objects.exists(), "a recording stopped mid-way writes nothing"
    # The queued tasks are delivered, skipped, and leave the queue; the worker lives on and runs the next job.
    from django_q.models import OrmQ

    wait_for(lambda: not OrmQ.objects.exists(), 60, "the queue to drain")
    assert cluster.process.poll() is None
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.CANCELLED
    assert not Clip.objects.exists()
    drum = queued_dataset.recordings.get(path__endswith="b_drum_0.wav")
    after = services.start_job(services.create_job(model_name="birdnet", recording=drum, config={}))
    after = wait_for(lambda: finished(after), 120, "the next job to finish")
    assert after.status == InferenceJob.Status.COMPLETED
    assert set(Clip.objects.values_list("recording_id", flat=True)) == {drum.pk}


def test_cancel_before_any_worker_runs_leaves_nothing_to_do(queued_dataset, clusters, settings):
    settings.INFERENCE_TASK_AUDIO_S = 0
    job = services.start_job(services.create_job(model_name="birdnet", dataset=queued_dataset, config={}))
    services.cancel_job(job)
    assert set(job.job_recordings.values_list("status", flat=True)) == {JobRecording.Status.CANCELLED}
    from django_q.models import OrmQ

    assert OrmQ.objects.count() == 4  # the tasks are still queued
    cluster = clusters(workers=1)
    wait_for(lambda: not OrmQ.objects.exists(), 120, "the queued tasks to be delivered and skipped")
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.CANCELLED
    assert set(job.job_recordings.values_list("status", flat=True)) == {JobRecording.Status.CANCELLED}
    assert set(job.job_recordings.values_list("attempts", flat=True)) == {0}
    assert not Clip.objects.exists() and cluster.process.poll() is None
