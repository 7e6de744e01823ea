"""Lists of inference jobs as the pages show them: the rows' queryset, and each row's progress in words."""

from __future__ import annotations

from django.db.models import QuerySet

from echoroo.formatting import duration_text
from inference.describe import job_state
from inference.models import InferenceJob
from inference.queries import left_unfinished


def jobs_queryset() -> QuerySet:
    return InferenceJob.objects.select_related("model_run", "dataset", "recording")


def with_progress(jobs) -> list[InferenceJob]:
    """Jobs with what their row shows: whole percent (rounded down: 99.6 % is not done), duration, and the state
    in words ("completed with 1 failed recording")."""
    jobs = list(jobs)
    left = left_unfinished([job.pk for job in jobs])
    for job in jobs:
        job.percent = int(job.progress)
        job.duration = duration_text(job.duration_s)
        job.state = job_state(job, *left.get(job.pk, (0, 0)))
    return jobs
