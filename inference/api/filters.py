"""Query-string filters of the jobs list; related rows are named by uuid, as in the core API."""

from __future__ import annotations

from django.db.models import QuerySet
from django_filters import rest_framework as filters

from echoroo.api.filters import uuid_of
from inference.models import InferenceJob
from inference.runtimes import available_runtimes


class InferenceJobFilter(filters.FilterSet):
    model_name = filters.CharFilter(
        field_name="model_run__name",
        help_text="The model: " + " or ".join(f'"{name}"' for name in available_runtimes()) + ".",
    )
    dataset = uuid_of("dataset", "dataset the job runs on (jobs on one of its recordings are not included)")
    recording = uuid_of("recording", "recording the job runs on (jobs on its whole dataset are not included)")
    created_by = filters.CharFilter(field_name="created_by__username", help_text="The username of its creator.")
    mine = filters.BooleanFilter(method="created_by_me", help_text="true: only the jobs I created.")

    class Meta:
        model = InferenceJob
        fields = ["status"]

    def created_by_me(self, queryset: QuerySet, name: str, value) -> QuerySet:
        if value is None:
            return queryset
        mine = {"created_by_id": self.request.user.pk}
        return queryset.filter(**mine) if value else queryset.exclude(**mine)
