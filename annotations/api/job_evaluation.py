"""A job against the sound event annotations, mixed into the jobs viewset.

/api/v1/inference/jobs/{uuid}/evaluation/annotations/ (/evaluation/ itself is what the verdicts
say: validation.api.jobs).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from annotations.evaluation import MATCH_TEXT, evaluate_against_annotations
from annotations.models import SoundEventAnnotation
from inference.models import InferenceJob


class AnnotationEvaluationQuerySerializer(serializers.Serializer):
    source = serializers.ListField(
        child=serializers.ChoiceField(choices=SoundEventAnnotation.Source.values),
        required=False,
        help_text="Count only annotations from these sources (repeat the parameter); all of them if none is given.",
    )
    annotator = serializers.CharField(required=False, help_text="Count only this user's annotations (a username).")
    min_overlap = serializers.FloatField(
        min_value=0,
        max_value=1,
        default=0.0,
        help_text="The least overlap in time that matches, as a fraction of the shorter of the two spans; "
        "0: any overlap longer than zero.",
    )

    def validate_annotator(self, username: str) -> int:
        user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
        if user is None:
            raise serializers.ValidationError(f"no user is named {username!r}")
        return user.pk


class AtThresholdSerializer(serializers.Serializer):
    threshold = serializers.FloatField()
    detections = serializers.IntegerField(
        help_text="The job's detections of the species scoring the threshold or more."
    )
    tp = serializers.IntegerField(source="true_positives", help_text="Detections matching an annotation.")
    fp = serializers.IntegerField(source="false_positives", help_text="Detections matching none.")
    fn = serializers.IntegerField(source="false_negatives", help_text="Annotations no detection matches.")
    precision = serializers.FloatField(allow_null=True, help_text="tp / detections; null without detections.")
    recall = serializers.FloatField(allow_null=True, help_text="Annotations found / annotations; null without any.")


class AnnotationCalibrationSerializer(serializers.Serializer):
    matched = serializers.IntegerField(source="n_correct")
    unmatched = serializers.IntegerField(source="n_wrong")
    coefficients = serializers.ListField(
        child=serializers.FloatField(), help_text="[intercept, slope] on logit(score)."
    )
    thresholds = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        help_text='The score where the fitted P(match) reaches each target ("0.9", "0.95", "0.99").',
    )


class SpeciesAgainstAnnotationsSerializer(serializers.Serializer):
    label = serializers.CharField(source="species", help_text="The model's label.")
    scientific_name = serializers.CharField()
    common_name = serializers.CharField()
    annotations = serializers.IntegerField()
    by_threshold = AtThresholdSerializer(many=True)
    calibration = AnnotationCalibrationSerializer(allow_null=True)
    calibration_problem = serializers.CharField(allow_null=True)


class AnnotationEvaluationSerializer(serializers.Serializer):
    job = serializers.UUIDField(source="job.uuid")
    job_threshold = serializers.FloatField()
    thresholds = serializers.ListField(child=serializers.FloatField())
    match = serializers.SerializerMethodField()
    min_overlap = serializers.FloatField()
    sources = serializers.ListField(child=serializers.CharField(), allow_null=True)
    recordings = serializers.IntegerField(help_text="The job's finished recordings holding annotations.")
    annotations = serializers.IntegerField(help_text="Their annotations with a species.")
    species = SpeciesAgainstAnnotationsSerializer(many=True)

    def get_match(self, evaluation) -> str:
        extra = f", by at least {evaluation.min_overlap:g} of the shorter span" if evaluation.min_overlap > 0 else ""
        return MATCH_TEXT + extra


class JobAnnotationEvaluationActions:
    """evaluation/annotations: the job's merged detections against the annotations of its recordings."""

    @extend_schema(
        summary="The job's detections against the sound event annotations of its recordings, per species and threshold",
        description="Only the job's finished recordings that hold annotations count (taken as annotated in full). "
        "A detection matches an annotation of the same species on the same recording when their times overlap "
        "(touching is not overlapping; with min_overlap, by that fraction of the shorter span). tp: detections "
        "matching one or more annotations (once each); fp: detections matching none; fn: annotations no detection "
        "matches (one found by several is found once). At the job's threshold and each multiple of 0.05 above it "
        "to 0.95; species annotated or detected there. calibration: validation's logistic fit of P(match | score) "
        "from the detections' (score, matched) outcomes, when there are 10 of each.",
        parameters=[AnnotationEvaluationQuerySerializer],
        responses={
            200: AnnotationEvaluationSerializer,
            400: OpenApiResponse(description="A query parameter is wrong: {parameter: [message]}."),
            404: OpenApiResponse(description="No job has this uuid."),
        },
    )
    @action(detail=True, methods=["get"], url_path="evaluation/annotations", pagination_class=None)
    def annotation_evaluation(self, request, uuid=None) -> Response:
        job = get_object_or_404(InferenceJob.objects.select_related("model_run"), uuid=uuid)
        self.check_object_permissions(request, job)
        query = AnnotationEvaluationQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        evaluation = evaluate_against_annotations(
            job,
            sources=query.validated_data.get("source"),
            annotator_id=query.validated_data.get("annotator"),
            min_overlap=query.validated_data["min_overlap"],
        )
        return Response(AnnotationEvaluationSerializer(evaluation).data)
