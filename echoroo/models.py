"""The core domain: datasets, sites, recordings, clips, sound events, tags, model runs,
predictions and human annotations (after seed-design.md §2.1)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q

from echoroo.formatting import band_text, duration_text, span_text

SPECIES = "species"


def latitude_ok(prefix: str = "") -> Q:
    field = f"{prefix}latitude"
    return Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__gte": -90, f"{field}__lte": 90})


def longitude_ok(prefix: str = "") -> Q:
    field = f"{prefix}longitude"
    return Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__gte": -180, f"{field}__lte": 180})


def location_constraints(name: str) -> list[models.BaseConstraint]:
    """Latitude/longitude in range, and given together or not at all."""
    return [
        models.CheckConstraint(condition=latitude_ok(), name=f"{name}_latitude_range"),
        models.CheckConstraint(condition=longitude_ok(), name=f"{name}_longitude_range"),
        models.CheckConstraint(
            condition=Q(latitude__isnull=True, longitude__isnull=True)
            | Q(latitude__isnull=False, longitude__isnull=False),
            name=f"{name}_latitude_with_longitude",
        ),
    ]


def score_constraint(name: str) -> models.CheckConstraint:
    return models.CheckConstraint(condition=Q(score__gte=0) & Q(score__lte=1), name=f"{name}_score_0_1")


class Dataset(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    # The default location for the species filter, when neither a recording nor its site has one.
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = location_constraints("dataset")

    def __str__(self) -> str:
        return self.name


class Site(models.Model):
    """A place where recorders were deployed; names are unique within a dataset."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="sites")
    name = models.CharField(max_length=200)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="site_unique_name_in_dataset"),
            *location_constraints("site"),
        ]

    def __str__(self) -> str:
        return self.name


class Recording(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="recordings")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="recordings")
    path = models.CharField(max_length=1000, help_text="Relative to AUDIO_ROOT.")
    sha256 = models.CharField(max_length=64, db_index=True)
    duration = models.FloatField(help_text="Seconds.")
    samplerate = models.PositiveIntegerField(help_text="Hz.")
    channels = models.PositiveSmallIntegerField()
    recorded_at = models.DateTimeField(null=True, blank=True, db_index=True)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset_id", "path"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "path"], name="recording_unique_path_in_dataset"),
            models.CheckConstraint(condition=Q(duration__gt=0), name="recording_duration_positive"),
            models.CheckConstraint(condition=Q(samplerate__gt=0), name="recording_samplerate_positive"),
            models.CheckConstraint(condition=Q(channels__gt=0), name="recording_channels_positive"),
            models.CheckConstraint(condition=~Q(path__startswith="/"), name="recording_path_relative"),
            models.CheckConstraint(condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="recording_sha256_hex"),
            *location_constraints("recording"),
        ]

    def __str__(self) -> str:
        return self.path

    @property
    def absolute_path(self):
        return settings.AUDIO_ROOT / self.path


class Clip(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="clips")
    start_time = models.FloatField(help_text="Seconds from the start of the recording.")
    end_time = models.FloatField(help_text="Seconds from the start of the recording.")

    class Meta:
        ordering = ["recording_id", "start_time", "end_time"]
        constraints = [
            models.CheckConstraint(condition=Q(start_time__lt=F("end_time")), name="clip_start_before_end"),
            models.CheckConstraint(condition=Q(start_time__gte=0), name="clip_start_not_negative"),
            models.UniqueConstraint(fields=["recording", "start_time", "end_time"], name="clip_unique_span"),
        ]

    def __str__(self) -> str:
        return f"{self.recording.path} {span_text(self.start_time, self.end_time)}"


