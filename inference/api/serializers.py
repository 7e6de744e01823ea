"""What the jobs API reads and writes (seed-design.md §5.3): a job, its config, its recordings' states."""

from __future__ import annotations

from django.db.models import Count
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from echoroo.api.serializers import PredictionModelRunSerializer, by_uuid, job_duration, username_of_creator
from echoroo.models import Dataset, Recording
from inference import services
from inference.api.errors import as_api_error
from inference.config import MAX_BATCH_SIZE, MAX_SPECIES_LIST, ConfigError
from inference.models import InferenceJob, JobRecording
from inference.runtimes import available_runtimes

# The failed recordings a job's page lists; their count is in `recordings.failed`.
FAILED_RECORDINGS_SHOWN = 100


class InferenceConfigSerializer(serializers.Serializer):
    """A job's settings. Every one is optional; an unknown one is an error, so a typo is not ignored."""

    # Documentation only: inference.config.parse_config checks the settings (it knows the model's window).

    confidence_threshold = serializers.FloatField(
        default=0.5, help_text="Keep the scores at least this, 0 to 1.", min_value=0, max_value=1
    )
    overlap = serializers.FloatField(
        default=0.0,
        help_text="Seconds two windows overlap: at least 0, less than the model's window (BirdNET 3 s, Perch 5 s).",
        min_value=0,
    )
    batch_size = serializers.IntegerField(
        default=32, help_text="Windows per model call.", min_value=1, max_value=MAX_BATCH_SIZE
    )
    use_gpu = serializers.BooleanField(default=True, help_text="Use a GPU when the worker has one.")
    use_metadata_filter = serializers.BooleanField(
        default=True, help_text="BirdNET: keep only the species expected at the place and week."
    )
    custom_species_list = serializers.ListField(
        child=serializers.CharField(),
        allow_null=True,
        default=None,
        max_length=MAX_SPECIES_LIST,
        help_text="Keep only these labels (the model's names, e.g. 'Turdus merula_Eurasian Blackbird' or "
        "'Turdus merula'); replaces the metadata filter.",
    )
    store_embeddings = serializers.BooleanField(default=True, help_text="Store each window's embedding.")
    store_predictions = serializers.BooleanField(
        default=True, help_text="Store the scores and detections (at least one of the two store_ settings)."
    )
    sensitivity = serializers.FloatField(
        default=1.0, min_value=0.5, max_value=1.5, help_text="BirdNET's detection sensitivity, 0.5 to 1.5."
    )
    species_filter_threshold = serializers.FloatField(
        default=0.03, min_value=0, max_value=1, help_text="BirdNET: how likely a species must be at the place and week."
    )
    latitude = serializers.FloatField(
        allow_null=True,
        default=None,
        min_value=-90,
        max_value=90,
        help_text="With longitude: the place for the species filter, instead of the recording's, site's or dataset's.",
    )
    longitude = serializers.FloatField(
        allow_null=True, default=None, min_value=-180, max_value=180, help_text="With latitude."
    )
    week = serializers.IntegerField(
        allow_null=True,
        default=None,
        min_value=-1,
        max_value=48,
        help_text="BirdNET's week for the species filter (1-48, or -1 for the whole year), instead of the "
        "recording's date.",
    )


@extend_schema_field(InferenceConfigSerializer)
class ConfigField(serializers.JSONField):
    """The config as given, checked by the service (which knows the model's window); read back as the job's
    typed settings (InferenceJob.settings), every setting with its value.

    A JSON field, so that the browsable API's form has a box to type the settings in as JSON; blank there is {}.
    """

    # (braces doubled: DRF formats its messages)
    default_error_messages = {
        "not_an_object": 'must be a JSON object of settings, e.g. {{"confidence_threshold": 0.25}}'
    }

    def get_attribute(self, job: InferenceJob) -> dict:
        return job.settings.as_json()

    def to_internal_value(self, data) -> dict:
        if isinstance(data, str) and not data.strip():
            return {}
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_an_object")
        return value


@extend_schema_field({"type": "string", "enum": available_runtimes()})
class ModelNameField(serializers.CharField):
    """A model's name, checked by the service (whose message lists the models available)."""


