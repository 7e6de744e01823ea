"""Classifier (a linear model on one model run's embeddings) and ClassifierJob (applying it to every embedding).

The labels a classifier learns from are not a model of their own: they are ClipAnnotations,
tagged as `classifiers.labels` describes.
"""

from __future__ import annotations

import uuid

import numpy as np
from django.conf import settings
from django.db import models
from django.db.models import F, Q

from echoroo.jobs import JobLifecycle, JobStatus
from echoroo.models import ModelRun

# A classifier's run is named after its label, and ModelRun.name holds 100 characters.
MAX_LABEL_LENGTH = 100


class Classifier(models.Model):
    """Logistic regression on the embeddings of `source`; its scores are written under `model_run`."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    label = models.CharField(max_length=MAX_LABEL_LENGTH, help_text="The label set it was trained on.")
    version = models.PositiveIntegerField(help_text="1 for the label's first classifier, then 2, 3…")
    source = models.ForeignKey(
        ModelRun, on_delete=models.CASCADE, related_name="classifiers", help_text="The run whose embeddings it scores."
    )
    # kind "classifier", name = label, version = "v<version>", source = source.
    model_run = models.OneToOneField(
        ModelRun, on_delete=models.CASCADE, related_name="classifier", help_text="The run its predictions go under."
    )
    # The weights, on raw embeddings (the training's standardisation is folded in): score = sigmoid(x·coef + intercept).
    coef = models.BinaryField(help_text="float32, little-endian, one per embedding dimension.")
    intercept = models.FloatField()
    metrics = models.JSONField(default=dict, help_text="Held-out precision, recall, ROC AUC and example counts.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["label", "version"], name="classifier_unique_label_version"),
            models.CheckConstraint(condition=~Q(label=""), name="classifier_label_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.label} v{self.version}"

    @property
    def weights(self) -> np.ndarray:
        return np.frombuffer(bytes(self.coef), dtype="<f4")

    @property
    def dimension(self) -> int:
        return len(bytes(self.coef)) // 4


class ClassifierJob(JobLifecycle, models.Model):
    """Scoring every embedding of a classifier's source run, in batches; resumable from `last_clip_id`."""

    Status = JobStatus

    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
    ACTIVE = (Status.PENDING, Status.RUNNING)

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    classifier = models.ForeignKey(Classifier, on_delete=models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    progress = models.FloatField(default=0, help_text="Percent of the embeddings scored.")
    total_clips = models.PositiveBigIntegerField(default=0, help_text="Embeddings of the source run, counted at start.")
    processed_clips = models.PositiveBigIntegerField(default=0)
    # Embeddings are scored in clip id order: every clip up to this one is done.
    last_clip_id = models.BigIntegerField(default=0)
    error_message = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress__gte=0, progress__lte=100), name="classifier_job_progress_percent"
            ),
            models.CheckConstraint(
                condition=Q(processed_clips__lte=F("total_clips")), name="classifier_job_processed_within_total"
            ),
            # Two jobs writing the same predictions at once would only race each other.
            models.UniqueConstraint(
                fields=["classifier"],
                condition=Q(status__in=["pending", "running"]),
                name="classifier_job_one_active_per_classifier",
            ),
        ]

    def __str__(self) -> str:
        return f"apply {self.classifier}"