class SoundEvent(models.Model):
    """A time-frequency box on a recording."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="sound_events")
    start_time = models.FloatField()
    end_time = models.FloatField()
    low_freq = models.FloatField(null=True, blank=True, help_text="Hz.")
    high_freq = models.FloatField(null=True, blank=True, help_text="Hz.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["recording_id", "start_time"]
        indexes = [models.Index(fields=["recording", "start_time"], name="sound_event_rec_start")]
        constraints = [
            models.CheckConstraint(condition=Q(start_time__lt=F("end_time")), name="sound_event_start_before_end"),
            models.CheckConstraint(condition=Q(start_time__gte=0), name="sound_event_start_not_negative"),
            models.CheckConstraint(
                condition=Q(low_freq__isnull=True) | Q(low_freq__gte=0), name="sound_event_low_freq_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(low_freq__isnull=True) | Q(high_freq__isnull=True) | Q(low_freq__lt=F("high_freq")),
                name="sound_event_low_below_high_freq",
            ),
        ]

    def __str__(self) -> str:
        band = (
            "" if self.low_freq is None and self.high_freq is None else f", {band_text(self.low_freq, self.high_freq)}"
        )
        return f"{self.recording.path} {span_text(self.start_time, self.end_time)}{band}"


class Tag(models.Model):
    """A key/value label; species are key "species" with the model's label as value."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    key = models.CharField(max_length=100)
    value = models.CharField(max_length=300)

    class Meta:
        ordering = ["key", "value"]
        constraints = [
            models.UniqueConstraint(fields=["key", "value"], name="tag_unique_key_value"),
            models.CheckConstraint(condition=~Q(key=""), name="tag_key_not_empty"),
            models.CheckConstraint(condition=~Q(value=""), name="tag_value_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.key}:{self.value}"


class ModelRun(models.Model):
    """One model at one version: one embedding space, shared by every job that runs it."""

    class Kind(models.TextChoices):
        MODEL = "model"  # a model run over audio (BirdNET, Perch)
        CLASSIFIER = "classifier"  # a classifier trained on another run's embeddings

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    version = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.MODEL)
    # For a classifier: the model run whose embeddings it scores.
    source = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="classifier_runs")
    description = models.TextField(blank=True)
    config = models.JSONField(default=dict, blank=True)
    embedding_dimension = models.PositiveIntegerField(null=True, blank=True)
    segment_duration = models.FloatField(null=True, blank=True, help_text="Window length, seconds.")
    sample_rate = models.PositiveIntegerField(null=True, blank=True, help_text="Hz.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="model_run_unique_name_version"),
            models.CheckConstraint(
                condition=Q(embedding_dimension__isnull=True)
                | Q(embedding_dimension__gt=0, embedding_dimension__lte=16000),
                name="model_run_embedding_dimension_range",
            ),
            models.CheckConstraint(
                condition=Q(segment_duration__isnull=True) | Q(segment_duration__gt=0),
                name="model_run_segment_duration_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


class RealField(models.FloatField):
    """A 4-byte float (PostgreSQL `real`): a model's float32 output, stored exactly in half the bytes."""

    def db_type(self, connection) -> str:
        return "real"


class RecordingOutput(models.Model):
    """A model run's raw output on a whole recording at one window layout is stored.

    Every window's labels with a logit of at least `floor_logit` are in ClipOutput (a row a window,
    empty where none reaches it; migration 0006 rebuilt rows only for windows with some). A job
    whose threshold and sensitivity need no logit below the floor reads its detections from there
    instead of running the model again.
    """

    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="model_outputs", db_index=False)
    model_run = models.ForeignKey(ModelRun, on_delete=models.CASCADE, related_name="recording_outputs")
    overlap = models.FloatField(help_text="Seconds shared by consecutive windows.")
    windows = models.PositiveIntegerField()
    # Windows with a ClipOutput row when stored (all, except after migration 0006): what a read must
    # find, else rows went missing since (deleted by hand) and the model runs again.
    outputs = models.PositiveIntegerField(default=0)
    floor_logit = models.FloatField(help_text="Every label with a logit at least this is stored.")
    embeddings = models.BooleanField(default=False, help_text="Every window's embedding is stored too.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["recording_id", "model_run_id", "overlap"]
        constraints = [
            models.UniqueConstraint(
                fields=["recording", "model_run", "overlap"], name="recording_output_unique_layout"
            ),
            models.CheckConstraint(condition=Q(overlap__gte=0), name="recording_output_overlap_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.model_run} on {self.recording.path} (overlap {duration_text(self.overlap)})"


class ClipOutput(models.Model):
    """A model run's raw output on one window: its species tags and their logits (scores at any sensitivity).

    The same model on the same audio always gives the same output, so a row is written once and
    never replaced, except by a more complete one (a lower floor: a superset of the same values).
    """

    clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="outputs", db_index=False)
    model_run = models.ForeignKey(ModelRun, on_delete=models.CASCADE, related_name="clip_outputs", db_index=False)
    tags = ArrayField(models.IntegerField(), help_text="Species tag ids, in the order of the logits.")
    logits = ArrayField(RealField(), help_text="The model's logit for each tag, as the model gave it (float32).")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["clip", "model_run"], name="clip_output_unique_run"),
            models.CheckConstraint(condition=Q(tags__len=F("logits__len")), name="clip_output_one_logit_per_tag"),
        ]

    def __str__(self) -> str:
        return f"{self.model_run} output on {self.clip}"


class ClipPrediction(models.Model):
    """A window a job detected something in (its tags carry the scores); or a classifier run's score of a clip.

    A job's rows are its own record: `job` is set and no other job changes them. A classifier run's
    rows (job empty, model run of kind "classifier") are scores, not detections.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # No single-column indexes on these foreign keys: the unique and the (model_run, clip) and
    # (job, id) indexes serve them, and each extra index slows every bulk load.
    clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="predictions", db_index=False)
    model_run = models.ForeignKey(ModelRun, on_delete=models.CASCADE, related_name="clip_predictions", db_index=False)
    job = models.ForeignKey(
        "inference.InferenceJob",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="clip_predictions",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["clip_id"]
        indexes = [
            models.Index(fields=["model_run", "clip"], name="clip_prediction_run_clip"),
            # A job's detections in pages (by id), and the detections of every job in pages, past
            # long runs of a classifier's scores.
            models.Index(fields=["job", "id"], name="clip_prediction_job_id"),
            models.Index(fields=["id"], condition=Q(job__isnull=False), name="clip_prediction_detection_id"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["clip", "model_run"], condition=Q(job__isnull=True), name="clip_prediction_unique_run"
            ),
            # Not partial (rows without a job never collide: NULLs are distinct), so that it also serves
            # the cascade of a clip's deletion: without an index led by clip_id, deleting a dataset
            # reads the whole table once per clip.
            models.UniqueConstraint(fields=["clip", "job"], name="clip_prediction_unique_in_job"),
        ]

    def __str__(self) -> str:
        return f"{self.model_run} on {self.clip}"


class ClipPredictionTag(models.Model):
    # Association rows carry no uuid: they are only reached through their prediction,
    # and a uuid index on hundreds of millions of rows would slow every bulk load.
    clip_prediction = models.ForeignKey(ClipPrediction, on_delete=models.CASCADE, related_name="tags", db_index=False)
    tag = models.ForeignKey(Tag, on_delete=models.PROTECT, related_name="+", db_index=False)
    score = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["tag", "score"], name="clip_prediction_tag_score")]
        constraints = [
            models.UniqueConstraint(fields=["clip_prediction", "tag"], name="clip_prediction_tag_unique"),
            score_constraint("clip_prediction_tag"),
        ]

    def __str__(self) -> str:
        return f"{self.tag.value} {self.score:.3f}"


class SoundEventPrediction(models.Model):
    """A job's detection: a sound event its model run found (overlapping windows merged), the job's own record."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    sound_event = models.ForeignKey(SoundEvent, on_delete=models.CASCADE, related_name="predictions", db_index=False)
    model_run = models.ForeignKey(
        ModelRun, on_delete=models.CASCADE, related_name="sound_event_predictions", db_index=False
    )
    job = models.ForeignKey(
        "inference.InferenceJob",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="sound_event_predictions",
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["model_run", "sound_event"], name="se_prediction_run_event"),
            models.Index(fields=["job", "sound_event"], name="se_prediction_job_event"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["sound_event", "model_run"], name="sound_event_prediction_unique_run")
        ]

    def __str__(self) -> str:
        return f"{self.model_run} on {self.sound_event}"


class SoundEventPredictionTag(models.Model):
    sound_event_prediction = models.ForeignKey(
        SoundEventPrediction, on_delete=models.CASCADE, related_name="tags", db_index=False
    )
    tag = models.ForeignKey(Tag, on_delete=models.PROTECT, related_name="+", db_index=False)
    score = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["tag", "score"], name="se_prediction_tag_score")]
        constraints = [
            models.UniqueConstraint(fields=["sound_event_prediction", "tag"], name="se_prediction_tag_unique"),
            score_constraint("se_prediction_tag"),
        ]

    def __str__(self) -> str:
        return f"{self.tag.value} {self.score:.3f}"


class ClipAnnotation(models.Model):
    """A person's annotation of a clip."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="annotations")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["clip"], name="clip_annotation_clip")]

    def __str__(self) -> str:
        return f"annotation of {self.clip}"


class ClipAnnotationTag(models.Model):
    clip_annotation = models.ForeignKey(ClipAnnotation, on_delete=models.CASCADE, related_name="tags")
    tag = models.ForeignKey(Tag, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["clip_annotation", "tag"], name="clip_annotation_tag_unique")]

    def __str__(self) -> str:
        return str(self.tag)
