"""The classifiers endpoints: label clips, list a label set's examples, train, apply, and find what to label next.

Any logged-in user may label, train and apply; only a label's labeller or staff may change or clear it, and only
staff or a job's creator may cancel it.
Errors: a 400 {field: [message]} (too few labels names the counts missing), a 409 for a state.
"""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from classifiers import labels, services
from classifiers.api import filters
from classifiers.api.serializers import (
    ClassifierDetailSerializer,
    ClassifierJobSerializer,
    ClassifierSerializer,
    LabelClipsSerializer,
    LabelExampleSerializer,
    LabelSetSerializer,
    UncertainSerializer,
)
from classifiers.errors import ClassifierError
from classifiers.labels import Polarity
from classifiers.models import Classifier, ClassifierJob
from echoroo.api.serializers import NoBodySerializer

UUID_PATTERN = "[0-9a-fA-F-]{32,36}"
VALIDATION_ERROR = OpenApiResponse(description="{field: [message]}")
CONFLICT = OpenApiResponse(description='Not in a state that allows this: {"status": [message]}.')
FORBIDDEN = OpenApiResponse(description="Only staff or the job's creator may do this.")
NOT_YOURS = OpenApiResponse(description="Some clips are labelled by someone else: only they or staff change those.")


@extend_schema_view(
    list=extend_schema(
        summary="The label sets, with their counts of positive and negative clips",
        responses={200: LabelSetSerializer(many=True)},
    ),
    create=extend_schema(
        summary="Label clips positive or negative for a label set (or clear their labels)",
        description="Each clip gets a ClipAnnotation by you, now, tagged label = '<label>:<polarity>'; its earlier "
        "label in the set is replaced. A label someone else set is theirs (or staff's) to change or clear: "
        "giving it again unchanged leaves it theirs, changing or clearing it is a 403 naming the clips, and "
        "nothing is written. Answers with the set's counts.",
        request=LabelClipsSerializer,
        responses={200: LabelSetSerializer, 400: VALIDATION_ERROR, 403: NOT_YOURS},
    ),
)
class LabelViewSet(viewsets.ViewSet):
    permission_classes = [IsAuthenticated]

    def list(self, request) -> Response:
        return Response(LabelSetSerializer([asdict(s) for s in labels.label_sets()], many=True).data)

    def create(self, request) -> Response:
        given = LabelClipsSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        counts = services.label_clips(
            given.validated_data["clips"],
            label=given.validated_data["label"],
            polarity=given.validated_data["polarity"],
            by=request.user,
        )
        return Response(LabelSetSerializer(asdict(counts)).data, status=status.HTTP_200_OK)


class ExamplePagination(PageNumberPagination):
    # A label set is hundreds or thousands of clips: page numbers and a count are cheap.
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000


class ExampleQuerySerializer(serializers.Serializer):
    label = serializers.CharField(help_text="The label set.")
    polarity = serializers.ChoiceField(choices=Polarity.choices, required=False, help_text="Only these examples.")


@extend_schema_view(
    list=extend_schema(
        summary="A label set's examples, latest first: each clip, its label, who labelled it and when",
        parameters=[ExampleQuerySerializer],
    )
)
class ExampleViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = LabelExampleSerializer
    permission_classes = [IsAuthenticated]
    pagination_class = ExamplePagination

    def get_queryset(self):
        query = ExampleQuerySerializer(data=self.request.query_params)
        if getattr(self, "swagger_fake_view", False):
            return labels.label_examples("").none()
        query.is_valid(raise_exception=True)
        label = labels.clean_label(query.validated_data["label"])
        return labels.label_examples(label, query.validated_data.get("polarity")).order_by("-created_at", "-id")


@extend_schema_view(
    list=extend_schema(summary="List classifiers, newest first"),
    retrieve=extend_schema(summary="A classifier's metrics and its latest apply job"),
    create=extend_schema(
        summary="Train a label set's next classifier",
        description="Logistic regression on the stored embeddings of the labelled clips; needs at least 5 positive "
        "and 5 negative examples (the error says how many are missing). Its metrics are measured on held-out "
        "recordings (about 25 % of the examples, whole recordings, never windows of a recording it was trained "
        'on); with positives or negatives from fewer than 3 recordings there are none, and `metrics["not_measured"]` '
        "says why. The weights are then refitted on every example.",
        responses={201: ClassifierDetailSerializer, 400: VALIDATION_ERROR},
    ),
)
class ClassifierViewSet(
    mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet
):
    queryset = Classifier.objects.select_related("source", "model_run", "created_by")
    serializer_class = ClassifierSerializer
    filterset_class = filters.ClassifierFilter
    permission_classes = [IsAuthenticated]
    lookup_field = "uuid"
    lookup_value_regex = UUID_PATTERN

    def get_serializer_class(self) -> type[serializers.Serializer]:
        if self.action == "apply":  # (reads no body: the browsable API shows a bare button)
            return NoBodySerializer
        return ClassifierSerializer if self.action == "list" else ClassifierDetailSerializer

    def perform_create(self, serializer: ClassifierSerializer) -> None:
        serializer.save(created_by=self.request.user)

    @extend_schema(
        summary="Apply the classifier to every embedding of its source run",
        description="Starts a job that scores them in batches (no audio is decoded) and stores one clip "
        "prediction per embedding under the classifier's run, tagged species = the label.",
        request=None,
        responses={202: ClassifierJobSerializer, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def apply(self, request, uuid=None) -> Response:
        job = services.start_apply(self.get_object(), by=request.user)
        return Response(ClassifierJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="The unlabelled clips it is least sure about (scores closest to 0.5): what to label next",
        parameters=[
            OpenApiParameter("limit", int, description=f"How many clips, 1 to {services.MAX_UNCERTAIN} (default 20).")
        ],
        responses={200: UncertainSerializer, 400: VALIDATION_ERROR},
    )
    @action(detail=True, methods=["get"])
    def uncertain(self, request, uuid=None) -> Response:
        try:
            limit = int(request.query_params.get("limit", 20))
        except ValueError:
            raise ClassifierError({"limit": "a whole number"}) from None
        found = services.uncertain_clips(self.get_object(), limit=limit)
        return Response(UncertainSerializer(found).data)


@extend_schema_view(
    list=extend_schema(summary="List apply jobs, newest first"),
    retrieve=extend_schema(summary="An apply job's status and progress"),
    destroy=extend_schema(
        summary="Cancel an apply job",
        description="It stops between batches; the predictions stored so far stay. Answers 200 with the job.",
        request=None,
        responses={200: ClassifierJobSerializer, 403: FORBIDDEN},
    ),
)
class ClassifierJobViewSet(
    mixins.RetrieveModelMixin, mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    queryset = ClassifierJob.objects.select_related("classifier", "created_by")
    serializer_class = ClassifierJobSerializer
    filterset_class = filters.ClassifierJobFilter
    permission_classes = [IsAuthenticated]
    lookup_field = "uuid"
    lookup_value_regex = UUID_PATTERN

    def destroy(self, request, *args, **kwargs) -> Response:
        job = services.cancel_apply(self.get_object(), by=request.user)
        return Response(self.get_serializer(job).data, status=status.HTTP_200_OK)