class RecordingCountsSerializer(serializers.Serializer):
    """How many of a job's recordings are in each state."""

    pending = serializers.IntegerField()
    running = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class FailedRecordingSerializer(serializers.ModelSerializer):
    recording = serializers.UUIDField(source="recording.uuid")
    path = serializers.CharField(source="recording.path")

    class Meta:
        model = JobRecording
        fields = ["recording", "path", "error_message", "attempts", "finished_at"]
        read_only_fields = fields


class InferenceJobSerializer(serializers.ModelSerializer):
    """A job: what it runs on, with which model and settings, and how far it is."""

    model_name = ModelNameField(write_only=True, help_text="The model to run.")
    model_version = serializers.CharField(
        write_only=True,
        default="latest",
        allow_blank=True,
        help_text='The model\'s version; "latest" (or blank) is the one installed.',
    )
    dataset_uuid = by_uuid(
        Dataset.objects.all(),
        source="dataset",
        required=False,
        allow_null=True,
        help_text="Run on every recording of this dataset (give this or recording_uuid).",
        error_messages={"does_not_exist": "no dataset has the uuid {value}"},
    )
    recording_uuid = by_uuid(
        Recording.objects.all(),
        source="recording",
        required=False,
        allow_null=True,
        help_text="Run on this recording only (give this or dataset_uuid).",
        error_messages={"does_not_exist": "no recording has the uuid {value}"},
    )
    config = ConfigField(required=False, default=dict, style={"base_template": "textarea.html", "rows": 4})
    start = serializers.BooleanField(
        write_only=True, default=False, help_text="Start the job as soon as it is created (else it stays pending)."
    )
    model_run = PredictionModelRunSerializer(read_only=True)
    created_by = username_of_creator()
    duration_s = job_duration()

    class Meta:
        model = InferenceJob
        fields = [
            "uuid",
            "model_name",
            "model_version",
            "model_run",
            "dataset_uuid",
            "recording_uuid",
            "config",
            "start",
            "status",
            "progress",
            "total_clips",
            "processed_clips",
            "error_message",
            "activity",
            "created_by",
            "created_at",
            "started_at",
            "completed_at",
            "duration_s",
        ]
        read_only_fields = [
            "status",
            "progress",
            "total_clips",
            "processed_clips",
            "error_message",
            "activity",
            "started_at",
            "completed_at",
        ]

    def create(self, validated_data: dict) -> InferenceJob:
        config = validated_data.get("config") or {}
        try:
            return services.create_job(
                model_name=validated_data["model_name"],
                model_version=validated_data["model_version"],
                dataset=validated_data.get("dataset"),
                recording=validated_data.get("recording"),
                config=config,
                by=validated_data["created_by"],
            )
        except ConfigError as error:
            raise as_api_error(error, config_keys=config) from error


class InferenceJobDetailSerializer(InferenceJobSerializer):
    """A job with its recordings: how many are in each state, and the errors of those that failed."""

    recordings = serializers.SerializerMethodField()
    reused_recordings = serializers.SerializerMethodField(
        help_text="How many of its recordings took their detections from the model's stored output: no audio "
        "decoded, no model call."
    )
    failed_recordings = serializers.SerializerMethodField(
        help_text=f"The first {FAILED_RECORDINGS_SHOWN} recordings that failed, with their errors."
    )

    class Meta(InferenceJobSerializer.Meta):
        fields = [*InferenceJobSerializer.Meta.fields, "recordings", "reused_recordings", "failed_recordings"]

    @extend_schema_field(RecordingCountsSerializer)
    def get_recordings(self, job: InferenceJob) -> dict[str, int]:
        counts = dict.fromkeys(JobRecording.Status.values, 0)
        states = job.job_recordings.order_by().values("status").annotate(n=Count("id")).values_list("status", "n")
        counts.update(states)
        return counts

    def get_reused_recordings(self, job: InferenceJob) -> int:
        return job.job_recordings.filter(reused=True).count()

    @extend_schema_field(FailedRecordingSerializer(many=True))
    def get_failed_recordings(self, job: InferenceJob) -> list[dict]:
        failed = job.job_recordings.filter(status=JobRecording.Status.FAILED).select_related("recording")
        return FailedRecordingSerializer(failed[:FAILED_RECORDINGS_SHOWN], many=True).data
