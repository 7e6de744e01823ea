"""The validation endpoints: verdicts (one by one and in bulk), a species' calibration, threshold sets.

Any logged-in user reviews; a verdict is its reviewer's own, and nobody else undoes it. Threshold
sets are shared: everyone reads and uses them, their creator or staff change and delete them.
Errors: a 400 {field: [message]} that writes nothing; a 403 for someone else's verdict or set.
"""

from __future__ import annotations

from django.db.models import Prefetch
from django.http import HttpResponse
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from echoroo.api.pagination import NewestFirstCursorPagination
from echoroo.api.parsers import GuardedJSONParser
from echoroo.api.permissions import OwnerOrStaffMayChange
from validation import services
from validation.api.errors import calibration_refused
from validation.api.filters import VerdictFilter
from validation.api.serializers import (
    BulkVerdictSerializer,
    CalibrationQuerySerializer,
    CalibrationSerializer,
    FromCalibrationResultSerializer,
    FromCalibrationSerializer,
    ThresholdSetImportSerializer,
    ThresholdSetSerializer,
    VerdictSerializer,
)
from validation.calibration import NoFit, TooFewVerdicts
from validation.models import SpeciesThreshold, ThresholdSet, Verdict

UUID_PATTERN = "[0-9a-fA-F-]{32,36}"
VALIDATION_ERROR = OpenApiResponse(description="{field: [message]}; nothing is written.")


class ReviewerMayUndo(BasePermission):
    """Every logged-in user reads and gives verdicts; only a verdict's reviewer deletes it."""

    message = "only its reviewer may undo a verdict"

    def has_object_permission(self, request, view, verdict: Verdict) -> bool:
        return request.method in SAFE_METHODS or verdict.reviewer_id == request.user.pk


class CreatorOrStaffMayChange(OwnerOrStaffMayChange):
    message = "only staff or the set's creator may change or delete it"


@extend_schema_view(
    list=extend_schema(summary="Verdicts, latest first (cursor pages)"),
    retrieve=extend_schema(summary="One verdict"),
    create=extend_schema(
        summary="Judge a detection: correct, wrong, unsure, or another species",
        description="The clip must have been detected as the species. Posting again for the same clip and "
        "species replaces your verdict (same uuid, updated_at changes); the answer is 201 either way.",
        responses={201: VerdictSerializer, 400: VALIDATION_ERROR},
    ),
    destroy=extend_schema(
        summary="Undo your verdict",
        responses={204: None, 403: OpenApiResponse(description="Only its reviewer may undo a verdict.")},
    ),
)
class VerdictViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.ListModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Verdict.objects.select_related("clip", "species", "other_species", "reviewer", "like_clip")
    serializer_class = VerdictSerializer
    filterset_class = VerdictFilter
    pagination_class = NewestFirstCursorPagination
    permission_classes = [IsAuthenticated, ReviewerMayUndo]
    lookup_field = "uuid"
    lookup_value_regex = UUID_PATTERN

    def perform_create(self, serializer: VerdictSerializer) -> None:
        serializer.save(reviewer=self.request.user)

    @extend_schema(
        summary="Give one verdict to several clips like a clip just judged (verify by similarity)",
        description="Each clip gets its own verdict by you, marked bulk, with like_clip set; your earlier verdicts "
        "on them are replaced. like_clip itself is left out (judge it with POST /api/v1/verdicts/).",
        request=BulkVerdictSerializer,
        responses={201: VerdictSerializer(many=True), 400: VALIDATION_ERROR},
    )
    @action(detail=False, methods=["post"], serializer_class=BulkVerdictSerializer)
    def bulk(self, request) -> Response:
        given = BulkVerdictSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        verdicts = given.save(reviewer=request.user)
        return Response(VerdictSerializer(verdicts, many=True).data, status=status.HTTP_201_CREATED)


