"""What the validation API reads and writes: verdicts, calibrations and threshold sets; clips and jobs by uuid."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from echoroo.api.serializers import by_uuid, username_of_creator
from echoroo.models import Clip, ClipPredictionTag, Tag
from inference.models import InferenceJob
from validation import services
from validation.api.errors import as_api_error, first_message
from validation.calibration import TARGETS
from validation.evaluation import calibrated_thresholds
from validation.models import ThresholdSet, Verdict

MAX_BULK = 500
MAX_CSV_BYTES = 1_000_000
TARGET_CHOICES = [f"{target:g}" for target in TARGETS]
SPECIES_HELP = (
    'A scientific name ("Hylocichla mustelina") or the model\'s full label ("Hylocichla mustelina_Wood Thrush").'
)
SCORE = {"min_value": 0, "max_value": 1}


@extend_schema_field({"type": "string", "description": SPECIES_HELP})
class SpeciesField(serializers.CharField):
    """A species tag named by its scientific name or full label; written back as the label.

    With a job in the serializer's context, a name several labels share is the one the job detected.
    """

    def to_internal_value(self, name) -> Tag:
        name = super().to_internal_value(name)
        try:
            return services.species_tag(name, job=self.context.get("job"))
        except services.ValidationError as error:
            raise serializers.ValidationError(first_message(error)) from None

    def to_representation(self, tag: Tag) -> str:
        return tag.value


def clip_field(**kwargs) -> serializers.SlugRelatedField:
    # A text box in the browsable API: a <select> of every clip would be useless.
    return by_uuid(Clip.objects.all(), style={"base_template": "input.html"}, **kwargs)


def check_detected(clips: list[Clip], species: Tag, field: str) -> None:
    """A verdict judges a detection: each clip must have been detected as `species` (by some job or classifier)."""
    detected = set(
        ClipPredictionTag.objects.filter(clip_prediction__clip__in=clips, tag=species).values_list(
            "clip_prediction__clip_id", flat=True
        )
    )
    missing = [str(clip.uuid) for clip in clips if clip.pk not in detected]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise serializers.ValidationError({field: [f"no detection of {species.value} on clip {shown}"]})


def check_other_species(attrs: dict) -> None:
    if attrs.get("verdict") == Verdict.Value.OTHER and attrs.get("other_species") is None:
        raise serializers.ValidationError({"other_species": ['a verdict "other" names the species it is instead']})


class VerdictSerializer(serializers.ModelSerializer):
    """A reviewer's judgement of a clip for one species; posting it again replaces the reviewer's earlier one."""

    clip = clip_field()
    species = SpeciesField(help_text=f"The species judged. {SPECIES_HELP}")
    other_species = SpeciesField(
        required=False, allow_null=True, default=None, help_text='What it is instead; required with "other".'
    )
    reviewer = serializers.SlugRelatedField(slug_field="username", read_only=True, help_text="Who judged it.")
    like_clip = by_uuid(allow_null=True, help_text="Given in bulk: the clip whose verdict it copies.")

    class Meta:
        model = Verdict
        fields = [
            "uuid",
            "clip",
            "species",
            "verdict",
            "other_species",
            "reviewer",
            "bulk",
            "like_clip",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["uuid", "reviewer", "bulk", "like_clip", "created_at", "updated_at"]
        # One verdict per (clip, species, reviewer) is kept by replacing it, not by refusing the second.
        validators: list = []

    def validate(self, attrs: dict) -> dict:
        check_other_species(attrs)
        check_detected([attrs["clip"]], attrs["species"], "species")
        return attrs

    def create(self, validated_data: dict) -> Verdict:
        try:
            return services.record_verdict(
                clip=validated_data["clip"],
                species=validated_data["species"],
                verdict=validated_data["verdict"],
                other_species=validated_data.get("other_species"),
                by=validated_data["reviewer"],
            )
        except services.ValidationError as error:
            raise as_api_error(error) from error


class BulkVerdictSerializer(serializers.Serializer):
    """One verdict applied to several clips like `like_clip` (verify by similarity): each becomes its own."""

    like_clip = clip_field(help_text="The clip judged first, whose neighbours these are.")
    clips = serializers.ListField(
        child=serializers.UUIDField(), min_length=1, max_length=MAX_BULK, help_text="The clips to judge alike (uuids)."
    )
    species = SpeciesField(help_text=SPECIES_HELP)
    verdict = serializers.ChoiceField(choices=Verdict.Value.choices)
    other_species = SpeciesField(required=False, allow_null=True, default=None)

    def validate_clips(self, uuids: list) -> list[Clip]:
        found = {clip.uuid: clip for clip in Clip.objects.filter(uuid__in=uuids)}
        missing = [str(value) for value in uuids if value not in found]
        if missing:
            raise serializers.ValidationError(f"no clip has the uuid {', '.join(missing[:5])}")
        return list({value: found[value] for value in uuids}.values())

    def validate(self, attrs: dict) -> dict:
        check_other_species(attrs)
        check_detected(attrs["clips"], attrs["species"], "clips")
        return attrs

    def create(self, validated_data: dict) -> list[Verdict]:
        try:
            return services.record_verdicts_like(
                like_clip=validated_data["like_clip"],
                clips=validated_data["clips"],
                species=validated_data["species"],
                verdict=validated_data["verdict"],
                other_species=validated_data.get("other_species"),
                by=validated_data["reviewer"],
            )
        except services.ValidationError as error:
            raise as_api_error(error) from error


class CalibrationQuerySerializer(serializers.Serializer):
    job = by_uuid(InferenceJob.objects.select_related("model_run"), help_text="The job whose detections were judged.")
    species = serializers.CharField(help_text=SPECIES_HELP)

    def validate(self, attrs: dict) -> dict:
        try:
            attrs["species"] = services.species_tag(attrs["species"], job=attrs["job"])
        except services.ValidationError as error:
            raise as_api_error(error) from error
        return attrs


class CalibrationSerializer(serializers.Serializer):
    """P(correct | score) fitted to the verdicts (logistic on logit(score)), and what it says."""

    job = serializers.UUIDField()
    species = serializers.CharField(help_text="The model's label.")
    n_correct = serializers.IntegerField()
    n_wrong = serializers.IntegerField(help_text='Wrong and "other" verdicts; unsure ones are left out.')
    coefficients = serializers.ListField(
        child=serializers.FloatField(), help_text="[intercept, slope] on logit(score): P = 1 / (1 + exp(-(a + b x)))."
    )
    thresholds = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        help_text='The score where P(correct) reaches "0.9", "0.95", "0.99"; null where it never does.',
    )
    intervals = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="95 % bootstrap interval [low, high] of each threshold.",
    )
    precision_above = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        help_text="The estimated share correct among the job's detections at or above each threshold.",
    )


class ThresholdsField(serializers.DictField):
    """{species: threshold}; read from the set's rows (prefetched with their species by the viewset)."""

    child = serializers.FloatField(**SCORE)

    def get_attribute(self, threshold_set: ThresholdSet) -> dict[str, float]:
        return {row.species.value: row.threshold for row in threshold_set.species.all()}


