"""Query-string filters of the verdicts list; clips and jobs by uuid, species by scientific name or label."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet
from django_filters import rest_framework as filters

from echoroo.api.filters import uuid_of
from echoroo.models import ClipPredictionTag
from inference.models import InferenceJob
from validation import services
from validation.api.errors import as_api_error
from validation.api.serializers import SPECIES_HELP
from validation.models import Verdict


class VerdictFilter(filters.FilterSet):
    # job and species are applied together in filter_queryset: a name several labels share is the
    # one the job detected.
    job = filters.UUIDFilter(
        method="applied_in_filter_queryset", help_text="The uuid of an inference job: verdicts on its detections."
    )
    species = filters.CharFilter(method="applied_in_filter_queryset", help_text=f"The species judged. {SPECIES_HELP}")
    verdict = filters.ChoiceFilter(choices=Verdict.Value.choices)
    reviewer = filters.CharFilter(field_name="reviewer__username", help_text="The reviewer's username.")
    clip = uuid_of("clip", "clip judged")
    bulk = filters.BooleanFilter(
        help_text="true: only verdicts given in bulk (verify by similarity); false: one by one."
    )
    mine = filters.BooleanFilter(method="reviewed_by_me", help_text="true: only my verdicts.")

    class Meta:
        model = Verdict
        fields: list = []

    def applied_in_filter_queryset(self, queryset: QuerySet, name: str, value) -> QuerySet:
        return queryset

    def reviewed_by_me(self, queryset: QuerySet, name: str, value) -> QuerySet:
        if value is None:
            return queryset
        mine = {"reviewer_id": self.request.user.pk}
        return queryset.filter(**mine) if value else queryset.exclude(**mine)

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = super().filter_queryset(queryset)
        job_uuid, species = self.form.cleaned_data.get("job"), self.form.cleaned_data.get("species")
        job = InferenceJob.objects.filter(uuid=job_uuid).first() if job_uuid else None
        if job_uuid and job is None:
            return queryset.none()  # as any filter by the uuid of a row that is not there
        if species:
            try:
                queryset = queryset.filter(species=services.species_tag(species, job=job))
            except services.ValidationError as error:
                raise as_api_error(error) from error
        if job is not None:
            detected = ClipPredictionTag.objects.filter(
                clip_prediction__job=job, clip_prediction__clip_id=OuterRef("clip_id"), tag_id=OuterRef("species_id")
            )
            queryset = queryset.filter(Exists(detected))
        return queryset
