"""What the API reads and writes: the core domain as JSON, related rows named by uuid."""

from __future__ import annotations

from rest_framework import serializers

from echoroo import services
from echoroo.models import (
    Clip,
    ClipAnnotation,
    ClipPrediction,
    ClipPredictionTag,
    Dataset,
    ModelRun,
    Recording,
    Site,
    Tag,
)
from validation.models import ThresholdSet
from validation.services import passing


def by_uuid(queryset=None, **kwargs) -> serializers.SlugRelatedField:
    """A foreign key named by its uuid; read-only unless a queryset to look it up in is given."""
    if queryset is None:
        return serializers.SlugRelatedField(slug_field="uuid", read_only=True, **kwargs)
    return serializers.SlugRelatedField(slug_field="uuid", queryset=queryset, **kwargs)


class NoBodySerializer(serializers.Serializer):
    """An action that reads no body (start, retry, apply): the browsable API shows a bare button, not a form."""


class LocatedSerializer(serializers.ModelSerializer):
    # Latitude and longitude in range and given together, as the database requires,
    # so that a bad location is a 400 naming the field rather than an IntegrityError.

    latitude = serializers.FloatField(min_value=-90, max_value=90, allow_null=True, required=False)
    longitude = serializers.FloatField(min_value=-180, max_value=180, allow_null=True, required=False)

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        latitude = attrs.get("latitude", getattr(self.instance, "latitude", None))
        longitude = attrs.get("longitude", getattr(self.instance, "longitude", None))
        if (latitude is None) != (longitude is None):
            raise serializers.ValidationError("latitude and longitude go together: give both or neither")
        return attrs


def username_of_creator() -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="The username of whoever created it."
    )


def job_duration() -> serializers.FloatField:
    """A job's duration_s (echoroo.jobs.JobLifecycle)."""
    return serializers.FloatField(
        read_only=True, allow_null=True, help_text="Seconds since it started, or from start to end once finished."
    )


class DatasetSerializer(LocatedSerializer):
    """A collection of recordings, with how many there are and how long they last."""

    created_by = username_of_creator()
    # Annotated by the viewset's queryset; a dataset just created has no recordings yet.
    recording_count = serializers.IntegerField(read_only=True, default=0)
    recording_hours = serializers.FloatField(read_only=True, default=0.0, help_text="Total duration, hours.")

    class Meta:
        model = Dataset
        fields = [
            "uuid",
            "name",
            "description",
            "latitude",
            "longitude",
            "created_by",
            "created_at",
            "recording_count",
            "recording_hours",
        ]


class SiteSerializer(LocatedSerializer):
    """A place where recorders were deployed; its name is unique within its dataset."""

    dataset = by_uuid(Dataset.objects.all())

    class Meta:
        model = Site
        fields = ["uuid", "dataset", "name", "latitude", "longitude", "created_at"]

    def validate_dataset(self, dataset: Dataset) -> Dataset:
        if self.instance is not None and dataset != self.instance.dataset:
            raise serializers.ValidationError(
                "a site cannot move to another dataset: its recordings stay in this one; create a new site there"
            )
        return dataset


class RecordingSerializer(serializers.ModelSerializer):
    dataset = by_uuid()
    site = by_uuid(allow_null=True)

    class Meta:
        model = Recording
        fields = [
            "uuid",
            "dataset",
            "site",
            "path",
            "sha256",
            "duration",
            "samplerate",
            "channels",
            "recorded_at",
            "latitude",
            "longitude",
            "created_at",
        ]
        read_only_fields = fields


class ClipSerializer(serializers.ModelSerializer):
    recording = by_uuid()

    class Meta:
        model = Clip
        fields = ["uuid", "recording", "start_time", "end_time"]
        read_only_fields = fields


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["uuid", "key", "value"]


class ModelRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelRun
        fields = [
            "uuid",
            "name",
            "version",
            "description",
            "config",
            "embedding_dimension",
            "segment_duration",
            "sample_rate",
            "created_at",
        ]
        # The ranges the database's constraints require, checked here so they are a 400, not a 500.
        extra_kwargs = {"embedding_dimension": {"min_value": 1, "max_value": 16000}}

    def validate_segment_duration(self, seconds: float | None) -> float | None:
        if seconds is not None and seconds <= 0:
            raise serializers.ValidationError("the window length must be positive (seconds)")
        return seconds


class PredictionClipSerializer(serializers.ModelSerializer):
    class Meta:
        model = Clip
        fields = ["uuid", "start_time", "end_time"]
        read_only_fields = fields


class PredictionModelRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelRun
        fields = ["uuid", "name", "version"]
        read_only_fields = fields


class ScoredTagSerializer(serializers.Serializer):
    """One ClipPredictionTag row: the tag and the model's score for it."""

    key = serializers.CharField(source="tag.key", read_only=True)
    value = serializers.CharField(source="tag.value", read_only=True)
    score = serializers.FloatField(read_only=True)


