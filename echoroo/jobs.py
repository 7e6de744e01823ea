"""What every long-running job model shares: its finished state, its duration, who may change it."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from echoroo.errors import DomainError


class JobStatus(models.TextChoices):
    """Where a job stands: inference jobs and classifier jobs alike."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobLifecycle:
    """A mixin for job models with `status`, `FINISHED`, `started_at`, `completed_at` and `created_by`."""

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def duration_s(self) -> float | None:
        if not self.started_at:
            return None
        return ((self.completed_at or timezone.now()) - self.started_at).total_seconds()

    def can_be_changed_by(self, user) -> bool:
        return bool(user and user.is_authenticated and (user.is_staff or user.pk == self.created_by_id))


def mark_cancelled(job, *, error: type[DomainError]):
    """Cancel a pending or running job, inside the caller's transaction; a finished job is a conflict (`error`).

    The job's row is locked first, so a worker finishing it meanwhile is seen. The services add
    what their kind of job needs (an inference job's queued recordings)."""
    job = type(job).objects.select_for_update().get(pk=job.pk)
    if job.is_finished:
        raise error(
            {"status": f"the job is already {job.status}; only a pending or running job can be cancelled"},
            conflict=True,
        )
    job.status = JobStatus.CANCELLED
    job.completed_at = timezone.now()
    job.save(update_fields=["status", "completed_at"])
    return job
