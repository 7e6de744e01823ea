"""InferenceJob (seed-design.md §4.1) and the per-recording state that lets a job resume."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import connection, models
from django.db.models import F, Q
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from echoroo.jobs import JobLifecycle, JobStatus
from echoroo.models import Dataset, ModelRun, Recording
from inference.config import InferenceConfig


class InferenceJob(JobLifecycle, models.Model):
    Status = JobStatus

    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    model_run = models.ForeignKey(ModelRun, on_delete=models.PROTECT, related_name="jobs")
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    recording = models.ForeignKey(Recording, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    progress = models.FloatField(default=0, help_text="Percent of the windows processed.")
    total_clips = models.PositiveIntegerField(default=0)
    processed_clips = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True)
    activity = models.CharField(
        max_length=100,
        blank=True,
        help_text="What a worker is doing for the job that progress does not count, e.g. preparing the model.",
    )
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(dataset__isnull=False, recording__isnull=True)
                | Q(dataset__isnull=True, recording__isnull=False),
                name="job_targets_dataset_or_recording",
            ),
            models.CheckConstraint(condition=Q(progress__gte=0, progress__lte=100), name="job_progress_percent"),
            models.CheckConstraint(
                condition=Q(processed_clips__lte=F("total_clips")), name="job_processed_within_total"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_run} on {self.target}"

    @property
    def target(self) -> Dataset | Recording:
        return self.dataset if self.dataset_id else self.recording

    @property
    def settings(self) -> InferenceConfig:
        """The job's config as the one typed object everything reads (validated when the job was created)."""
        return InferenceConfig.from_json(self.config)


class JobRecording(models.Model):
    """One recording of a job: the unit of work a task does, and of resuming."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    job = models.ForeignKey(InferenceJob, on_delete=models.CASCADE, related_name="job_recordings")
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    total_clips = models.PositiveIntegerField(default=0)
    processed_clips = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    reused = models.BooleanField(
        default=False, help_text="Its detections came from the model's stored output: no audio decoded, no model call."
    )
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the last worker that took it.")
    # Where the time went, for tuning: decoding + model, and writing the rows.
    inference_s = models.FloatField(null=True, blank=True)
    storage_s = models.FloatField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job_id", "id"]
        indexes = [models.Index(fields=["job", "status"], name="job_recording_status")]
        constraints = [
            models.UniqueConstraint(fields=["job", "recording"], name="job_recording_unique"),
            models.CheckConstraint(
                condition=Q(processed_clips__lte=F("total_clips")), name="job_recording_processed_within_total"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.recording.path}: {self.status}"


@receiver(pre_delete, sender=InferenceJob)
def delete_the_jobs_sound_events(sender, instance: InferenceJob, **kwargs) -> None:
    """Deleting a job through the ORM takes its sound events too, as echoroo.deletion does."""
    from inference.deletion_rules import delete_sound_events_of_jobs

    with connection.cursor() as cursor:
        delete_sound_events_of_jobs(cursor, [instance.pk])
