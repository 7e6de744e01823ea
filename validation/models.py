"""Verdicts (a reviewer's judgement of one detection) and threshold sets (a score threshold per species)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from echoroo.models import Clip, Tag


class Verdict(models.Model):
    """A reviewer's judgement of a clip for one species: an annotation of the clip, one per reviewer, changeable."""

    class Value(models.TextChoices):
        CORRECT = "correct"
        WRONG = "wrong"
        UNSURE = "unsure"
        OTHER = "other"  # another species: `other_species` says which

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="verdicts", db_index=False)
    species = models.ForeignKey(Tag, on_delete=models.PROTECT, related_name="+", help_text="The label judged.")
    verdict = models.CharField(max_length=10, choices=Value.choices)
    other_species = models.ForeignKey(
        Tag, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="What it is instead."
    )
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="verdicts")
    # Given in bulk from a similar clip's verdict ("verify by similarity"), and which clip that was.
    bulk = models.BooleanField(default=False)
    like_clip = models.ForeignKey(Clip, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["species", "verdict"], name="verdict_species_value")]
        constraints = [
            models.UniqueConstraint(fields=["clip", "species", "reviewer"], name="verdict_one_per_reviewer"),
            models.CheckConstraint(
                condition=Q(verdict="other", other_species__isnull=False) | (~Q(verdict="other")),
                name="verdict_other_names_the_species",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.species.value} at {self.clip}: {self.verdict}"


class ThresholdSet(models.Model):
    """A named score threshold per species, with a default for the species it does not name; shared by everyone."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200, unique=True)
    default_threshold = models.FloatField()
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(default_threshold__gte=0, default_threshold__lte=1), name="threshold_set_default_0_1"
            ),
            models.CheckConstraint(condition=~Q(name=""), name="threshold_set_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name

    def can_be_changed_by(self, user) -> bool:
        return bool(user and user.is_authenticated and (user.is_staff or user.pk == self.created_by_id))


class SpeciesThreshold(models.Model):
    threshold_set = models.ForeignKey(ThresholdSet, on_delete=models.CASCADE, related_name="species")
    species = models.ForeignKey(Tag, on_delete=models.PROTECT, related_name="+")
    threshold = models.FloatField()

    class Meta:
        ordering = ["threshold_set_id", "species__value"]
        constraints = [
            models.UniqueConstraint(fields=["threshold_set", "species"], name="species_threshold_unique"),
            models.CheckConstraint(condition=Q(threshold__gte=0, threshold__lte=1), name="species_threshold_0_1"),
        ]
