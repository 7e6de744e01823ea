"""What every long-running job model shares: its finished state, its duration, who may change it."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


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
