"""django-q2 entry points: plain functions with plain arguments; the work is in inference.runner."""

from inference.runner import run_job_recording as _run_job_recording


def run_job_recording(job_id: int, recording_id: int) -> str:
    """Process one recording of a job (queued by inference.services.start_job)."""
    return _run_job_recording(job_id, recording_id)


def run_job_recordings(job_id: int, recording_ids: list[int]) -> list[str]:
    """Process several short recordings of a job in one task, one after the other."""
    return [_run_job_recording(job_id, recording_id) for recording_id in recording_ids]
