"""What the sound event annotation API reads and writes: a box, its species and free tags, who and when."""

from __future__ import annotations

from rest_framework import serializers

from annotations.models import AnnotationChange, SoundEventAnnotation
from echoroo.api.serializers import by_uuid
from echoroo.models import SPECIES, Recording


class FreeTagSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=100, help_text='e.g. "call_type"')
    value = serializers.CharField(max_length=300, help_text='e.g. "song"')


class SoundEventAnnotationSerializer(serializers.Serializer):
    """A box on a recording (seconds from its start, Hz) with its species and free tags."""

    uuid = serializers.UUIDField(read_only=True)
    recording = by_uuid(
        Recording.objects.all(),
        style={"base_template": "input.html"},
        error_messages={"does_not_exist": "no recording has the uuid {value}"},
        help_text="The recording (its uuid); set when the annotation is created.",
    )
    sound_event = serializers.UUIDField(source="sound_event.uuid", read_only=True)
    start_time = serializers.FloatField(
        source="sound_event.start_time", help_text="Seconds from the recording's start."
    )
    end_time = serializers.FloatField(source="sound_event.end_time", help_text="Seconds; after start_time.")
    low_freq = serializers.FloatField(
        source="sound_event.low_freq", required=False, allow_null=True, default=None, help_text="Hz; with high_freq."
    )
    high_freq = serializers.FloatField(
        source="sound_event.high_freq",
        required=False,
        allow_null=True,
        default=None,
        help_text="Hz; above low_freq and at most half the recording's sample rate. Both empty: the whole band.",
    )
    species = serializers.ListField(
        child=serializers.CharField(max_length=300),
        required=False,
        default=list,
        max_length=50,
        write_only=True,  # read back by to_representation, from the tags
        help_text="Species as model labels, scientific or common names, or eBird codes; stored as the model's label.",
    )
    tags = FreeTagSerializer(
        many=True, required=False, default=list, write_only=True, help_text="Free tags, e.g. call type."
    )
    notes = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    source = serializers.CharField(read_only=True)
    detection = serializers.UUIDField(source="detection.uuid", read_only=True, allow_null=True, default=None)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)
    created_at = serializers.DateTimeField(read_only=True)
    updated_by = serializers.CharField(source="updated_by.username", read_only=True, default=None)
    updated_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, annotation: SoundEventAnnotation) -> dict:
        data = super().to_representation(annotation)
        rows = list(annotation.tags.all())
        data["species"] = [row.tag.value for row in rows if row.tag.key == SPECIES]
        data["tags"] = [{"key": row.tag.key, "value": row.tag.value} for row in rows if row.tag.key != SPECIES]
        return data

    def validate(self, attrs: dict) -> dict:
        if self.instance is not None and "recording" in attrs and attrs["recording"] != self.instance.recording:
            raise serializers.ValidationError({"recording": "an annotation stays on its recording: draw a new one"})
        return attrs

    def changes(self) -> dict:
        """The validated request as the service's keyword arguments (only what was sent, on a PATCH)."""
        data = self.validated_data
        sent = set(self.initial_data) if hasattr(self, "initial_data") else set()
        partial = self.partial
        out = {}
        event = data.get("sound_event", {})
        for name in ("start_time", "end_time", "low_freq", "high_freq"):
            if name in event and (not partial or name in sent):
                out[name] = event[name]
        for name in ("species", "notes"):
            if name in data and (not partial or name in sent):
                out[name] = data[name]
        if "tags" in data and (not partial or "tags" in sent):
            out["tags"] = [(tag["key"], tag["value"]) for tag in data["tags"]]
        return out


class ConfirmDetectionSerializer(serializers.Serializer):
    detection = serializers.UUIDField(
        required=False, allow_null=True, default=None, help_text="A merged detection (sound event prediction)."
    )
    clip_prediction = serializers.UUIDField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Or a window detection (clip prediction), with `species`: the job's merged detection of that "
        "species holding the window is confirmed (the window itself where there is none).",
    )
    species = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The species it is (default for a merged detection: its best-scored one).",
    )

    def validate(self, attrs: dict) -> dict:
        if (attrs["detection"] is None) == (attrs["clip_prediction"] is None):
            raise serializers.ValidationError({"detection": "give a detection or a clip_prediction, not both"})
        if attrs["clip_prediction"] is not None and not attrs["species"]:
            raise serializers.ValidationError({"species": "name the species of the window detection to confirm"})
        return attrs


class AnnotationChangeSerializer(serializers.ModelSerializer):
    by = serializers.CharField(source="by.username", read_only=True, default=None)

    class Meta:
        model = AnnotationChange
        fields = ["annotation_uuid", "action", "by", "at", "before", "after"]
        read_only_fields = fields


class SpeciesNameSerializer(serializers.Serializer):
    label = serializers.CharField()
    scientific_name = serializers.CharField()
    common_name = serializers.CharField()
