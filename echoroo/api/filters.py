"""Query-string filters of the API (django-filter); related rows are named by uuid.

A value that does not parse (a uuid, a number, a date) is a 400 whose body names the filter.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q, QuerySet
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

from echoroo.models import (
    SPECIES,
    Clip,
    ClipAnnotation,
    ClipPrediction,
    ClipPredictionTag,
    ModelRun,
    Recording,
    Site,
    Tag,
)
from validation.models import ThresholdSet
from validation.services import passing

MIN_SCORE_HELP = "A tag scored at least this (0 to 1); with species, that species' tag."
THRESHOLDS_HELP = (
    "The name of a threshold set: only the windows with a tag at or above its species' threshold in the set "
    "(the set's default for species it does not name), each listing only those tags."
)


def uuid_of(field_name: str, what: str) -> filters.UUIDFilter:
    return filters.UUIDFilter(field_name=f"{field_name}__uuid", help_text=f"The uuid of the {what}.")


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 datetime, handed on in UTC.

    Python accepts offsets up to ±23:59 but PostgreSQL only ±15:59; in UTC any valid instant
    reaches the database (a fuzzed "+21:44" once turned into a 500 here).
    """

    def clean(self, value):
        moment = super().clean(value)
        if moment is not None and moment.tzinfo is not None:
            try:
                moment = moment.astimezone(datetime.UTC)
            except OverflowError:
                raise ValidationError("the date is out of range once converted to UTC") from None
        return moment


class UtcIsoDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


def recorded_between(field_name: str) -> tuple[filters.IsoDateTimeFilter, filters.IsoDateTimeFilter]:
    """recorded_after / recorded_before: ISO 8601 datetimes, both ends included."""
    return (
        UtcIsoDateTimeFilter(
            field_name=field_name, lookup_expr="gte", help_text="Recorded at or after (ISO 8601 datetime)."
        ),
        UtcIsoDateTimeFilter(
            field_name=field_name, lookup_expr="lte", help_text="Recorded at or before (ISO 8601 datetime)."
        ),
    )


class SiteFilter(filters.FilterSet):
    dataset = uuid_of("dataset", "dataset")

    class Meta:
        model = Site
        fields = ["name"]


class RecordingFilter(filters.FilterSet):
    dataset = uuid_of("dataset", "dataset")
    site = uuid_of("site", "site")
    recorded_after, recorded_before = recorded_between("recorded_at")

    class Meta:
        model = Recording
        fields = ["path", "sha256"]


class ClipFilter(filters.FilterSet):
    dataset = uuid_of("recording__dataset", "dataset")
    recording = uuid_of("recording", "recording")

    class Meta:
        model = Clip
        fields = []


class TagFilter(filters.FilterSet):
    value__icontains = filters.CharFilter(
        field_name="value", lookup_expr="icontains", help_text="Part of the value, any case."
    )

    class Meta:
        model = Tag
        fields = ["key", "value"]


class ModelRunFilter(filters.FilterSet):
    class Meta:
        model = ModelRun
        fields = ["name", "version"]


class WindowDetectionFilter(filters.FilterSet):
    """Filters of a list of window detections (ClipPrediction rows): where, when, which species, how sure."""

    recording = uuid_of("clip__recording", "recording")
    # species, species__icontains, min_score and thresholds are applied together in filter_queryset,
    # so that with a species and a minimum score it is one and the same tag row that matches both.
    species = filters.CharFilter(
        field_name="tags__tag__value",
        method="applied_in_filter_queryset",
        help_text=f'A tag with key "{SPECIES}" and exactly this value (the model\'s label).',
    )
    species__icontains = filters.CharFilter(
        field_name="tags__tag__value",
        method="applied_in_filter_queryset",
        help_text=f'A tag with key "{SPECIES}" whose value contains this, any case.',
    )
    min_score = extend_schema_field({"type": "number", "minimum": 0, "maximum": 1, "description": MIN_SCORE_HELP})(
        filters.NumberFilter(
            field_name="tags__score",
            method="applied_in_filter_queryset",
            min_value=0,
            max_value=1,
            help_text=MIN_SCORE_HELP,
        )
    )
    thresholds = extend_schema_field({"type": "string", "description": THRESHOLDS_HELP})(
        filters.ModelChoiceFilter(
            queryset=ThresholdSet.objects.all(),
            to_field_name="name",
            method="applied_in_filter_queryset",
            help_text=THRESHOLDS_HELP,
            error_messages={
                "invalid_choice": "no threshold set is named %(value)r; GET /api/v1/threshold-sets/ lists them"
            },
        )
    )
    start_time_min = filters.NumberFilter(
        field_name="clip__start_time", lookup_expr="gte", help_text="The clip starts at or after (seconds)."
    )
    start_time_max = filters.NumberFilter(
        field_name="clip__start_time", lookup_expr="lte", help_text="The clip starts at or before (seconds)."
    )
    recorded_after, recorded_before = recorded_between("clip__recording__recorded_at")

    class Meta:
        model = ClipPrediction
        fields = []

    def applied_in_filter_queryset(self, queryset: QuerySet, name: str, value) -> QuerySet:
        # No type hint on value: drf-spectacular then takes each filter's type from its class.
        return queryset

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        return with_scored_tag(
            queryset,
            species=data.get("species") or None,
            species_contains=data.get("species__icontains") or None,
            min_score=data.get("min_score"),
            threshold_set=data.get("thresholds"),
        )


class ClipPredictionFilter(WindowDetectionFilter):
    """Every job's window detections; a classifier run's scores only when that run is named (model_run)."""

    dataset = uuid_of("clip__recording__dataset", "dataset")
    model_run = uuid_of("model_run", "model run; a classifier's run lists its scores, left out otherwise")
    job = uuid_of("job", "inference job")

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = super().filter_queryset(queryset)
        # A classifier's scores (rows without a job) are not species detections: listed only when
        # their run is asked for by name.
        if self.form.cleaned_data.get("model_run") is None:
            return queryset.filter(job__isnull=False)
        return queryset.filter(Q(job__isnull=False) | Q(model_run__kind=ModelRun.Kind.CLASSIFIER))


def with_scored_tag(
    predictions: QuerySet,
    *,
    species: str | None = None,
    species_contains: str | None = None,
    min_score: Decimal | float | None = None,
    threshold_set: ThresholdSet | None = None,
) -> QuerySet:
    """The predictions with one tag row that matches every condition given (all None: no filter)."""
    if species is None and species_contains is None and min_score is None and threshold_set is None:
        return predictions
    rows = ClipPredictionTag.objects.filter(clip_prediction=OuterRef("pk"))
    if species is not None:
        rows = rows.filter(tag__key=SPECIES, tag__value=species)
    if species_contains is not None:
        rows = rows.filter(tag__key=SPECIES, tag__value__icontains=species_contains)
    if min_score is not None:
        rows = rows.filter(score__gte=float(min_score))
    if threshold_set is not None:
        rows = passing(rows, threshold_set)
    return predictions.filter(Exists(rows))


def chosen_threshold_set(request) -> ThresholdSet | None:
    """The threshold set a list of detections names in ?thresholds= (its filter has checked the name)."""
    name = request.query_params.get("thresholds")
    return ThresholdSet.objects.filter(name=name).first() if name else None


class ClipAnnotationFilter(filters.FilterSet):
    dataset = uuid_of("clip__recording__dataset", "dataset")
    recording = uuid_of("clip__recording", "recording")
    clip = uuid_of("clip", "clip")

    class Meta:
        model = ClipAnnotation
        fields = []
