"""The jobs endpoints (seed-design.md §5.1): create, list, show, cancel, start and retry a job, and list its detections.

Any logged-in user may create and see jobs; only staff or a job's creator may start, cancel or
retry it (inference.services decides, for the admin and the pages too; its PermissionDenied is a
403). Errors: see inference.api.errors.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from annotations.api.job_evaluation import JobAnnotationEvaluationActions
from echoroo.api.filters import WindowDetectionFilter, chosen_threshold_set
from echoroo.api.pagination import OldestFirstCursorPagination
from echoroo.api.serializers import PREDICTION_ROW, ClipPredictionSerializer, NoBodySerializer
from echoroo.models import ClipPrediction
from inference import services
from inference.api.errors import as_api_error
from inference.api.filters import InferenceJobFilter
from inference.api.serializers import InferenceJobDetailSerializer, InferenceJobSerializer
from inference.config import ConfigError
from inference.models import InferenceJob
from validation.api.jobs import JobValidationActions

VALIDATION_ERROR = OpenApiResponse(
    description='Bad settings: {field: [message]}, with the config\'s settings under "config".'
)
FORBIDDEN = OpenApiResponse(description="Only staff or the job's creator may do this.")
CONFLICT = OpenApiResponse(description='The job\'s status does not allow this: {"status": [message]}.')
JOB_ACCEPTED = OpenApiResponse(InferenceJobDetailSerializer, description="Accepted: the job, its tasks queued.")


@extend_schema_view(
    create=extend_schema(
        summary="Create a job on a dataset or a recording",
        description='The job is pending until started; with "start": true it is created and started at once (its '
        "tasks queued), or, refused, not created at all. Any logged-in user may create jobs; a job is then its "
        "creator's (the creator or staff start, cancel and retry it).",
        responses={201: InferenceJobSerializer, 400: VALIDATION_ERROR},
    ),
    list=extend_schema(summary="List jobs, newest first"),
    retrieve=extend_schema(summary="A job's status and progress, with its recordings' states"),
    destroy=extend_schema(
        summary="Cancel a job",
        description="The job stops between batches; finished recordings keep their results. The job stays "
        "(so this answers 200 with it, not 204). A job that has already finished is a 409 saying so.",
        request=None,
        responses={200: InferenceJobDetailSerializer, 403: FORBIDDEN, 409: CONFLICT},
    ),
)
class InferenceJobViewSet(
    # review-sample/, similar/ and evaluation/: a job's detections as the validation loop reads them.
    JobValidationActions,
    # evaluation/annotations/: its detections against the sound event annotations of its recordings.
    JobAnnotationEvaluationActions,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.ListModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = InferenceJob.objects.select_related("model_run", "dataset", "recording", "created_by")
    serializer_class = InferenceJobSerializer
    filterset_class = InferenceJobFilter
    permission_classes = [IsAuthenticated]
    lookup_field = "uuid"

    def get_serializer_class(self) -> type:
        if self.action in ("create", "list"):
            return InferenceJobSerializer
        if self.action == "detections":
            return ClipPredictionSerializer
        if self.action in ("start", "retry"):
            return NoBodySerializer
        return InferenceJobDetailSerializer

    def perform_create(self, serializer: InferenceJobSerializer) -> None:
        # Created, and started with "start": true, in one service call: a refused request writes nothing.
        serializer.save(created_by=self.request.user)

    def destroy(self, request, *args, **kwargs) -> Response:
        job = self._call(services.cancel_job, self.get_object())
        return Response(self.get_serializer(job).data, status=status.HTTP_200_OK)

    @extend_schema(
        summary="Start a pending job",
        description="Queues one task per recording; workers run them.",
        request=None,
        responses={202: JOB_ACCEPTED, 403: FORBIDDEN, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def start(self, request, uuid=None) -> Response:
        job = self._call(services.start_job, self.get_object())
        return Response(self._detail(job), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Run again the recordings that failed or were cancelled",
        description="For a finished job; one still running, or with nothing that failed or was cancelled, is a 409 "
        "saying so.",
        request=None,
        responses={202: JOB_ACCEPTED, 403: FORBIDDEN, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, uuid=None) -> Response:
        job = self._call(services.retry_failed, self.get_object())
        return Response(self._detail(job), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="The job's window detections",
        description="Exactly this job's detections, as it stored them: one row per window it detected something "
        "in, every species tag with its score at the job's sensitivity (best first); whatever other jobs found on "
        "the same recordings is not here. Filters and pages as /api/v1/clip-predictions/. The merged detections "
        "(overlapping windows joined) are exported with manage.py export_detections --job UUID --merged.",
        responses={
            200: ClipPredictionSerializer(many=True),
            400: OpenApiResponse(description="A filter's value does not parse: {filter: [message]}."),
            404: OpenApiResponse(description="No job has this uuid."),
        },
    )
    @action(
        detail=True,
        # Rows, filters and cursor pages as /api/v1/clip-predictions/ (ClipPredictionViewSet), of one job.
        queryset=ClipPrediction.objects.values(*PREDICTION_ROW),
        filterset_class=WindowDetectionFilter,
        pagination_class=OldestFirstCursorPagination,
    )
    def detections(self, request, uuid=None) -> Response:
        job = get_object_or_404(InferenceJob.objects.only("pk"), uuid=uuid)
        self.check_object_permissions(request, job)
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset().filter(job=job)))
        context = {**self.get_serializer_context(), "threshold_set": chosen_threshold_set(request)}
        return self.get_paginated_response(self.get_serializer(page, many=True, context=context).data)

    def _detail(self, job: InferenceJob) -> dict:
        """The job as its detail answers it (start and retry read no body: their serializer is NoBodySerializer)."""
        return InferenceJobDetailSerializer(job, context=self.get_serializer_context()).data

    def _call(self, service, job: InferenceJob) -> InferenceJob:
        """Start, cancel or retry a job as the requesting user; a job in the wrong state is a 409."""
        try:
            return service(job, by=self.request.user)
        except ConfigError as error:
            raise as_api_error(error) from error
