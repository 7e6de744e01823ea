"""The export download under /api/v1/: one job's detections as BirdNET-Analyzer writes them, streamed.

GET exports/detections/?job=<uuid> (or ?dataset=<uuid>: its newest completed job) with format=raven|csv|
kaleidoscope|audacity; combined=true answers the one combined file, else a zip of the per-recording files and
BirdNET_analysis_params.csv. Bad input is a 400 {field: [message]} before anything is read. The work is
inference.exports'; here the query is checked and the download streamed.
"""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inference import exports


class DetectionExportQuery(serializers.Serializer):
    job = serializers.UUIDField(required=False, help_text="The job's UUID: exactly its detections.")
    dataset = serializers.UUIDField(
        required=False, help_text="The dataset's UUID: the detections of its newest completed job."
    )
    model_run = serializers.CharField(
        required=False,
        help_text='With dataset: the newest completed job of this model run (id, UUID, "birdnet 2.4" or a name).',
    )
    format = serializers.ChoiceField(choices=exports.FORMATS, help_text="BirdNET-Analyzer's result format.")
    combined = serializers.BooleanField(
        default=False,
        help_text="true: one file for all recordings (not audacity); false (default): a zip of one file per "
        "recording and BirdNET_analysis_params.csv.",
    )
    columns = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text=f"csv only: extra columns, comma-separated, written in this order: {','.join(exports.COLUMNS)}.",
    )
    thresholds = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="A threshold set's name: only detections at or above their species' threshold in it.",
    )
    verified = serializers.BooleanField(
        default=False, help_text='Only windows a reviewer judged correct, with a last column "Reviewer".'
    )
    merged = serializers.BooleanField(default=False, help_text="The merged detections instead of the windows.")
    min_score = serializers.FloatField(
        default=0.0, min_value=0, max_value=1, help_text="Only detections scoring at least this."
    )
    timezone = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="The clock of the date and time columns (IANA name; default the server's TIME_ZONE).",
    )

    def validate(self, data: dict) -> dict:
        if ("job" in data) == ("dataset" in data):
            raise serializers.ValidationError({"job": ["give a job or a dataset (by UUID), one of them"]})
        if "model_run" in data and "job" in data:
            raise serializers.ValidationError({"model_run": ["a job has its model run: leave model_run out"]})
        return data


class ErrorsAsJSON(BaseContentNegotiation):
    """Here `format` names the export's format, not a renderer (DRF would answer 404 to ?format=raven):
    the download is written by the view, and errors are JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class DetectionExportView(APIView):
    renderer_classes = [JSONRenderer]
    content_negotiation_class = ErrorsAsJSON

    @extend_schema(
        summary="Download a job's detections as BirdNET-Analyzer writes them",
        parameters=[DetectionExportQuery],
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="combined=false: a zip"),
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.BINARY, description="combined raven table"),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="combined csv or kaleidoscope"),
            400: OpenApiResponse(description="{field: [message]}: the input at fault and why."),
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse | Response:
        query = DetectionExportQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        try:
            thresholds = wanted["thresholds"].strip()
            options = exports.ExportOptions(
                file_format=wanted["format"],
                combined=wanted["combined"],
                columns=exports.parse_columns(wanted["columns"]),
                min_score=wanted["min_score"],
                merged=wanted["merged"],
                threshold_set=exports.threshold_set_named(thresholds) if thresholds else None,
                verified=wanted["verified"],
                time_zone=wanted["timezone"],
            )
            scope = exports.scope_of(
                job=str(wanted["job"]) if "job" in wanted else None,
                dataset=str(wanted["dataset"]) if "dataset" in wanted else None,
                model_run=wanted.get("model_run"),
            )
        except exports.ExportError as error:
            return Response({error.field: [str(error)]}, status=400)
        found = exports.download(scope, options)
        response = StreamingHttpResponse(found.chunks, content_type=found.content_type)
        response["Content-Disposition"] = f'attachment; filename="{found.filename}"'
        return response


urlpatterns = [path("exports/detections/", DetectionExportView.as_view(), name="export-detections")]