class ThresholdSetSerializer(serializers.ModelSerializer):
    """A named score threshold per species, with a default for the species it does not name."""

    name = serializers.CharField(max_length=ThresholdSet._meta.get_field("name").max_length)
    default_threshold = serializers.FloatField(**SCORE, help_text="The threshold of every species not named.")
    thresholds = ThresholdsField(
        required=False, help_text=f"{{species: threshold}}, 0 to 1. Species: {SPECIES_HELP} Read back as labels."
    )
    created_by = username_of_creator()
    can_change = serializers.SerializerMethodField(help_text="Whether you may change or delete it.")

    class Meta:
        model = ThresholdSet
        fields = [
            "uuid",
            "name",
            "description",
            "default_threshold",
            "thresholds",
            "created_by",
            "created_at",
            "updated_at",
            "can_change",
        ]
        read_only_fields = ["uuid", "created_by", "created_at", "updated_at"]

    def get_can_change(self, threshold_set: ThresholdSet) -> bool:
        return threshold_set.can_be_changed_by(self.context["request"].user)

    def validate_name(self, name: str) -> str:
        return unique_set_name(name, self.instance)

    def create(self, validated_data: dict) -> ThresholdSet:
        thresholds = validated_data.pop("thresholds", {})
        return save_set(self.context["request"].user, thresholds=thresholds, **validated_data)

    def update(self, threshold_set: ThresholdSet, validated_data: dict) -> ThresholdSet:
        current = {
            "name": threshold_set.name,
            "default_threshold": threshold_set.default_threshold,
            "description": threshold_set.description,
            "thresholds": self.fields["thresholds"].get_attribute(threshold_set),
        }
        return save_set(self.context["request"].user, existing=threshold_set, **{**current, **validated_data})


