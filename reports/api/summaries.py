"""The reports API under /api/v1/: species summaries (species x site x day) and detection histories, as JSON or CSV.

Both read one job's window detections (reports.selection): ?job=, or the newest completed job on
?dataset=. Bad input is a 400 {field: [message]}. `format=csv` answers a CSV download instead of JSON.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from reports import history, summaries
from reports.selection import ReportError, Selection, selection_from

PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000
BAD_INPUT = OpenApiResponse(description="{field: [message]}: the input at fault and why.")


class CSVRenderer(BaseRenderer):
    """Lets ?format=csv through DRF's content negotiation; the views write the CSV themselves (errors are JSON)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return data.encode() if isinstance(data, str) else data


def parameter(name: str, description: str, kind=OpenApiTypes.STR, **extra) -> OpenApiParameter:
    return OpenApiParameter(name, kind, OpenApiParameter.QUERY, description=description, **extra)


SELECTION_PARAMETERS = [
    parameter(
        "dataset",
        "The dataset's UUID: its newest completed job's detections (unless job names one).",
        OpenApiTypes.UUID,
    ),
    parameter("job", "The job's UUID: its detections (on the dataset, given one).", OpenApiTypes.UUID),
    parameter("thresholds", "A threshold set's name: only detections at or above their species' threshold in it."),
    parameter("min_score", "Only detections scoring at least this (0 to 1).", OpenApiTypes.NUMBER),
    parameter("verified", "Only windows a reviewer judged correct for the species.", OpenApiTypes.BOOL),
    parameter("timezone", "The clock days and times are read on (IANA name; default the server's TIME_ZONE)."),
    parameter("format", "json (default) or csv (a download of every row).", enum=["json", "csv"]),
]


class ReportView(APIView):
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]

    def wants_csv(self, request: Request) -> bool:
        return request.accepted_renderer.format == "csv"

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        # An error asked for as CSV is answered as JSON {field: [message]}, as every other error of the API.
        renderer = getattr(self.request, "accepted_renderer", None)
        if renderer is not None and renderer.format == "csv":
            self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return response


def bad_input(error: ReportError) -> serializers.ValidationError:
    return serializers.ValidationError({error.field: [str(error)]})


def selection_json(selection: Selection) -> dict:
    return {
        "dataset": str(selection.dataset.uuid) if selection.dataset else None,
        "job": str(selection.job.uuid),
        "model_run": str(selection.job.model_run),
        "chosen": selection.chosen,
        "thresholds": selection.threshold_set.name if selection.threshold_set else None,
        "min_score": selection.min_score,
        "verified": selection.verified,
        "timezone": str(selection.zone),
    }


def csv_download(lines: Iterator[str], name: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slugify(name) or "report"}.csv"'
    return response


def page_number(request: Request, name: str, default: int, largest: int) -> int:
    text = request.query_params.get(name, "")
    if not text:
        return default
    try:
        number = int(text)
    except ValueError:
        raise ReportError(name, f"{text!r} is not a whole number") from None
    if not 1 <= number <= largest:
        raise ReportError(name, f"{number}: give a number from 1 to {largest}")
    return number


