"""django-q2 entry points: plain functions with plain arguments; the work is in inference.runner."""

from inference.runner import run_job_recording as _run_job_recording
from inference.runner import run_job_recordings as _run_job_recordings


def run_job_recording(job_id: int, recording_id: int) -> str:
    """Process one recording of a job (queued by inference.services.start_job)."""
    return _run_job_recording(job_id, recording_id)


def run_job_recordings(job_id: int, recording_ids: list[int]) -> list[str]:
    """Process several short recordings of a job in one task (together, on a GPU)."""
    return _run_job_recordings(job_id, recording_ids)
