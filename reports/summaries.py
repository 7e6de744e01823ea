"""Species summaries: a job's window detections by species, site and day, aggregated in the database.

One row per species x site x day: the detections (window detections, ClipPredictionTag rows), the
recordings with at least one, the best score and the clip that has it, and the first and last time of
day a detection starts. The day and times are those of the selection's time zone (reports.selection);
detections on recordings without a start time have no day: they make rows of their own, "day unknown"
(day empty), which a date filter leaves out. Detections on recordings without a site make rows whose
site is empty.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from django.contrib.postgres.aggregates import ArrayAgg
from django.db import connection
from django.db.models import Count, F, Func, IntegerField, Max, Min, Q, QuerySet
from django.db.models.functions import TruncDate, TruncTime

from inference.birdnet_formats import split_label
from reports.selection import ReportError, Selection, detected_at, detections, parse_date

# What a summary sorts by ("-" first for descending), and the SQL it sorts on (in the queries below).
SORTS = {
    "species": "tag.value",
    "site": "site.name",
    "day": "groups.day",
    "detections": "groups.detections",
    "recordings": "groups.recordings",
    "max_score": "groups.max_score",
    "first_time": "groups.first_time",
    "last_time": "groups.last_time",
}
DEFAULT_SORT = "species"
# After the sort asked for, rows are always in this order: pages never shuffle.
TIE_BREAK = ("species", "site", "day")
CSV_HEADER = (
    "species",
    "scientific_name",
    "common_name",
    "site",
    "day",
    "detections",
    "recordings",
    "max_score",
    "max_score_clip",
    "max_score_recording",
    "max_score_start_s",
    "first_time",
    "last_time",
)
CSV_CHUNK_ROWS = 5000


@dataclass(frozen=True)
class SummaryFilters:
    """What a summary keeps and how it sorts: a species (full label or scientific name), a site (by name), days
    from `start` to `end` (both included, local dates), and a sort key (SORTS, "-" for descending)."""

    species: str = ""
    site: str = ""
    start: dt.date | None = None
    end: dt.date | None = None
    sort: str = DEFAULT_SORT


@dataclass(frozen=True)
class SummaryRow:
    species: str
    site: str | None
    day: dt.date | None
    detections: int
    recordings: int
    max_score: float
    first_time: dt.time | None
    last_time: dt.time | None
    max_score_clip: str
    max_score_start_s: float
    recording_uuid: str
    recording_path: str

    @property
    def names(self) -> tuple[str, str]:
        """(scientific name, common name); a bare class name (Perch) is both."""
        return split_label(self.species)


def filters_from(params: Mapping[str, str]) -> SummaryFilters:
    """The filters a query string asks for: species, site, start, end, sort; ReportError names the one at fault."""
    sort = (params.get("sort") or DEFAULT_SORT).strip()
    if sort.removeprefix("-") not in SORTS:
        raise ReportError("sort", f"{sort!r}: sort by one of {', '.join(SORTS)} (with - first for descending)")
    start, end = parse_date(params.get("start"), "start"), parse_date(params.get("end"), "end")
    if start and end and end < start:
        raise ReportError("end", f"{end} is before the start, {start}")
    return SummaryFilters(
        species=(params.get("species") or "").strip(),
        site=(params.get("site") or "").strip(),
        start=start,
        end=end,
        sort=sort,
    )


def _detections(selection: Selection, filters: SummaryFilters) -> QuerySet:
    """The selection's detections that pass the filters, each with its local day and time of day."""
    at = detected_at()
    rows = detections(selection).annotate(
        day=TruncDate(at, tzinfo=selection.zone), time_of_day=TruncTime(at, tzinfo=selection.zone)
    )
    if filters.species:
        rows = rows.filter(Q(tag__value=filters.species) | Q(tag__value__startswith=f"{filters.species}_"))
    if filters.site:
        rows = rows.filter(clip_prediction__clip__recording__site__name=filters.site)
    if filters.start:
        rows = rows.filter(day__gte=filters.start)
    if filters.end:
        rows = rows.filter(day__lte=filters.end)
    return rows


def grouped_sql(selection: Selection, filters: SummaryFilters, *, best_clip: bool = False) -> tuple[str, tuple]:
    """The aggregation by ids (tag_id, site_id, day) that every summary query wraps; with `best_clip`, the id of
    the clip of each group's best score too (an ordered aggregate: it costs a sort of each group's rows)."""
    figures = {
        "detections": Count("id"),
        "recordings": Count("clip_prediction__clip__recording_id", distinct=True),
        "max_score": Max("score"),
        "first_time": Min("time_of_day"),
        "last_time": Max("time_of_day"),
    }
    if best_clip:
        figures["best_clip_id"] = Func(
            ArrayAgg("clip_prediction__clip_id", order_by=("-score", "clip_prediction__clip_id")),
            template="(%(expressions)s)[1]",
            output_field=IntegerField(),
        )
    grouped = (
        _detections(selection, filters)
        .values("tag_id", "day", site_id=F("clip_prediction__clip__recording__site_id"))
        .annotate(**figures)
        .order_by()
    )
    return grouped.query.sql_with_params()


