"""What the classifiers API reads and writes: label sets and their examples, classifiers, apply jobs."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from classifiers import services
from classifiers.errors import ClassifierError
from classifiers.labels import CLEAR, Polarity, parse_tag_value
from classifiers.models import MAX_LABEL_LENGTH, Classifier, ClassifierJob
from echoroo.api.serializers import PredictionModelRunSerializer, by_uuid, job_duration, username_of_creator
from echoroo.models import ClipAnnotationTag, ModelRun

LABEL_HELP = "The label set's name, e.g. 'Wood frog' (spaces around it are dropped)."


class LabelClipsSerializer(serializers.Serializer):
    """Mark clips positive or negative for a label set, or clear their mark."""

    label = serializers.CharField(max_length=MAX_LABEL_LENGTH, help_text=LABEL_HELP)
    polarity = serializers.ChoiceField(
        choices=[*Polarity.values, CLEAR],
        help_text="positive or negative; clear removes the clips' labels in the set. "
        "A clip labelled again in a set keeps only its latest label.",
    )
    clips = serializers.ListField(
        child=serializers.UUIDField(),
        min_length=1,
        max_length=services.MAX_CLIPS_PER_LABELLING,
        help_text="Uuids of the clips, e.g. from a similarity search's results.",
    )


class LabelSetSerializer(serializers.Serializer):
    """A label set and how many clips are marked for it."""

    label = serializers.CharField(read_only=True)
    positives = serializers.IntegerField(read_only=True)
    negatives = serializers.IntegerField(read_only=True)
    last_labelled_at = serializers.DateTimeField(read_only=True, allow_null=True)


class LabelExampleSerializer(serializers.ModelSerializer):
    """One labelled clip of a label set: the clip, its mark, who marked it and when."""

    clip = serializers.UUIDField(source="clip_annotation.clip.uuid", read_only=True)
    recording = serializers.UUIDField(source="clip_annotation.clip.recording.uuid", read_only=True)
    recording_path = serializers.CharField(source="clip_annotation.clip.recording.path", read_only=True)
    start_time = serializers.FloatField(source="clip_annotation.clip.start_time", read_only=True)
    end_time = serializers.FloatField(source="clip_annotation.clip.end_time", read_only=True)
    polarity = serializers.SerializerMethodField()
    labelled_by = serializers.SlugRelatedField(source="created_by", slug_field="username", read_only=True)
    labelled_at = serializers.DateTimeField(source="created_at", read_only=True)
    annotation = serializers.UUIDField(source="clip_annotation.uuid", read_only=True)

    class Meta:
        model = ClipAnnotationTag
        fields = [
            "clip",
            "recording",
            "recording_path",
            "start_time",
            "end_time",
            "polarity",
            "labelled_by",
            "labelled_at",
            "annotation",
        ]

    def get_polarity(self, example: ClipAnnotationTag) -> str:
        return parse_tag_value(example.tag.value)[1]


class ClassifierJobSerializer(serializers.ModelSerializer):
    """A job scoring every embedding of a classifier's source run, and how far it is."""

    classifier = by_uuid()
    label = serializers.CharField(source="classifier.label", read_only=True)
    created_by = username_of_creator()
    duration_s = job_duration()

    class Meta:
        model = ClassifierJob
        fields = [
            "uuid",
            "classifier",
            "label",
            "status",
            "progress",
            "total_clips",
            "processed_clips",
            "error_message",
            "created_by",
            "created_at",
            "started_at",
            "completed_at",
            "duration_s",
        ]
        read_only_fields = fields


class ClassifierSerializer(serializers.ModelSerializer):
    """A classifier: its label set, the run whose embeddings it scores, the run its scores go under, its metrics.

    Creating one trains it at once (a second or so) on the label set's labelled clips.
    """

    label = serializers.CharField(max_length=MAX_LABEL_LENGTH, help_text=LABEL_HELP)
    source_uuid = by_uuid(
        ModelRun.objects.filter(kind=ModelRun.Kind.MODEL),
        source="source",
        write_only=True,
        required=False,
        allow_null=True,
        help_text="The model run whose embeddings to train on; by default the one with the embeddings of "
        "most labelled clips.",
        error_messages={"does_not_exist": "no model run (of kind model) has the uuid {value}"},
    )
    source = PredictionModelRunSerializer(read_only=True, help_text="The model run whose embeddings it scores.")
    model_run = PredictionModelRunSerializer(
        read_only=True,
        help_text='The run its predictions are stored under (kind "classifier"): filter clip predictions '
        "by it, or by species = the label.",
    )
    created_by = username_of_creator()

    class Meta:
        model = Classifier
        fields = [
            "uuid",
            "label",
            "version",
            "source_uuid",
            "source",
            "model_run",
            "metrics",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["version", "metrics", "created_at"]

    def create(self, validated_data: dict) -> Classifier:
        try:
            return services.train_classifier(
                label=validated_data["label"], source=validated_data.get("source"), by=validated_data["created_by"]
            )
        except ClassifierError as error:
            raise error.renamed({"model_run": "source_uuid"}) from error


class ClassifierDetailSerializer(ClassifierSerializer):
    """A classifier with its weights' size and its latest apply job."""

    dimension = serializers.IntegerField(read_only=True, help_text="The embedding dimension it scores.")
    latest_job = serializers.SerializerMethodField()

    class Meta(ClassifierSerializer.Meta):
        fields = [*ClassifierSerializer.Meta.fields, "dimension", "latest_job"]

    @extend_schema_field(ClassifierJobSerializer(allow_null=True))
    def get_latest_job(self, classifier: Classifier) -> dict | None:
        job = classifier.jobs.order_by("-created_at", "-id").first()
        return ClassifierJobSerializer(job).data if job else None


class UncertainClipSerializer(serializers.Serializer):
    """A clip the classifier is unsure about, with its score."""

    clip = serializers.UUIDField(source="clip.uuid")
    recording = serializers.UUIDField(source="clip.recording.uuid")
    recording_path = serializers.CharField(source="clip.recording.path")
    start_time = serializers.FloatField(source="clip.start_time")
    end_time = serializers.FloatField(source="clip.end_time")
    score = serializers.FloatField(help_text="The classifier's P(positive), 0 to 1.")


class UncertainSerializer(serializers.Serializer):
    """The unlabelled clips whose scores are closest to 0.5: the ones to label next."""

    scored_from = serializers.ChoiceField(
        choices=["predictions", "sample"],
        help_text="predictions: its stored scores (an apply job completed); sample: scored just now over "
        f"the source run, or a sample of about {services.UNCERTAIN_SAMPLE:,} of its embeddings.",
    )
    scored = serializers.IntegerField(help_text="How many scores were looked at.")
    clips = UncertainClipSerializer(many=True)