class CalibrationView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="A species' calibration from the verdicts on a job's detections",
        description="Logistic regression (maximum likelihood, as R's glm) of correct vs wrong on logit(score), "
        'unsure verdicts left out, "other" counted as wrong; the thresholds where P(correct) reaches 0.9, 0.95 '
        "and 0.99 with 95 % bootstrap intervals, and the estimated share correct above each. Needs 10 correct "
        'and 10 wrong: with fewer, a 400 {"verdicts": [message], "needed": {"correct": n, "wrong": n}, '
        '"n_correct": n, "n_wrong": n}; verdicts separated by score (no finite fit), a 400 {"verdicts": [message]}.',
        parameters=[CalibrationQuerySerializer],
        responses={200: CalibrationSerializer, 400: VALIDATION_ERROR},
    )
    def get(self, request) -> Response:
        query = CalibrationQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        job, species = query.validated_data["job"], query.validated_data["species"]
        try:
            calibration = services.calibrate_species(job, species)
        except (TooFewVerdicts, NoFit) as error:
            return calibration_refused(error)
        found = {**vars(calibration), "job": job.uuid, "species": species.value}
        return Response(CalibrationSerializer(found).data)


@extend_schema_view(
    list=extend_schema(summary="Threshold sets, by name"),
    retrieve=extend_schema(summary="A threshold set and its thresholds"),
    create=extend_schema(
        summary="Create a threshold set by hand",
        responses={201: ThresholdSetSerializer, 400: VALIDATION_ERROR},
    ),
    update=extend_schema(summary="Replace a set (its creator or staff); thresholds left out are kept"),
    partial_update=extend_schema(summary="Change part of a set (its creator or staff); thresholds replace them all"),
    destroy=extend_schema(summary="Delete a set (its creator or staff)"),
)
class ThresholdSetViewSet(viewsets.ModelViewSet):
    queryset = ThresholdSet.objects.select_related("created_by").prefetch_related(
        Prefetch("species", queryset=SpeciesThreshold.objects.select_related("species"))
    )
    serializer_class = ThresholdSetSerializer
    permission_classes = [CreatorOrStaffMayChange]
    lookup_field = "uuid"
    lookup_value_regex = UUID_PATTERN

    def owner_id_of(self, threshold_set: ThresholdSet) -> int | None:
        return threshold_set.created_by_id

    @extend_schema(
        summary="The set's thresholds as CSV: species,threshold (a header row; the default is not in it)",
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"])
    def csv(self, request, uuid=None) -> HttpResponse:
        threshold_set = self.get_object()
        response = HttpResponse(services.thresholds_as_csv(threshold_set), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{slugify(threshold_set.name) or "thresholds"}.csv"'
        return response

    @extend_schema(
        summary="Create a threshold set from a CSV species,threshold",
        description="The CSV as an uploaded file (multipart/form-data) or as text; with name and default_threshold.",
        request={
            "multipart/form-data": ThresholdSetImportSerializer,
            "application/json": ThresholdSetImportSerializer,
        },
        responses={201: ThresholdSetSerializer, 400: VALIDATION_ERROR},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=[MultiPartParser, FormParser, GuardedJSONParser],
        serializer_class=ThresholdSetImportSerializer,
    )
    def import_csv(self, request) -> Response:
        return self._created(ThresholdSetImportSerializer, ThresholdSetSerializer)

    @extend_schema(
        summary="Create a threshold set from the calibrations of a job's species",
        description="Each species of the job that can be calibrated gets the threshold where its fitted "
        "P(correct) reaches the target; the others get the default and are listed in `skipped` with the "
        'reason (no verdicts, too few, no finite fit, never reaches the target). None calibrated: a 400 "job".',
        request=FromCalibrationSerializer,
        responses={201: FromCalibrationResultSerializer, 400: VALIDATION_ERROR},
    )
    @action(detail=False, methods=["post"], url_path="from-calibration", serializer_class=FromCalibrationSerializer)
    def from_calibration(self, request) -> Response:
        return self._created(FromCalibrationSerializer, FromCalibrationResultSerializer)

    def _created(self, request_serializer: type, response_serializer: type) -> Response:
        given = request_serializer(data=self.request.data, context=self.get_serializer_context())
        given.is_valid(raise_exception=True)
        created = given.save()
        answer = response_serializer(created, context=self.get_serializer_context())
        return Response(answer.data, status=status.HTTP_201_CREATED)
