"""ClipEmbedding and SoundEventEmbedding: one vector per (item, model run), stored as halfvec.

The column has no fixed dimension (BirdNET is 1,024-d, Perch 1,536-d); each ModelRun gets its
own partial HNSW index on `(embedding::halfvec(D))`, see `embeddings.indexes`.
"""

from django.db import models
from django.db.models.functions import Now
from pgvector.django import HalfVectorField

from echoroo.models import Clip, ModelRun, SoundEvent


class ClipEmbedding(models.Model):
    # Indexed by the unique (clip, model_run) index; a second one would only slow COPY loads.
    clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="embeddings", db_index=False)
    model_run = models.ForeignKey(ModelRun, on_delete=models.CASCADE, related_name="clip_embeddings")
    embedding = HalfVectorField()
    # A database default, so that rows loaded with COPY get it too.
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["clip", "model_run"], name="clip_embedding_unique_run")]

    def __str__(self) -> str:
        return f"{self.model_run_id}@{self.clip_id}"


class SoundEventEmbedding(models.Model):
    sound_event = models.ForeignKey(SoundEvent, on_delete=models.CASCADE, related_name="embeddings")
    model_run = models.ForeignKey(ModelRun, on_delete=models.CASCADE, related_name="sound_event_embeddings")
    embedding = HalfVectorField()
    # A database default, so that rows loaded with COPY get it too.
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sound_event", "model_run"], name="sound_event_embedding_unique_run")
        ]

    def __str__(self) -> str:
        return f"{self.model_run_id}@{self.sound_event_id}"
