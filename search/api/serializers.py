"""What the search API reads and writes (seed-design.md §5.3): search requests, results (clips and sound events),
a clip's embeddings."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from echoroo.api.serializers import PredictionClipSerializer, PredictionModelRunSerializer, by_uuid, datetime_text
from echoroo.models import Dataset, Recording, Site
from embeddings.models import ClipEmbedding
from inference.runtimes import DEFAULT_RUNTIME, available_runtimes
from search.queries import MAX_EF_SEARCH
from search.services import (
    DEFAULT_LIMIT,
    DEFAULT_MIN_SIMILARITY,
    DEFAULT_TARGET,
    MAX_LIMIT,
    ONE_QUERY,
    TARGETS,
    SearchResult,
    SoundEventResult,
)
from search.uploads import MAX_DURATION_S, MAX_UPLOAD_BYTES, MIB

# The largest dimension pgvector stores; a longer list is refused before it is read into numbers.
MAX_DIMENSION = 16_000


def _related(queryset, what: str) -> serializers.SlugRelatedField:
    return by_uuid(
        queryset,
        required=False,
        allow_null=True,
        default=None,
        help_text=f"Only clips and sound events of this {what} (its uuid).",
        error_messages={"does_not_exist": f"no {what} has the uuid {{value}}"},
        # A text box in the browsable API: a <select> of every recording would be useless.
        style={"base_template": "input.html"},
    )


class SearchFiltersSerializer(serializers.Serializer):
    """How many results, how similar, and which clips or sound events may be returned: every filter given must hold."""

    limit = serializers.IntegerField(
        default=DEFAULT_LIMIT, min_value=1, max_value=MAX_LIMIT, help_text="The most results to return."
    )
    min_similarity = serializers.FloatField(
        default=DEFAULT_MIN_SIMILARITY,
        min_value=-1,
        max_value=1,
        help_text="Leave out results less similar than this (cosine similarity, -1 to 1).",
    )
    dataset = _related(Dataset.objects.all(), "dataset")
    site = _related(Site.objects.all(), "site")
    recording = _related(Recording.objects.all(), "recording")
    recorded_after = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="Only what was recorded at or after (ISO 8601)."
    )
    recorded_before = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="Only what was recorded at or before (ISO 8601)."
    )
    ef_search = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=MAX_EF_SEARCH,
        help_text="HNSW's candidate list: larger finds more of the true neighbours, slower (default: max(40, limit)).",
    )

    FILTERS = ("limit", "min_similarity", "dataset", "site", "recording", "recorded_after", "recorded_before")

    def validate(self, attrs: dict) -> dict:
        after, before = attrs.get("recorded_after"), attrs.get("recorded_before")
        if after and before and after > before:
            raise serializers.ValidationError({"recorded_before": "must not be before recorded_after"})
        return attrs

    def search_options(self) -> dict[str, Any]:
        """The validated request as search_similar's keyword arguments."""
        data = self.validated_data
        names = (*self.FILTERS, "ef_search", "exclude_own_recording", "target")
        return {name: data[name] for name in names if name in data}


def _exclude_own_recording() -> serializers.BooleanField:
    return serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="By a clip or a sound event: leave out everything of its recording (the default, unless "
        "`recording` is given). The query clip or sound event itself is never returned.",
    )


@extend_schema_field({"type": "string", "example": DEFAULT_RUNTIME})
class ModelNameField(serializers.CharField):
    """A model's name, checked by the service (whose message lists the models with embeddings)."""


def _target() -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=list(TARGETS),
        default=DEFAULT_TARGET,
        help_text="What to find: clips (the model's windows), sound_events (annotated boxes and detections), or "
        "both (merged, most similar first; `limit` applies to the merged list).",
    )


class EmbeddingSearchSerializer(SearchFiltersSerializer):
    """Search by a vector, or by a clip's or a sound event's own embedding, in one model's embedding space."""

    embedding = serializers.ListField(
        child=serializers.FloatField(),
        required=False,
        allow_null=True,
        default=None,
        min_length=1,
        max_length=MAX_DIMENSION,
        help_text="The query vector, as many numbers as the model's embeddings have (BirdNET 1,024, Perch 1,536).",
    )
    clip_uuid = serializers.UUIDField(
        required=False, allow_null=True, default=None, help_text="Search by this clip's embedding instead."
    )
    sound_event_uuid = serializers.UUIDField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Search by this sound event's embedding instead (an annotated box or a detection).",
    )
    target = _target()
    model_name = ModelNameField(
        max_length=100,
        required=False,
        allow_blank=True,
        allow_null=True,
        default=None,
        help_text=f"The model whose embeddings to search, e.g. {DEFAULT_RUNTIME}; by a clip or a sound event it "
        "may be left out (or blank) when the item has embeddings of one model run only, as in `similar/`.",
    )
    model_version = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="latest",
        help_text='The model run\'s version; "latest" (or blank): the newest run of the model that has embeddings.',
    )
    exclude_own_recording = _exclude_own_recording()

    QUERIES = ("embedding", "clip_uuid", "sound_event_uuid")

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        given = [field for field in self.QUERIES if attrs.get(field) is not None]
        if len(given) != 1:
            raise serializers.ValidationError(dict.fromkeys(given or ["embedding"], ONE_QUERY))
        # Blank, as the browsable API's form sends a field left empty, is left out.
        attrs["model_name"] = attrs.get("model_name") or None
        return attrs


