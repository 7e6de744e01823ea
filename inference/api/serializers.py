"""What the jobs API reads and writes (seed-design.md §5.3): a job, its config, its recordings' states."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import Field

from django.db.models import Count
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from echoroo.api.serializers import PredictionModelRunSerializer, by_uuid, job_duration, username_of_creator
from echoroo.models import Dataset, Recording
from inference import services
from inference.api.errors import as_api_error
from inference.config import SETTINGS, ConfigError, help_of
from inference.models import InferenceJob, JobRecording
from inference.runtimes import available_runtimes

# The failed recordings a job's page lists; their count is in `recordings.failed`.
FAILED_RECORDINGS_SHOWN = 100


def config_field(setting: Field) -> serializers.Field:
    """The documented shape of one setting, read from its definition in inference.config."""
    rules = setting.metadata
    shared = {"default": setting.default, "allow_null": setting.default is None, "help_text": help_of(setting.name)}
    if rules["kind"] == "flag":
        return serializers.BooleanField(**shared)
    if rules["kind"] == "names":
        return serializers.ListField(child=serializers.CharField(), min_length=1, max_length=rules["high"], **shared)
    if "choices" in rules:
        # Whole numbers from a list (the week: -1, or 1 to 48), documented as its runs of consecutive values.
        schema = {"type": "integer", "nullable": setting.default is None, "oneOf": runs_of(rules["choices"])}
        return extend_schema_field(schema)(serializers.IntegerField(**shared))
    kind = serializers.FloatField if rules["kind"] == "number" else serializers.IntegerField
    # An overlap's upper bound is the model's window: a bound of the request, not of the schema.
    bounds = {"min_value": rules["low"]} | ({} if rules.get("below_window") else {"max_value": rules["high"]})
    return kind(**bounds, **shared)


def runs_of(values: tuple[int, ...]) -> list[dict]:
    """Whole numbers as JSON schemas of their runs: [-1, 1, 2, 3] -> [{"enum": [-1]}, {"minimum": 1, "maximum": 3}]."""
    runs: list[list[int]] = []
    for value in sorted(values):
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return [{"enum": run} if len(run) == 1 else {"minimum": run[0], "maximum": run[-1]} for run in runs]


class InferenceConfigSerializer(serializers.Serializer):
    """A job's settings. Every one is optional; an unknown one is an error, so a typo is not ignored.

    Documentation only, generated from InferenceConfig's fields: inference.config.parse_config checks the
    settings (it knows the model's window).
    """

    def get_fields(self) -> dict[str, serializers.Field]:
        return {setting.name: config_field(setting) for setting in SETTINGS}


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

    def to_internal_value(self, data) -> dict:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as error:
            # A field that does not parse (an unknown uuid, say) stops DRF before create: the service checks
            # the model and the config anyway, so that every error of the request comes in one answer.
            raise serializers.ValidationError(with_service_errors(error.detail, data)) from error

    def create(self, validated_data: dict) -> InferenceJob:
        config = validated_data.get("config") or {}
        try:
            return services.create_job(
                model_name=validated_data["model_name"],
                model_version=validated_data["model_version"],
                dataset=validated_data.get("dataset"),
                recording=validated_data.get("recording"),
                config=config,
                start=validated_data["start"],
                by=validated_data["created_by"],
            )
        except ConfigError as error:
            raise as_api_error(error, config_keys=config) from error


def with_service_errors(detail: dict, data) -> dict:
    """The field errors DRF found, and those the service finds in the rest of the request (nothing is written)."""
    if not isinstance(data, Mapping) or not isinstance(detail, dict):
        return detail
    model_name, model_version = data.get("model_name"), data.get("model_version") or "latest"
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    if not isinstance(model_name, str) or not isinstance(model_version, str):
        return detail
    errors = services.job_errors(model_name=model_name, model_version=model_version, config=config)
    if sum(bool(data.get(field)) for field in ("dataset_uuid", "recording_uuid")) != 1:
        errors["dataset"] = services.TARGET_MISSING
    found = as_api_error(ConfigError(errors), config_keys=config).detail if errors else {}
    merged = dict(detail)
    for key, messages in found.items():
        if key == "config" and isinstance(merged.get("config"), dict):
            merged["config"] = {**messages, **merged["config"]}
        else:
            merged.setdefault(key, messages)
    return merged


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
