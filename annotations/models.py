"""Sound event annotations: a person's box on a recording (time and frequency), its tags, and their history.

The box is a SoundEvent of its own (never a job's detection event, which belongs to the job's
record): confirming a detection copies its box. `import_key` is what an import recognises a row
by, so that importing the same Raven table twice adds nothing the second time.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from echoroo.models import Recording, SoundEvent, SoundEventPrediction, Tag


class SoundEventAnnotation(models.Model):
    class Source(models.TextChoices):
        DRAWN = "drawn", "drawn on the recording page or sent to the API"
        DETECTION = "detection", "a detection confirmed as an annotation"
        RAVEN = "raven", "imported from a Raven selection table"
        AOEF = "aoef", "imported from a Whombat (AOEF) file"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    sound_event = models.OneToOneField(SoundEvent, on_delete=models.CASCADE, related_name="annotation")
    # The sound event's recording, kept here for filters and for the import key's uniqueness.
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="sound_event_annotations")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.DRAWN)
    import_key = models.CharField(max_length=500, blank=True, help_text="What a re-import recognises this row by.")
    # The detection it was confirmed from, while that job exists.
    detection = models.ForeignKey(
        SoundEventPrediction, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["recording_id", "id"]
        indexes = [models.Index(fields=["recording", "id"], name="se_annotation_recording")]
        constraints = [
            models.UniqueConstraint(
                fields=["recording", "import_key"], condition=~Q(import_key=""), name="se_annotation_unique_import_key"
            )
        ]

    def __str__(self) -> str:
        return f"annotation {self.sound_event}"


class SoundEventAnnotationTag(models.Model):
    annotation = models.ForeignKey(SoundEventAnnotation, on_delete=models.CASCADE, related_name="tags")
    tag = models.ForeignKey(Tag, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["annotation_id", "id"]
        indexes = [models.Index(fields=["tag", "annotation"], name="se_annotation_tag_tag")]
        constraints = [models.UniqueConstraint(fields=["annotation", "tag"], name="se_annotation_tag_unique")]

    def __str__(self) -> str:
        return str(self.tag)


class AnnotationChange(models.Model):
    """One change to a sound event annotation: who, when, and the annotation before and after (kept after a delete)."""

    class Action(models.TextChoices):
        CREATED = "created"
        CHANGED = "changed"
        DELETED = "deleted"

    annotation_uuid = models.UUIDField(db_index=True)
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="+", db_index=False)
    action = models.CharField(max_length=10, choices=Action.choices)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(auto_now_add=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["recording", "at"], name="annotation_change_recording")]

    def __str__(self) -> str:
        return f"{self.action} {self.annotation_uuid}"