class SimilarClipsSerializer(SearchFiltersSerializer):
    """Search by the clip of the URL."""

    model_name = ModelNameField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        help_text="The model whose embedding of the clip to search by; may be left out when the clip has one only.",
    )
    model_version = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="latest",
        help_text="The model run's version; \"latest\" (or blank): the newest with the clip's embedding.",
    )
    exclude_own_recording = _exclude_own_recording()


class AudioSearchSerializer(SearchFiltersSerializer):
    """Search by an audio snippet, embedded on the fly with the model."""

    file = serializers.FileField(
        help_text=f"A short audio snippet (wav, flac, ogg or mp3): at most {MAX_DURATION_S:g} s and "
        f"{MAX_UPLOAD_BYTES // MIB} MiB. One model window or less is embedded as it is (zero-padded); "
        "a longer one is the mean of its windows' unit vectors."
    )
    model_name = serializers.ChoiceField(choices=available_runtimes(), help_text="The model to embed with.")
    model_version = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="latest",
        help_text='Must be the installed version ("latest" or blank: that one).',
    )
    target = _target()


class ResultRecordingSerializer(serializers.ModelSerializer):
    dataset = by_uuid()
    site = by_uuid(allow_null=True)

    class Meta:
        model = Recording
        fields = ["uuid", "path", "dataset", "site", "recorded_at"]
        read_only_fields = fields


class ResultSoundEventSerializer(serializers.Serializer):
    """A sound event found: its box, whose it is, and its species."""

    uuid = serializers.UUIDField(read_only=True)
    start_time = serializers.FloatField(read_only=True, help_text="Seconds from the start of the recording.")
    end_time = serializers.FloatField(read_only=True, help_text="Seconds from the start of the recording.")
    low_freq = serializers.FloatField(read_only=True, allow_null=True, help_text="Hz; null: the whole band.")
    high_freq = serializers.FloatField(read_only=True, allow_null=True, help_text="Hz; null: the whole band.")
    annotation = serializers.UUIDField(
        read_only=True, allow_null=True, help_text="The annotation whose box this is; null for a job's detection."
    )
    species = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="The labels of the annotation's species tags, or of the detection's species.",
    )
    kind = serializers.ChoiceField(choices=["annotation", "detection"], read_only=True)


class SearchResultSerializer(serializers.Serializer):
    """One clip or sound event found (seed-design.md §5.3's EmbeddingSearchResult), with its recording.

    `target` says which: a clip result has `clip` (as it always had), a sound event result
    `sound_event`. The fields document the shape (the API schema); to_representation writes it
    directly, as DRF's nested serializers spent more CPU on 20 results than the search itself.
    """

    # Text, not an enum: validation's precision `target` and the request's (SearchTargetEnum) have that name.
    target = serializers.CharField(read_only=True, help_text='What was found: "clip" or "sound_event".')
    clip = PredictionClipSerializer(read_only=True, required=False, help_text="Clip results only.")
    sound_event = ResultSoundEventSerializer(read_only=True, required=False, help_text="Sound event results only.")
    recording = ResultRecordingSerializer(read_only=True)
    similarity = serializers.FloatField(read_only=True, help_text="1 - cosine distance.")
    model_run = PredictionModelRunSerializer(read_only=True)

    def to_representation(self, result: SearchResult | SoundEventResult) -> dict:
        recording, model_run = result.recording, result.model_run
        body: dict[str, Any] = {"target": result.target}
        if isinstance(result, SoundEventResult):
            event = result.sound_event
            body["sound_event"] = {
                "uuid": str(event.uuid),
                "start_time": event.start_time,
                "end_time": event.end_time,
                "low_freq": event.low_freq,
                "high_freq": event.high_freq,
                "annotation": str(result.annotation_uuid) if result.annotation_uuid is not None else None,
                "species": list(result.species),
                "kind": result.kind,
            }
        else:
            clip = result.clip
            body["clip"] = {"uuid": str(clip.uuid), "start_time": clip.start_time, "end_time": clip.end_time}
        body["recording"] = {
            "uuid": str(recording.uuid),
            "path": recording.path,
            "dataset": str(recording.dataset.uuid),
            "site": str(recording.site.uuid) if recording.site_id is not None else None,
            "recorded_at": datetime_text(recording.recorded_at),
        }
        body["similarity"] = float(result.similarity)
        body["model_run"] = {"uuid": str(model_run.uuid), "name": model_run.name, "version": model_run.version}
        return body


class SearchResultsSerializer(serializers.Serializer):
    results = SearchResultSerializer(many=True, read_only=True, help_text="Most similar first.")


class ClipEmbeddingSerializer(serializers.ModelSerializer):
    model_run = PredictionModelRunSerializer(read_only=True)
    dimension = serializers.SerializerMethodField()
    embedding = serializers.SerializerMethodField()

    class Meta:
        model = ClipEmbedding
        fields = ["model_run", "dimension", "embedding", "created_at"]
        read_only_fields = fields

    def get_dimension(self, embedding: ClipEmbedding) -> int:
        return len(embedding.embedding)

    @extend_schema_field(serializers.ListField(child=serializers.FloatField()))
    def get_embedding(self, embedding: ClipEmbedding) -> list[float]:
        return [float(value) for value in embedding.embedding]


class ClipEmbeddingsSerializer(serializers.Serializer):
    """A clip and its embeddings, one per model run (newest run first)."""

    clip = PredictionClipSerializer(read_only=True)
    recording = serializers.UUIDField(read_only=True, help_text="The clip's recording.")
    embeddings = ClipEmbeddingSerializer(many=True, read_only=True)