# A prediction as the row its list reads (ClipPredictionViewSet.queryset): plain values, not model
# instances. A page of 50 built from model objects and DRF's nested serializers took 14 ms a request
# in-process, as rows 7 ms: the list is what bulk readers page through.
PREDICTION_ROW = (
    "id",
    "uuid",
    "created_at",
    "clip__uuid",
    "clip__start_time",
    "clip__end_time",
    "clip__recording__uuid",
    "model_run__uuid",
    "model_run__name",
    "model_run__version",
    "job__uuid",
)
_datetime = serializers.DateTimeField()


def datetime_text(value) -> str | None:
    """A datetime as DRF's DateTimeField writes it (ISO 8601 in TIME_ZONE, "Z" for UTC); None stays None."""
    return None if value is None else _datetime.to_representation(value)


def scored_tags_of(prediction_ids: list[int], threshold_set: ThresholdSet | None = None) -> dict[int, list[dict]]:
    """The scored tags of these predictions, best score first, in one query; with a threshold set, those passing it."""
    tags: dict[int, list[dict]] = {pk: [] for pk in prediction_ids}
    rows = ClipPredictionTag.objects.filter(clip_prediction_id__in=prediction_ids)
    if threshold_set is not None:
        rows = passing(rows, threshold_set)
    rows = rows.order_by("clip_prediction_id", "-score", "tag__value").values_list(
        "clip_prediction_id", "tag__key", "tag__value", "score"
    )
    for prediction_id, key, value, score in rows:
        tags[prediction_id].append({"key": key, "value": value, "score": score})
    return tags


class ClipPredictionListSerializer(serializers.ListSerializer):
    def to_representation(self, data) -> list[dict]:
        rows = list(data)
        # A list filtered by a threshold set (?thresholds=) lists each row's tags that pass it.
        tags = scored_tags_of([row["id"] for row in rows], self.context.get("threshold_set"))
        return [self.child.represent(row, tags[row["id"]]) for row in rows]


class ClipPredictionSerializer(serializers.ModelSerializer):
    """A window a job detected something in: its clip, recording, model run and job, every tag scored (best first).

    A classifier run's score of a clip has the same shape, with no job.

    Reads the rows of PREDICTION_ROW; the fields below document the shape (the API schema).
    """

    clip = PredictionClipSerializer(read_only=True)
    recording = serializers.UUIDField(source="clip.recording.uuid", read_only=True)
    model_run = PredictionModelRunSerializer(read_only=True)
    job = serializers.UUIDField(
        source="job.uuid",
        read_only=True,
        allow_null=True,
        help_text="The uuid of the inference job whose detection this is; null for a classifier's score.",
    )
    tags = ScoredTagSerializer(many=True, read_only=True, help_text="Best score first.")

    class Meta:
        model = ClipPrediction
        fields = ["uuid", "clip", "recording", "model_run", "job", "tags", "created_at"]
        read_only_fields = fields
        list_serializer_class = ClipPredictionListSerializer

    def to_representation(self, row: dict) -> dict:
        return self.represent(row, scored_tags_of([row["id"]])[row["id"]])

    def represent(self, row: dict, tags: list[dict]) -> dict:
        return {
            "uuid": str(row["uuid"]),
            "clip": {
                "uuid": str(row["clip__uuid"]),
                "start_time": row["clip__start_time"],
                "end_time": row["clip__end_time"],
            },
            "recording": str(row["clip__recording__uuid"]),
            "model_run": {
                "uuid": str(row["model_run__uuid"]),
                "name": row["model_run__name"],
                "version": row["model_run__version"],
            },
            "job": None if row["job__uuid"] is None else str(row["job__uuid"]),
            "tags": tags,
            "created_at": datetime_text(row["created_at"]),
        }


key_max_length = Tag._meta.get_field("key").max_length
value_max_length = Tag._meta.get_field("value").max_length


class AnnotationTagSerializer(serializers.Serializer):
    """A tag given by key and value; it is created if it does not exist yet."""

    key = serializers.CharField(source="tag.key", max_length=key_max_length)
    value = serializers.CharField(source="tag.value", max_length=value_max_length)


class ClipAnnotationSerializer(serializers.ModelSerializer):
    # A text box in the browsable API: a <select> of every clip would be useless.
    clip = by_uuid(Clip.objects.all(), style={"base_template": "input.html"})
    created_by = username_of_creator()
    tags = AnnotationTagSerializer(many=True, required=False)

    class Meta:
        model = ClipAnnotation
        fields = ["uuid", "clip", "notes", "tags", "created_by", "created_at"]

    def create(self, validated_data: dict) -> ClipAnnotation:
        return services.annotate_clip(
            validated_data["clip"],
            by=validated_data["created_by"],
            notes=validated_data.get("notes", ""),
            tags=[(item["tag"]["key"], item["tag"]["value"]) for item in validated_data.get("tags", [])],
        )
