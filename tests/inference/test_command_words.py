"""What `infer` and `export_detections` print: counts in the right number, lengths of time in words, and none of
django-q2's "Enqueued [echoroo] 6" lines."""

import logging
import re
from io import StringIO

import pytest
from django.core.management import call_command

from inference.models import InferenceJob

pytestmark = pytest.mark.django_db


def run(command: str, *args) -> str:
    stdout, stderr = StringIO(), StringIO()
    call_command(command, *map(str, args), stdout=stdout, stderr=stderr)
    return stdout.getvalue()


def test_queueing_one_recording_says_1_recording_and_logs_no_broker_ids(
    field_recording, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.INFO)
    with django_capture_on_commit_callbacks(execute=True):
        output = run("infer", "--model", "birdnet", "--recording", field_recording.uuid)
    assert "Queued 1 recording (20 windows) for the workers." in output
    assert "1 recordings" not in output
    logged = [record.getMessage() for record in caplog.records]
    assert not [line for line in logged if line.startswith("Enqueued")], logged
    # Only those lines are left out: django-q2's other news still reaches the log.
    logging.getLogger("django-q").info("Q Cluster echoroo starting.")
    assert "Q Cluster echoroo starting." in [record.getMessage() for record in caplog.records]


def test_a_finished_job_is_summed_up_in_words(field_recording, tmp_path):
    output = run(
        "infer", "--model", "birdnet", "--recording", field_recording.uuid, "--sync", "--confidence-threshold", 0.9
    )
    job = InferenceJob.objects.get()
    assert re.search(rf"Job {job.uuid} completed in \d+(\.\d+)? s: 1 recording done, 0 failed, 0 cancelled\.", output)
    exported = run("export_detections", "--job", job.uuid, "--format", "csv", "--output", tmp_path / "out.csv")
    assert re.search(r"Wrote \d+ window predictions? of birdnet 2\.4 \(job [-0-9a-f]+\) on 1 recording to ", exported)
    assert "1 recordings" not in exported
