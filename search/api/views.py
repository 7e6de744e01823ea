"""The search endpoints (seed-design.md §5.2): by vector, clip or sound event, a clip's embeddings, similar clips,
query by audio.

Every endpoint needs a logged-in user. A search that cannot run as asked is a 400 naming the
field at fault ({field: [message]}); a clip in the URL that does not exist is a 404.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from echoroo.models import Clip, SoundEvent
from search import services
from search.api import serializers
from search.errors import SearchError
from search.uploads import MAX_UPLOAD_BYTES, MIB, SnippetWorkerUnavailable

BAD_SEARCH = OpenApiResponse(
    description="The search cannot run as asked: {field: [message]} (a vector of the wrong dimension, "
    "a model without embeddings, a clip without an embedding of the model...)."
)
NO_CLIP = OpenApiResponse(description="No clip has this uuid.")
NO_EMBEDDING = OpenApiResponse(description="No clip has this uuid, or it has no embedding of the model asked for.")
RESULTS = OpenApiResponse(
    serializers.SearchResultsSerializer, description="The clips or sound events found, most similar first."
)
# Room for the form's other fields beside the file, when refusing a body by its length alone.
FORM_FIELDS_BYTES = 64 * 1024


def searched(search, *, clip_in_url: bool = False, **arguments) -> Response:
    """Run a search service and answer its results, or a 400 naming the fields at fault.

    With the clip in the URL, a clip without the embedding asked for is a 404: the thing the URL
    names is not there.
    """
    try:
        results = search(**arguments)
    except SnippetWorkerUnavailable as error:
        return Response(
            {"detail": error.errors["file"]}, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "30"}
        )
    except SearchError as error:
        if clip_in_url and "clip_uuid" in error.errors:
            raise NotFound(error.errors["clip_uuid"]) from error
        raise ValidationError({field: [message] for field, message in error.errors.items()}) from error
    return Response(serializers.SearchResultsSerializer({"results": results}).data)


class SearchAPIView(generics.GenericAPIView):
    """A view over a search, not a queryset: no list filters or pages (the browsable API would look for them)."""

    permission_classes = [IsAuthenticated]
    filter_backends = []
    pagination_class = None


class EmbeddingSearchView(SearchAPIView):
    serializer_class = serializers.EmbeddingSearchSerializer

    @extend_schema(
        summary="Find the clips or sound events most similar to a vector, a clip or a sound event",
        description="Searches one model run's embeddings (the newest of `model_name` that has any) through its "
        "HNSW indexes: of clips, of sound events, or of both (`target`). Filters are applied during the index "
        "scan, so a filtered search still returns `limit` results when that many pass. Each result's `target` "
        "says whether it is a clip or a sound event (whose box, annotation and species it shows).",
        responses={200: RESULTS, 400: BAD_SEARCH},
    )
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        clip = sound_event = None
        if data["clip_uuid"] is not None:
            clip = Clip.objects.filter(uuid=data["clip_uuid"]).first()
            if clip is None:
                raise ValidationError({"clip_uuid": [f"no clip has the uuid {data['clip_uuid']}"]})
        if data["sound_event_uuid"] is not None:
            sound_event = SoundEvent.objects.filter(uuid=data["sound_event_uuid"]).first()
            if sound_event is None:
                raise ValidationError({"sound_event_uuid": [f"no sound event has the uuid {data['sound_event_uuid']}"]})
        return searched(
            services.search_similar,
            model_name=data["model_name"],
            model_version=data["model_version"],
            vector=data["embedding"],
            clip=clip,
            sound_event=sound_event,
            **serializer.search_options(),
        )


class ClipEmbeddingsView(SearchAPIView):
    serializer_class = serializers.ClipEmbeddingsSerializer

    @extend_schema(
        summary="A clip's embeddings, one per model run",
        responses={200: serializers.ClipEmbeddingsSerializer, 404: NO_CLIP},
    )
    def get(self, request, clip_uuid):
        clip = get_object_or_404(Clip.objects.select_related("recording"), uuid=clip_uuid)
        body = {"clip": clip, "recording": clip.recording.uuid, "embeddings": services.clip_embeddings(clip)}
        return Response(self.get_serializer(body).data)


class SimilarClipsView(SearchAPIView):
    serializer_class = serializers.SimilarClipsSerializer

    @extend_schema(
        summary="Find the clips most similar to a clip",
        description="By the clip's embedding of `model_name` (which may be left out when it has one only). "
        "The clip itself is never returned, nor by default the other clips of its recording.",
        responses={200: RESULTS, 400: BAD_SEARCH, 404: NO_EMBEDDING},
    )
    def post(self, request, clip_uuid):
        clip = get_object_or_404(Clip.objects.select_related("recording"), uuid=clip_uuid)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return searched(
            services.search_similar,
            clip_in_url=True,
            model_name=data["model_name"] or None,
            model_version=data["model_version"],
            clip=clip,
            **serializer.search_options(),
        )


class AudioSearchView(SearchAPIView):
    serializer_class = serializers.AudioSearchSerializer
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        summary="Find the clips most similar to an uploaded audio snippet",
        description="The snippet is decoded to mono at the model's rate, embedded with the model (by the search "
        "worker where it runs, else in the web process), and searched like a vector. Send it as multipart/form-data.",
        responses={
            200: RESULTS,
            400: BAD_SEARCH,
            503: OpenApiResponse(description="The search worker did not embed the snippet in time: {detail}."),
        },
    )
    def post(self, request):
        # Refuse an oversized body from its declared length, before it is read.
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > MAX_UPLOAD_BYTES + FORM_FIELDS_BYTES:
            raise ValidationError(
                {"file": [f"the request is {declared / MIB:.1f} MiB; a snippet may be {MAX_UPLOAD_BYTES / MIB:g} MiB"]}
            )
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return searched(
            services.search_by_audio,
            upload=data["file"],
            model_name=data["model_name"],
            model_version=data["model_version"],
            **serializer.search_options(),
        )
