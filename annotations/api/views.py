"""The sound event annotation API: list (filtered), read, draw, move, tag, delete, confirm a detection, history.

Anyone logged in may annotate; only an annotation's author or staff may change or delete it (403).
A bad box or an unknown species is a 400 naming the field, and writes nothing.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from annotations import services, species
from annotations.api import serializers
from annotations.api.filters import SoundEventAnnotationFilter
from annotations.models import AnnotationChange
from echoroo.api.pagination import NewestFirstCursorPagination
from echoroo.models import ClipPrediction, SoundEventPrediction
from inference.birdnet_formats import split_label


class SoundEventAnnotationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = services.with_tags()
    serializer_class = serializers.SoundEventAnnotationSerializer
    filterset_class = SoundEventAnnotationFilter
    pagination_class = NewestFirstCursorPagination
    permission_classes = [IsAuthenticated]
    lookup_field = "uuid"
    # Only a uuid reaches the view: anything else is the router's 404, never a failed uuid parse.
    lookup_value_regex = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"

    def perform_create(self, serializer):
        serializer.instance = services.create_annotation(
            serializer.validated_data["recording"],
            by=self.request.user,
            **serializer.changes(),
        )

    def perform_update(self, serializer):
        serializer.instance = services.update_annotation(
            serializer.instance, by=self.request.user, **serializer.changes()
        )

    def perform_destroy(self, annotation):
        services.delete_annotation(annotation, by=self.request.user)

    @extend_schema(
        summary="Confirm a detection as an annotation",
        description="Copies a merged detection's box into an annotation of its best-scored species (or the one "
        "named). Confirming the same detection and species again returns the same annotation.",
        request=serializers.ConfirmDetectionSerializer,
        responses={201: serializers.SoundEventAnnotationSerializer},
    )
    @action(detail=False, methods=["post"], serializer_class=serializers.ConfirmDetectionSerializer)
    def confirm(self, request):
        body = serializers.ConfirmDetectionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        wanted = body.validated_data
        if wanted["detection"] is not None:
            prediction = SoundEventPrediction.objects.filter(uuid=wanted["detection"]).first()
            if prediction is None:
                raise ValidationError({"detection": [f"no detection has the uuid {wanted['detection']}"]})
            annotation = services.confirm_detection(prediction, by=request.user, species=wanted["species"])
        else:
            window = ClipPrediction.objects.select_related("clip__recording").filter(uuid=wanted["clip_prediction"])
            if not window.exists():
                raise ValidationError({"clip_prediction": [f"no detection has the uuid {wanted['clip_prediction']}"]})
            annotation = services.confirm_window(window.get(), wanted["species"], by=request.user)
        annotation = services.with_tags().get(pk=annotation.pk)
        return Response(serializers.SoundEventAnnotationSerializer(annotation).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="An annotation's history: who created and changed it, and how",
        responses={200: serializers.AnnotationChangeSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def history(self, request, uuid=None):
        # Kept after a deletion: the history is how a deleted annotation is still accounted for.
        changes = AnnotationChange.objects.filter(annotation_uuid=uuid).select_related("by")
        if not changes:
            raise NotFound("no annotation has this uuid, nor ever had")
        return Response(serializers.AnnotationChangeSerializer(changes, many=True).data)


class SpeciesNamesView(generics.GenericAPIView):
    """Type-ahead for species: the model labels whose names start with (or hold) `q`."""

    serializer_class = serializers.SpeciesNameSerializer
    permission_classes = [IsAuthenticated]
    filter_backends = []
    pagination_class = None

    @extend_schema(
        summary="Species names for type-ahead",
        parameters=[OpenApiParameter("q", str, description="What the person typed (two letters or more).")],
        responses={200: serializers.SpeciesNameSerializer(many=True)},
    )
    def get(self, request):
        found = species.matching(request.query_params.get("q", ""))
        rows = []
        for label in found:
            scientific_name, common_name = split_label(label)
            rows.append({"label": label, "scientific_name": scientific_name, "common_name": common_name})
        return Response(self.get_serializer(rows, many=True).data)
