"""Annotations in and out of a dataset through the API: Raven selection tables and Whombat's AOEF files.

POST sound-event-annotations/import/ (multipart: dataset <uuid>, format raven|aoef, file, species_column) imports
a Raven table, a zip of tables (folders kept: they tell recordings of the same name apart) or an AOEF file, all
or nothing, answering {added, already_there}; a problem is a 400 naming it (a table's file and line) and
nothing is written. Only staff or the dataset's creator may import (403 otherwise).
GET sound-event-annotations/export/?dataset=<uuid>&format=raven|aoef answers a zip of the per-recording tables,
or the AOEF file, to anyone logged in. The work is annotations.transfer's; here requests are checked and files
handed over.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from pathlib import Path

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import transfer
from annotations.errors import AnnotationError
from echoroo.models import Dataset


class ImportRequest(serializers.Serializer):
    dataset = serializers.UUIDField(help_text="The dataset's UUID: its recordings are matched by file name.")
    format = serializers.ChoiceField(choices=transfer.FORMATS, help_text="raven or aoef.")
    file = serializers.FileField(
        help_text="raven: a selection table (.txt) or a zip of tables (with BirdNET-Analyzer's .list.txt beside a "
        "combined table); aoef: the JSON file Whombat exported."
    )
    species_column = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="raven: the column naming the species (default: Species, Scientific Name, Common Name and "
        "Species Code, which must agree; else Annotation, Label or Class).",
    )


class ImportAnswer(serializers.Serializer):
    added = serializers.IntegerField()
    already_there = serializers.IntegerField(help_text="Rows skipped: the same box and species is there already.")


class ExportQuery(serializers.Serializer):
    dataset = serializers.UUIDField(help_text="The dataset's UUID.")
    format = serializers.ChoiceField(choices=transfer.FORMATS, help_text="raven (a zip of tables) or aoef.")


class ErrorsAsJSON(DefaultContentNegotiation):
    """Here `format` names a file format, not a renderer (DRF would answer ?format=raven with a 404): answers
    are files or JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _dataset(wanted) -> Dataset:
    found = Dataset.objects.filter(uuid=wanted).first()
    if found is None:
        raise AnnotationError({"dataset": f"no dataset with UUID {wanted}"})
    return found


def _file_name(name: str, default: str) -> str:
    """An uploaded file's own name (no folders), safe on any file system: a table's name may name its recording."""
    name = re.sub(r"[\x00-\x1f/\\:]", "_", Path(name.replace("\\", "/")).name).strip(". ")
    return name or default


class AnnotationImportView(APIView):
    parser_classes = [MultiPartParser, FormParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = ErrorsAsJSON

    @extend_schema(
        summary="Import annotations into a dataset: Raven selection tables or a Whombat AOEF file",
        request={"multipart/form-data": ImportRequest},
        responses={
            200: ImportAnswer,
            400: OpenApiResponse(description="{field or file:line: [message]}: what is wrong; nothing was written."),
            403: OpenApiResponse(description="Only staff or the dataset's creator may import into it."),
        },
    )
    def post(self, request: Request) -> Response:
        body = ImportRequest(data=request.data)
        body.is_valid(raise_exception=True)
        wanted = body.validated_data
        dataset = _dataset(wanted["dataset"])
        if not transfer.can_import(dataset, request.user):
            raise PermissionDenied("only staff or the dataset's creator may import annotations into it")
        upload = wanted["file"]
        with tempfile.TemporaryDirectory(prefix="echoroo-import-") as folder:
            folder = Path(folder)
            name = _file_name(upload.name or "", "annotations.json" if wanted["format"] == "aoef" else "table.txt")
            saved = folder / "upload" / name
            saved.parent.mkdir()
            with saved.open("wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
            path = saved
            if wanted["format"] == "raven" and zipfile.is_zipfile(saved):
                path = folder / "tables"
                path.mkdir()
                transfer.unpack_zip(saved, path)
            result = transfer.import_annotations(
                dataset,
                path,
                file_format=wanted["format"],
                by=request.user,
                species_column=wanted["species_column"].strip() or None,
            )
        return Response({"added": result.added, "already_there": result.already_there})


class AnnotationExportView(APIView):
    renderer_classes = [JSONRenderer]
    content_negotiation_class = ErrorsAsJSON

    @extend_schema(
        summary="Download a dataset's annotations: Raven selection tables (a zip) or a Whombat AOEF file",
        parameters=[ExportQuery],
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="raven: one table a recording"),
            (200, "application/json"): OpenApiResponse(OpenApiTypes.BINARY, description="aoef: the AOEF file"),
            400: OpenApiResponse(description="{field: [message]}: the input at fault and why."),
        },
    )
    def get(self, request: Request) -> FileResponse | Response:
        query = ExportQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        dataset = _dataset(wanted["dataset"])
        # The file answered is a temporary one: gone once the response is sent and closed.
        answer = tempfile.TemporaryFile()
        with tempfile.TemporaryDirectory(prefix="echoroo-export-") as folder:
            if wanted["format"] == "raven":
                summary = transfer.export_annotations(dataset, Path(folder), file_format="raven")
                with zipfile.ZipFile(answer, "w", zipfile.ZIP_DEFLATED) as archive:
                    for path in summary.files:
                        archive.write(path, path.relative_to(folder).as_posix())
                filename, content_type = f"{_file_name(dataset.name, 'dataset')}_raven.zip", "application/zip"
            else:
                path = Path(folder) / "annotations.json"
                transfer.export_annotations(dataset, path, file_format="aoef")
                answer.write(path.read_bytes())
                filename, content_type = f"{_file_name(dataset.name, 'dataset')}.aoef.json", "application/json"
        answer.seek(0)
        return FileResponse(answer, as_attachment=True, filename=filename, content_type=content_type)
