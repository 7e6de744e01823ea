"""Query-string filters of the sound event annotations: where, what, who, when."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q
from django_filters import rest_framework as filters

from annotations.models import SoundEventAnnotation, SoundEventAnnotationTag
from annotations.species import SpeciesNames
from echoroo.models import SPECIES


class SoundEventAnnotationFilter(filters.FilterSet):
    dataset = filters.UUIDFilter(field_name="recording__dataset__uuid", help_text="The dataset's uuid.")
    recording = filters.UUIDFilter(field_name="recording__uuid", help_text="The recording's uuid.")
    species = filters.CharFilter(
        method="of_species", help_text="A species (label, scientific or common name, or eBird code)."
    )
    tag = filters.CharFilter(method="with_tag", help_text='A free tag as "key:value" (e.g. call_type:song).')
    created_by = filters.CharFilter(field_name="created_by__username", help_text="The annotator's username.")
    source = filters.ChoiceFilter(choices=SoundEventAnnotation.Source.choices)
    start = filters.NumberFilter(
        method="ending_after", help_text="Only boxes that end after this time (s): with `end`, those in a view."
    )
    end = filters.NumberFilter(method="starting_before", help_text="Only boxes that start before this time (s).")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte")

    class Meta:
        model = SoundEventAnnotation
        fields = []

    def of_species(self, queryset, name, value):
        label = SpeciesNames().label(value) or value
        return queryset.filter(_has_tag(SPECIES, label))

    def with_tag(self, queryset, name, value):
        key, _, tag_value = value.partition(":")
        return queryset.filter(_has_tag(key.strip(), tag_value.strip()))

    def ending_after(self, queryset, name, value):
        return queryset.filter(sound_event__end_time__gt=value)

    def starting_before(self, queryset, name, value):
        return queryset.filter(sound_event__start_time__lt=value)


def _has_tag(key: str, value: str) -> Q:
    return Q(Exists(SoundEventAnnotationTag.objects.filter(annotation=OuterRef("pk"), tag__key=key, tag__value=value)))
