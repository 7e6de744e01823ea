"""API viewsets: each declares its queryset, serializer, filters, pagination and permissions.

Every endpoint needs a logged-in user (session or token). Recordings, clips and
predictions are read-only here: the import command and the inference jobs write them.
"""

from __future__ import annotations

from django.db.models import Aggregate, Count, OuterRef, Prefetch, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated

from echoroo import deletion
from echoroo.api import filters, serializers
from echoroo.api.errors import Conflict
from echoroo.api.pagination import NewestFirstCursorPagination, OldestFirstCursorPagination
from echoroo.api.permissions import OwnerOrStaffMayChange, StaffMayChange
from echoroo.models import (
    Clip,
    ClipAnnotation,
    ClipAnnotationTag,
    ClipPrediction,
    Dataset,
    ModelRun,
    Recording,
    Site,
    Tag,
)

SECONDS_PER_HOUR = 3600.0


def of_dataset(aggregate: Aggregate, *, empty: int | float) -> Coalesce:
    """An aggregate of one dataset's recordings, computed for the datasets of the page only."""
    # A subquery rather than a join + GROUP BY, so the paginator's COUNT(*) never reads recordings.
    recordings = Recording.objects.filter(dataset=OuterRef("pk")).order_by().values("dataset")
    return Coalesce(Subquery(recordings.annotate(total=aggregate).values("total")), Value(empty))


@extend_schema_view(
    destroy=extend_schema(
        description="Deletes the dataset with its sites, recordings, clips, predictions, embeddings, annotations "
        "and jobs, in one statement (the audio files stay). Refused while a job is running on it.",
        responses={
            204: OpenApiResponse(description="Deleted."),
            409: OpenApiResponse(description="A job is running on the dataset: cancel it first ({detail})."),
        },
    )
)
class DatasetViewSet(viewsets.ModelViewSet):
    queryset = Dataset.objects.select_related("created_by").annotate(
        recording_count=of_dataset(Count("pk"), empty=0),
        recording_hours=of_dataset(Sum("duration"), empty=0.0) / SECONDS_PER_HOUR,
    )
    serializer_class = serializers.DatasetSerializer
    permission_classes = [OwnerOrStaffMayChange]
    lookup_field = "uuid"

    def owner_id_of(self, dataset: Dataset) -> int | None:
        return dataset.created_by_id

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)

    def perform_destroy(self, dataset: Dataset) -> None:
        # One DELETE cascading in PostgreSQL: a dataset may hold millions of clips (echoroo.deletion).
        try:
            deletion.delete(Dataset, [dataset.pk])
        except deletion.DeletionRefused as refused:
            raise Conflict({"detail": str(refused)}) from refused


class SiteViewSet(viewsets.ModelViewSet):
    queryset = Site.objects.select_related("dataset")
    serializer_class = serializers.SiteSerializer
    filterset_class = filters.SiteFilter
    permission_classes = [OwnerOrStaffMayChange]
    lookup_field = "uuid"

    def owner_id_of(self, site: Site) -> int | None:
        return site.dataset.created_by_id

    def perform_create(self, serializer):
        dataset = serializer.validated_data["dataset"]
        user = self.request.user
        if not (user.is_staff or dataset.created_by_id == user.pk):
            raise PermissionDenied("only staff or the dataset's creator may add sites to it")
        serializer.save()


class TagViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """Tags are kept: predictions and annotations refer to them (on_delete=PROTECT)."""

    queryset = Tag.objects.all()
    serializer_class = serializers.TagSerializer
    filterset_class = filters.TagFilter
    permission_classes = [StaffMayChange]
    lookup_field = "uuid"


class ModelRunViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """No delete: a model run is an embedding space that owns its predictions and embeddings."""

    queryset = ModelRun.objects.all()
    serializer_class = serializers.ModelRunSerializer
    filterset_class = filters.ModelRunFilter
    permission_classes = [StaffMayChange]
    lookup_field = "uuid"


class RecordingViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Recording.objects.select_related("dataset", "site")
    serializer_class = serializers.RecordingSerializer
    filterset_class = filters.RecordingFilter
    pagination_class = OldestFirstCursorPagination
    permission_classes = [IsAuthenticated]
    lookup_field = "uuid"


class ClipViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Clip.objects.select_related("recording")
    serializer_class = serializers.ClipSerializer
    filterset_class = filters.ClipFilter
    pagination_class = OldestFirstCursorPagination
    permission_classes = [IsAuthenticated]
    lookup_field = "uuid"


@extend_schema_view(
    list=extend_schema(
        description="Every job's window detections (one job's: filter by job, or GET /api/v1/inference/jobs/{uuid}/"
        "detections/). A classifier's scores of clips are not detections: they are listed only when model_run "
        "names the classifier's run."
    ),
    retrieve=extend_schema(description="One row by its uuid: a job's window detection or a classifier's score."),
)
class ClipPredictionViewSet(viewsets.ReadOnlyModelViewSet):
    # Rows, not model instances (see serializers.PREDICTION_ROW): one query for the page and one
    # for its tags, however long the page.
    queryset = ClipPrediction.objects.values(*serializers.PREDICTION_ROW)
    serializer_class = serializers.ClipPredictionSerializer
    filterset_class = filters.ClipPredictionFilter
    pagination_class = OldestFirstCursorPagination
    permission_classes = [IsAuthenticated]
    lookup_field = "uuid"

    def filter_queryset(self, queryset):
        # A uuid names its row, a classifier's score too: the filters, and the list's default of
        # job detections only, are the list's.
        return queryset if self.action == "retrieve" else super().filter_queryset(queryset)

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "threshold_set": filters.chosen_threshold_set(self.request)}


class ClipAnnotationViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    queryset = ClipAnnotation.objects.select_related("clip", "created_by").prefetch_related(
        Prefetch("tags", queryset=ClipAnnotationTag.objects.select_related("tag").order_by("id"))
    )
    serializer_class = serializers.ClipAnnotationSerializer
    filterset_class = filters.ClipAnnotationFilter
    pagination_class = NewestFirstCursorPagination
    permission_classes = [IsAuthenticated]
    lookup_field = "uuid"

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)