def _order_by(sort: str) -> str:
    key = sort.removeprefix("-")
    direction = "DESC" if sort.startswith("-") else "ASC"
    keys = [f"{SORTS[key]} {direction} NULLS LAST"] + [f"{SORTS[k]} ASC NULLS LAST" for k in TIE_BREAK if k != key]
    return ", ".join(keys)


def page_sql(selection: Selection, filters: SummaryFilters, *, number: int, size: int) -> tuple[str, tuple]:
    """A page of named groups in order, each with the number of groups in all pages."""
    grouped, params = grouped_sql(selection, filters)
    sql = f"""
        SELECT groups.tag_id, groups.site_id, tag.value, site.name, groups.day, groups.detections, groups.recordings,
               groups.max_score, groups.first_time, groups.last_time, count(*) OVER ()
        FROM ({grouped}) groups
        JOIN echoroo_tag tag ON tag.id = groups.tag_id
        LEFT JOIN echoroo_site site ON site.id = groups.site_id
        ORDER BY {_order_by(filters.sort)}
        LIMIT {int(size)} OFFSET {int((number - 1) * size)}
    """
    return sql, params


def summary_page(selection: Selection, filters: SummaryFilters, *, number: int, size: int) -> tuple[list, int]:
    """One page of the summary (numbered from 1) and the number of rows in all pages: one aggregation, and one
    look-up of the page's best clips."""
    with connection.cursor() as cursor:
        cursor.execute(*page_sql(selection, filters, number=number, size=size))
        found = cursor.fetchall()
        if not found:
            grouped, params = grouped_sql(selection, filters)
            cursor.execute(f"SELECT count(*) FROM ({grouped}) groups", params)
            return [], cursor.fetchone()[0]
    best = _best_clips(selection, [(tag_id, site_id, values[2], values[5]) for tag_id, site_id, *values in found])
    rows = [SummaryRow(*values[:-1], *best[(tag_id, site_id, values[2])]) for tag_id, site_id, *values in found]
    return rows, found[0][-1]


def _best_clips(selection: Selection, groups: list[tuple]) -> dict[tuple, tuple]:
    """{(tag_id, site_id, day): (clip UUID, start s, recording UUID, path)} of the best score of each group given as
    (tag_id, site_id, day, max score), the first clip where several share it: the detections of those species at
    those very scores (the (tag, score) index finds them), one a group, not a sort of every group's rows."""
    at_best = Q()
    for tag_id, site_id, day, score in groups:
        at_best |= Q(tag_id=tag_id, score=score) & _is("site_id", site_id) & _is("day", day)
    candidates = (
        _detections(selection, SummaryFilters())
        .annotate(site_id=F("clip_prediction__clip__recording__site_id"), clip_id=F("clip_prediction__clip_id"))
        .filter(at_best)
        .order_by("tag_id", "site_id", "day", "clip_id")
        .distinct("tag_id", "site_id", "day")
        .values_list(
            "tag_id",
            "site_id",
            "day",
            "clip_prediction__clip__uuid",
            "clip_prediction__clip__start_time",
            "clip_prediction__clip__recording__uuid",
            "clip_prediction__clip__recording__path",
        )
    )
    return {
        (tag_id, site_id, day): (str(clip_uuid), start_s, str(recording_uuid), path)
        for tag_id, site_id, day, clip_uuid, start_s, recording_uuid, path in candidates
    }


def _is(name: str, value) -> Q:
    return Q(**{f"{name}__isnull": True}) if value is None else Q(**{name: value})


def csv_lines(rows: Iterator[SummaryRow]) -> Iterator[str]:
    """The summary as CSV text in pieces of about 64 kB (CSV_HEADER; day and times empty where the day is
    unknown)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        writer.writerow(csv_fields(row))
        if out.tell() > 64 * 1024:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def summary_rows(selection: Selection, filters: SummaryFilters) -> Iterator[SummaryRow]:
    """Every row of the summary, streamed from a server-side cursor."""
    grouped, params = grouped_sql(selection, filters, best_clip=True)
    sql = f"""
        SELECT tag.value, site.name, groups.day, groups.detections, groups.recordings, groups.max_score,
               groups.first_time, groups.last_time, clip.uuid, clip.start_time, recording.uuid, recording.path
        FROM ({grouped}) groups
        JOIN echoroo_tag tag ON tag.id = groups.tag_id
        LEFT JOIN echoroo_site site ON site.id = groups.site_id
        JOIN echoroo_clip clip ON clip.id = groups.best_clip_id
        JOIN echoroo_recording recording ON recording.id = clip.recording_id
        ORDER BY {_order_by(filters.sort)}
    """
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(CSV_CHUNK_ROWS):
            for *shown, clip_uuid, start_s, recording_uuid, path in chunk:
                yield SummaryRow(*shown, str(clip_uuid), start_s, str(recording_uuid), path)


def csv_fields(row: SummaryRow) -> list:
    scientific, common = row.names
    return [
        row.species,
        scientific,
        common,
        row.site or "",
        row.day.isoformat() if row.day else "",
        row.detections,
        row.recordings,
        f"{row.max_score:.4f}",
        row.max_score_clip,
        row.recording_path,
        round(row.max_score_start_s, 4),
        _time(row.first_time),
        _time(row.last_time),
    ]


def _time(value: dt.time | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""