def unique_set_name(name: str, instance: ThresholdSet | None = None) -> str:
    taken = ThresholdSet.objects.filter(name=name)
    if instance is not None:
        taken = taken.exclude(pk=instance.pk)
    if taken.exists():
        raise serializers.ValidationError(f"a threshold set named {name!r} exists already; choose another name")
    return name


def save_set(by, renamed: dict[str, str] | None = None, **fields) -> ThresholdSet:
    try:
        return services.save_threshold_set(by=by, **fields)
    except services.ValidationError as error:
        raise as_api_error(error, renamed=renamed) from error


class ThresholdSetImportSerializer(serializers.Serializer):
    """A threshold set from a CSV `species,threshold` (a header row is optional): an uploaded file or the text."""

    name = serializers.CharField(max_length=ThresholdSet._meta.get_field("name").max_length)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    default_threshold = serializers.FloatField(**SCORE)
    file = serializers.FileField(required=False, help_text="The CSV, UTF-8 (multipart/form-data).")
    text = serializers.CharField(required=False, trim_whitespace=False, help_text="Or the CSV's text.")

    def validate_name(self, name: str) -> str:
        return unique_set_name(name)

    def validate(self, attrs: dict) -> dict:
        if ("file" in attrs) == ("text" in attrs):
            raise serializers.ValidationError({"file": ["give the CSV as a file or as text (one of the two)"]})
        field = "file" if "file" in attrs else "text"
        if field == "file":
            upload = attrs.pop("file")
            if upload.size > MAX_CSV_BYTES:
                raise serializers.ValidationError({"file": [f"at most {MAX_CSV_BYTES:,} bytes"]})
            try:
                text = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise serializers.ValidationError({"file": ["not UTF-8 text"]}) from None
        else:
            text = attrs.pop("text")
        try:
            attrs["thresholds"] = services.thresholds_from_csv(text)
        except services.ValidationError as error:
            raise as_api_error(error, renamed={"file": field}) from error
        attrs["source"] = field
        return attrs

    def create(self, validated_data: dict) -> ThresholdSet:
        source = validated_data.pop("source")
        return save_set(self.context["request"].user, renamed={"thresholds": source}, **validated_data)


class FromCalibrationSerializer(serializers.Serializer):
    """A threshold set filled from the calibration of every species of a job that has enough verdicts."""

    name = serializers.CharField(max_length=ThresholdSet._meta.get_field("name").max_length)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    job = by_uuid(InferenceJob.objects.all(), help_text="The job whose verdicts calibrate its species.")
    target = serializers.ChoiceField(
        choices=TARGET_CHOICES, default="0.95", help_text="The P(correct) each species' threshold reaches."
    )
    default_threshold = serializers.FloatField(**SCORE, help_text="For the species that cannot be calibrated.")

    def validate_name(self, name: str) -> str:
        return unique_set_name(name)

    def validate(self, attrs: dict) -> dict:
        attrs["thresholds"], attrs["skipped"] = calibrated_thresholds(attrs["job"], attrs["target"])
        if not attrs["thresholds"]:
            reasons = "; ".join(f"{species}: {why}" for species, why in list(attrs["skipped"].items())[:5])
            raise serializers.ValidationError({"job": [f"no species of this job can be calibrated yet ({reasons})"]})
        return attrs

    def create(self, validated_data: dict) -> dict:
        job, target = validated_data["job"], validated_data["target"]
        threshold_set = save_set(
            self.context["request"].user,
            name=validated_data["name"],
            default_threshold=validated_data["default_threshold"],
            thresholds=validated_data["thresholds"],
            description=validated_data["description"] or f"P(correct) >= {target}, calibrated on job {job.uuid}",
        )
        return {"threshold_set": threshold_set, "skipped": validated_data["skipped"]}


class FromCalibrationResultSerializer(serializers.Serializer):
    threshold_set = ThresholdSetSerializer()
    skipped = serializers.DictField(
        child=serializers.CharField(), help_text="{species: why}: the job's species left at the default."
    )
