"""The database restarts in the middle of a job: the job still completes, with a clean run's rows."""

import os
from pathlib import Path

import pytest
from django.db import connection

from inference import services
from inference.models import InferenceJob, JobRecording
from tests.inference.test_workers import clean_run_rows, clusters, finished, long_dataset, rows, wait_for  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def restart_embedded_server() -> None:
    from pgserver import pg_ctl

    pgdata = Path(connection.settings_dict["PGDATA"])
    user = "pgserver" if os.geteuid() == 0 else None
    connection.close()
    pg_ctl(["-w", "restart", "-m", "fast"], pgdata=pgdata, user=user, timeout=60)


@pytest.mark.skipif("DATABASE_URL" in os.environ, reason="restarts the embedded server only")
def test_a_job_survives_a_database_restart_mid_task(long_dataset, clusters):  # noqa: F811
    job = services.start_job(
        services.create_job(model_name="birdnet", dataset=long_dataset, config={"confidence_threshold": 0.25})
    )
    clusters(workers=1)
    long_one = JobRecording.objects.get(job=job, recording__path__endswith="fifteen_minutes.wav")

    def midway():
        long_one.refresh_from_db()
        return long_one.status == JobRecording.Status.RUNNING and 0 < long_one.processed_clips < long_one.total_clips

    wait_for(midway, 120, "the long recording to be half-way")
    restart_embedded_server()
    job = wait_for(lambda: finished(job), 240, "the job to finish after the restart")
    assert job.status == InferenceJob.Status.COMPLETED
    assert set(job.job_recordings.values_list("status", flat=True)) == {JobRecording.Status.DONE}
    assert job.processed_clips == job.total_clips
    long_one.refresh_from_db()
    # The task waited for the database and went on: no second delivery was needed.
    assert long_one.attempts == 1
    after_restart = rows(job)
    assert after_restart["embeddings"] == 304
    assert after_restart == clean_run_rows(job)