class SpeciesSummaryView(ReportView):
    @extend_schema(
        summary="Species x site x day: detections, recordings with one, best score and its clip, first and last time",
        description="One job's window detections by species, site and local day (recordings without a start time: "
        "day null, 'day unknown'). Filters: species (full label or scientific name), site (name), start and end "
        "(local dates, both included). sort: species, site, day, detections, recordings, max_score, first_time, "
        "last_time, '-' first for descending. Pages of page_size rows (default 50, at most 1000); format=csv "
        "downloads every row.",
        parameters=[
            *SELECTION_PARAMETERS,
            parameter("species", "A full label or a scientific name."),
            parameter("site", "A site's name."),
            parameter("start", "The first local date (YYYY-MM-DD).", OpenApiTypes.DATE),
            parameter("end", "The last local date (YYYY-MM-DD).", OpenApiTypes.DATE),
            parameter("sort", "A column, '-' first for descending (default species)."),
            parameter("page", "Page number, from 1.", OpenApiTypes.INT),
            parameter("page_size", f"Rows a page (default {PAGE_SIZE}, at most {MAX_PAGE_SIZE}).", OpenApiTypes.INT),
        ],
        responses={200: OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR, 400: BAD_INPUT},
    )
    def get(self, request: Request) -> Response | StreamingHttpResponse:
        try:
            selection = selection_from(request.query_params)
            filters = summaries.filters_from(request.query_params)
            size = page_number(request, "page_size", PAGE_SIZE, MAX_PAGE_SIZE)
            number = page_number(request, "page", 1, 10**9 // size)
        except ReportError as error:
            raise bad_input(error) from None
        if self.wants_csv(request):
            rows = summaries.summary_rows(selection, filters)
            return csv_download(summaries.csv_lines(rows), f"species-summary-{selection.job.uuid}")
        rows, total = summaries.summary_page(selection, filters, number=number, size=size)
        url = request.build_absolute_uri()
        return Response(
            {
                **selection_json(selection),
                "count": total,
                "next": replace_query_param(url, "page", number + 1) if number * size < total else None,
                "previous": replace_query_param(url, "page", number - 1) if number > 1 else None,
                "results": [_summary_json(row) for row in rows],
            }
        )


def _summary_json(row: summaries.SummaryRow) -> dict:
    scientific, common = row.names
    return {
        "species": row.species,
        "scientific_name": scientific,
        "common_name": common,
        "site": row.site,
        "day": row.day.isoformat() if row.day else None,
        "detections": row.detections,
        "recordings": row.recordings,
        "max_score": row.max_score,
        "max_score_clip": row.max_score_clip,
        "max_score_recording": row.recording_uuid,
        "max_score_recording_path": row.recording_path,
        "max_score_start_s": row.max_score_start_s,
        "first_time": row.first_time.isoformat(timespec="seconds") if row.first_time else None,
        "last_time": row.last_time.isoformat(timespec="seconds") if row.last_time else None,
    }


class DetectionHistoryView(ReportView):
    @extend_schema(
        summary="A species' detection history for occupancy models (site x occasion), its effort, or the long table",
        description="matrix=detections: 1 detected, 0 audio but no detection, null (NA in CSV) no audio; "
        "matrix=effort: minutes of audio (overlapping recordings counted once); matrix=long: a row per site and "
        "occasion with n_detections, max_conf and max_conf_clip. An occasion is occasion_days days (named by its "
        "first date), only the hours window of each day given hours (e.g. 4-9, or 20-6 past midnight). "
        "format=csv: the wide matrix with a header site,<first date>,… (what unmarked::unmarkedFrameOccu reads), "
        "or the long table.",
        parameters=[
            *SELECTION_PARAMETERS,
            parameter("species", "A scientific name or the model's full label (required).", required=True),
            parameter("occasion_days", "Days per occasion (default 1).", OpenApiTypes.INT),
            parameter("hours", "Only this window of each day: START-END hours, e.g. 4-9 or 04:30-09:00."),
            parameter(
                "start", "The first occasion's first day (default: the first day with audio).", OpenApiTypes.DATE
            ),
            parameter("end", "The last day (default: the last day with audio).", OpenApiTypes.DATE),
            parameter("matrix", "detections (default), effort or long.", enum=list(history.MATRICES)),
        ],
        responses={200: OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR, 400: BAD_INPUT},
    )
    def get(self, request: Request) -> Response | HttpResponse:
        params = request.query_params
        matrix = params.get("matrix") or "detections"
        try:
            if matrix not in history.MATRICES:
                raise ReportError("matrix", f"{matrix!r}: give one of {', '.join(history.MATRICES)}")
            occasions = history.occasions_from(
                days=params.get("occasion_days"),
                hours=params.get("hours"),
                start=params.get("start"),
                end=params.get("end"),
            )
            selection = selection_from(params)
            species = history.species_of(params.get("species") or "", selection)
            found = history.detection_history(selection, species, occasions)
        except ReportError as error:
            raise bad_input(error) from None
        if self.wants_csv(request):
            out = io.StringIO()
            history.write(found, matrix, out)
            response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
            name = f"{species.value.partition('_')[0]}-{matrix}"
            response["Content-Disposition"] = f'attachment; filename="{slugify(name)}.csv"'
            return response
        body = {
            **selection_json(selection),
            "species": species.value,
            "occasion_days": occasions.days,
            "hours": occasions.hours,
            "matrix": matrix,
            "occasions": [day.isoformat() for day in found.occasions],
            "sites": found.sites,
            "left_out": found.left_out,
        }
        if matrix == "long":
            keys = history.LONG_HEADER
            body["rows"] = [dict(zip(keys, _long_json(cell), strict=True)) for row in found.cells for cell in row]
        else:
            body["values"] = found.detection_matrix() if matrix == "detections" else found.effort_matrix()
        return Response(body)


def _long_json(cell: history.Cell) -> list:
    return [
        cell.site,
        cell.occasion.isoformat(),
        None if cell.value is None else cell.detections,
        cell.max_conf,
        cell.max_conf_clip,
    ]


urlpatterns = [
    path("species-summary/", SpeciesSummaryView.as_view(), name="species-summary"),
    path("detection-history/", DetectionHistoryView.as_view(), name="detection-history"),
]
