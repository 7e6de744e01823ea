"""A job's validation endpoints, mixed into the jobs viewset: /api/v1/inference/jobs/{uuid}/review-sample/,
.../similar/ (verify by similarity) and .../evaluation/."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from echoroo.api.serializers import by_uuid
from echoroo.models import Clip, Tag
from inference.models import InferenceJob
from validation import sampling, services
from validation.api.serializers import SPECIES_HELP, SpeciesField
from validation.evaluation import evaluate_job
from validation.models import ThresholdSet, Verdict

MAX_NEIGHBOURS = 100
BAD_QUERY = OpenApiResponse(description="A query parameter is missing or wrong: {parameter: [message]}.")
NO_JOB = OpenApiResponse(description="No job has this uuid.")


class ReviewSampleQuerySerializer(serializers.Serializer):
    species = SpeciesField(help_text=SPECIES_HELP)
    per_bin = serializers.IntegerField(
        min_value=1, max_value=sampling.MAX_PER_BIN, default=sampling.DEFAULT_PER_BIN, help_text="Detections per bin."
    )
    seed = serializers.IntegerField(default=0, help_text="The same seed draws the same sample.")
    bins = serializers.IntegerField(
        min_value=1, max_value=50, default=sampling.DEFAULT_BINS, help_text="Equal score bins, job threshold to 1."
    )


class OwnVerdictSerializer(serializers.Serializer):
    uuid = serializers.UUIDField()
    verdict = serializers.ChoiceField(choices=Verdict.Value.choices)
    other_species = serializers.CharField(source="other_species.value", allow_null=True, default=None)


class ReviewItemSerializer(serializers.Serializer):
    """One detection to review (a validation.sampling.SampleItem), with your verdict on it if you gave one."""

    clip = serializers.UUIDField(source="clip_uuid")
    recording = serializers.UUIDField(source="recording_uuid")
    recording_path = serializers.CharField()
    start_time = serializers.FloatField()
    end_time = serializers.FloatField()
    species = serializers.CharField(help_text="The model's label.")
    score = serializers.FloatField()
    bin = serializers.IntegerField(help_text="0 = the lowest scores.")
    bin_low = serializers.FloatField()
    bin_high = serializers.FloatField()
    verdict = serializers.SerializerMethodField(help_text="Your verdict on this clip for this species; null if none.")

    @extend_schema_field(OwnVerdictSerializer(allow_null=True))
    def get_verdict(self, item: sampling.SampleItem) -> dict | None:
        verdict = self.context["verdicts"].get(item.clip_id)
        return None if verdict is None else OwnVerdictSerializer(verdict).data


class SampleBinSerializer(serializers.Serializer):
    bin = serializers.IntegerField()
    low = serializers.FloatField()
    high = serializers.FloatField()
    count = serializers.IntegerField(help_text="The job's detections of the species in the bin.")


class ReviewSampleSerializer(serializers.Serializer):
    species = serializers.CharField(help_text="The model's label.")
    seed = serializers.IntegerField()
    per_bin = serializers.IntegerField()
    bins = SampleBinSerializer(many=True)
    results = ReviewItemSerializer(many=True, help_text="Lowest bin first; in each bin, in the seed's order.")


class SimilarQuerySerializer(serializers.Serializer):
    clip = by_uuid(Clip.objects.all(), help_text="The clip just judged.")
    species = SpeciesField(help_text=SPECIES_HELP)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_NEIGHBOURS, default=services.NEIGHBOURS)


class SimilarDetectionSerializer(serializers.Serializer):
    clip = serializers.UUIDField()
    recording = serializers.UUIDField()
    recording_path = serializers.CharField()
    start_time = serializers.FloatField()
    end_time = serializers.FloatField()
    score = serializers.FloatField()
    similarity = serializers.FloatField(help_text="Cosine similarity of the embeddings, 1 = the same.")


class EvaluationQuerySerializer(serializers.Serializer):
    thresholds = serializers.SlugRelatedField(
        slug_field="name",
        queryset=ThresholdSet.objects.all(),
        required=False,
        help_text="The name of a threshold set: the precision is estimated at its thresholds (default: the job's).",
        error_messages={"does_not_exist": "no threshold set is named {value}; GET /api/v1/threshold-sets/ lists them"},
    )


class EvaluatedCalibrationSerializer(serializers.Serializer):
    n_correct = serializers.IntegerField()
    n_wrong = serializers.IntegerField()
    coefficients = serializers.ListField(child=serializers.FloatField(), help_text="[intercept, slope] on logit.")
    thresholds = serializers.DictField(child=serializers.FloatField(allow_null=True))


class VerdictCountsSerializer(serializers.Serializer):
    correct = serializers.IntegerField()
    wrong = serializers.IntegerField()
    unsure = serializers.IntegerField()
    other = serializers.IntegerField()


class EvaluatedBinSerializer(serializers.Serializer):
    low = serializers.FloatField()
    high = serializers.FloatField()
    detections = serializers.IntegerField()
    verdicts = VerdictCountsSerializer()
    share_correct = serializers.FloatField(
        allow_null=True, help_text="correct / (correct + wrong + other); null when none is judged."
    )


class SpeciesEvaluationSerializer(serializers.Serializer):
    species = serializers.CharField()
    detections = serializers.IntegerField()
    verdicts = VerdictCountsSerializer()
    bins = EvaluatedBinSerializer(many=True)
    calibration = EvaluatedCalibrationSerializer(allow_null=True, help_text="Null when it cannot be fitted.")
    calibration_problem = serializers.CharField(allow_null=True, help_text="Why there is no calibration.")
    threshold = serializers.FloatField(help_text="The threshold set's threshold for the species, or the job's.")
    detections_at_threshold = serializers.IntegerField()
    precision_at_threshold = serializers.FloatField(
        allow_null=True, help_text="The mean fitted P(correct) of the detections at or above the threshold."
    )


class JobEvaluationSerializer(serializers.Serializer):
    job = serializers.UUIDField(source="job.uuid")
    thresholds = serializers.CharField(source="threshold_set.name", allow_null=True, default=None)
    bin_edges = serializers.ListField(child=serializers.FloatField())
    species = SpeciesEvaluationSerializer(many=True, help_text="The species with verdicts, by label.")


class JobValidationActions:
    """review-sample, similar and evaluation: the job's detections as the validation loop reads them."""

    @extend_schema(
        summary="A stratified, seeded random sample of the job's detections of one species, to review",
        description="The score range from the job's threshold to 1 is cut into `bins` equal bins; up to `per_bin` "
        "detections are drawn from each. The same seed draws the same sample, and a larger per_bin extends it. "
        "`bins` counts the job's detections per bin (what is left to draw).",
        parameters=[ReviewSampleQuerySerializer],
        responses={200: ReviewSampleSerializer, 400: BAD_QUERY, 404: NO_JOB},
    )
    @action(detail=True, methods=["get"], url_path="review-sample", pagination_class=None)
    def review_sample(self, request, uuid=None) -> Response:
        job = self._validated_job(uuid)
        query = self._query(ReviewSampleQuerySerializer, job)
        species, bins = query["species"], query["bins"]
        items = sampling.review_sample(job, species, per_bin=query["per_bin"], seed=query["seed"], bins=bins)
        edges = sampling.bin_edges(float(job.settings.confidence_threshold), bins)
        counts = sampling.bin_counts(job, species, bins=bins)
        sample = {
            "species": species.value,
            "seed": query["seed"],
            "per_bin": query["per_bin"],
            "bins": [{"bin": i, "low": edges[i], "high": edges[i + 1], "count": n} for i, n in enumerate(counts)],
            "results": items,
        }
        context = {"verdicts": own_verdicts(request.user, species, [item.clip_id for item in items])}
        return Response(ReviewSampleSerializer(sample, context=context).data)

    @extend_schema(
        summary="The job's detections of a species most like a clip: candidates for one verdict in bulk",
        description="Nearest first by the model's embeddings (cosine); the clips you have judged for the species "
        "are left out. Empty when the clip has no embedding of the job's model. Give the verdict to the ones "
        "you confirm with POST /api/v1/verdicts/bulk/.",
        parameters=[SimilarQuerySerializer],
        responses={200: SimilarDetectionSerializer(many=True), 400: BAD_QUERY, 404: NO_JOB},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def similar(self, request, uuid=None) -> Response:
        job = self._validated_job(uuid)
        query = self._query(SimilarQuerySerializer, job)
        if not job.model_run.embedding_dimension:
            return Response([])
        found = services.similar_detections(job, query["clip"], query["species"], limit=query["limit"], by=request.user)
        return Response(SimilarDetectionSerializer(found, many=True).data)

    @extend_schema(
        summary="What the verdicts say about the job, species by species",
        description="For each species with verdicts on the job's detections: the verdict counts, the share correct "
        "in each of the job's score bins, the calibration's thresholds when it can be fitted, and the estimated "
        "precision (mean fitted P(correct)) of its detections at or above the chosen threshold: the threshold "
        "set's for the species (its default for species it does not name), or the job's own threshold.",
        parameters=[EvaluationQuerySerializer],
        responses={200: JobEvaluationSerializer, 400: BAD_QUERY, 404: NO_JOB},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def evaluation(self, request, uuid=None) -> Response:
        job = self._validated_job(uuid)
        query = self._query(EvaluationQuerySerializer, job)
        return Response(JobEvaluationSerializer(evaluate_job(job, query.get("thresholds"))).data)

    def _validated_job(self, uuid) -> InferenceJob:
        job = get_object_or_404(InferenceJob.objects.select_related("model_run"), uuid=uuid)
        self.check_object_permissions(self.request, job)
        return job

    def _query(self, serializer_class: type[serializers.Serializer], job: InferenceJob) -> dict:
        query = serializer_class(data=self.request.query_params, context={"job": job})
        query.is_valid(raise_exception=True)
        return query.validated_data


def own_verdicts(reviewer, species: Tag, clip_ids: list[int]) -> dict[int, Verdict]:
    """`reviewer`'s verdicts on these clips for the species, by clip id."""
    verdicts = Verdict.objects.filter(reviewer=reviewer, species=species, clip_id__in=clip_ids)
    return {verdict.clip_id: verdict for verdict in verdicts.select_related("other_species")}
