"""Detection histories for occupancy models: site x occasion matrices of 1 / 0 / NA, the effort behind each
cell, and the long table, computed in the database.

An occasion is N consecutive days (local dates in the selection's time zone, the first occasion
starting on `start` or on the first day with audio), optionally only a window of hours each day
("4-9": 04:00 to 09:00; "20-6" runs past midnight and belongs to the day it starts). A cell is 1 when
the job detected the species there then, 0 when there was audio but no detection, NA when no audio
was recorded at that site in that occasion (or the job did not finish the recordings that were).

Effort is real listening time: each site's recordings (the ones the job finished) become intervals
from recorded_at to recorded_at + duration; overlapping intervals are merged, so audio two recorders
made at once counts once; each merged interval is cut at day and window boundaries, so a recording
over midnight counts on both days. Recordings without a start time or a site cannot be placed and
are left out (counted in `left_out`).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TextIO

from django.db import connection
from django.db.models import Count, F, Q

from echoroo.models import Site, Tag
from reports.selection import ReportError, Selection, detected_at, detections, parse_date
from validation.services import ValidationError, species_tag

MINUTES_A_DAY = 24 * 60
MAX_OCCASION_DAYS = 366
# A matrix wider than this is a mistake (a typo in a date, one-day occasions over decades).
MAX_OCCASIONS = 5000
MATRICES = ("detections", "effort", "long")
LONG_HEADER = ("site", "occasion", "n_detections", "max_conf", "max_conf_clip")
HOURS = re.compile(r"^\s*(\d{1,2})(?::(\d{2}))?\s*-\s*(\d{1,2})(?::(\d{2}))?\s*$")


@dataclass(frozen=True)
class Occasions:
    """How time is cut into occasions: `days` days each, the window of minutes after midnight
    [window_start_min, window_start_min + window_min) each day, from `start` to `end` (local dates)."""

    days: int = 1
    window_start_min: int = 0
    window_min: int = MINUTES_A_DAY
    start: dt.date | None = None
    end: dt.date | None = None

    @property
    def hours(self) -> str | None:
        """The window as given ("4-9", "20:30-6"), None for whole days."""
        if self.window_min == MINUTES_A_DAY:
            return None
        return f"{_clock(self.window_start_min)}-{_clock((self.window_start_min + self.window_min) % MINUTES_A_DAY)}"


@dataclass(frozen=True)
class Cell:
    site: str
    occasion: dt.date
    effort_min: float
    detections: int
    max_conf: float | None
    max_conf_clip: str | None

    @property
    def value(self) -> int | None:
        """1 detected, 0 listened and not detected, None (NA) not listened."""
        if self.detections:
            return 1
        return 0 if self.effort_min > 0 else None


@dataclass
class DetectionHistory:
    species: Tag
    selection: Selection
    occasions_spec: Occasions
    sites: list[str]
    occasions: list[dt.date]
    cells: list[list[Cell]]  # [site][occasion]
    # Recordings of the selection that could not be placed: {"no start time": n, "no site": n}.
    left_out: dict[str, int] = field(default_factory=dict)

    def detection_matrix(self) -> list[list[int | None]]:
        return [[cell.value for cell in row] for row in self.cells]

    def effort_matrix(self) -> list[list[float]]:
        return [[round(cell.effort_min, 3) for cell in row] for row in self.cells]


def parse_hours(text: str | None, field_name: str = "hours") -> tuple[int, int]:
    """ "4-9", "04:30-09:00", "20-6" (past midnight) -> (start, length) in minutes; none given: the whole day."""
    text = (text or "").strip()
    if not text:
        return 0, MINUTES_A_DAY
    match = HOURS.match(text)
    if not match:
        raise ReportError(field_name, f"{text!r}: give a window of hours as START-END, e.g. 4-9 or 04:30-09:00")
    start_h, start_m, end_h, end_m = (int(part or 0) for part in match.groups())
    if start_h > 24 or end_h > 24 or start_m > 59 or end_m > 59:
        raise ReportError(field_name, f"{text!r}: hours run from 0 to 24 and minutes from 0 to 59")
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if start > MINUTES_A_DAY or end > MINUTES_A_DAY:
        raise ReportError(field_name, f"{text!r}: a time of day is at most 24:00")
    length = (end - start) % MINUTES_A_DAY or (MINUTES_A_DAY if {start, end} == {0, MINUTES_A_DAY} else 0)
    if length == 0:
        raise ReportError(field_name, f"{text!r}: the window starts where it ends; give two different times")
    return start % MINUTES_A_DAY, length


def occasions_from(
    *, days: int | str | None = 1, hours: str | None = None, start: str | None = None, end: str | None = None
) -> Occasions:
    """Occasions from what a user gives (strings from a query string or a command line); ReportError names the
    field at fault."""
    try:
        days = int(days) if days not in (None, "") else 1
    except (TypeError, ValueError):
        raise ReportError("occasion_days", f"{days!r} is not a whole number of days") from None
    if not 1 <= days <= MAX_OCCASION_DAYS:
        raise ReportError("occasion_days", f"{days}: give from 1 to {MAX_OCCASION_DAYS} days per occasion")
    window_start, window = parse_hours(hours)
    first, last = parse_date(start, "start"), parse_date(end, "end")
    if first and last and last < first:
        raise ReportError("end", f"{last} is before the start, {first}")
    if first and last and ((last - first).days // days + 1) > MAX_OCCASIONS:
        raise ReportError(
            "occasion_days", f"{first} to {last} makes more than {MAX_OCCASIONS} occasions: use more days"
        )
    return Occasions(days, window_start, window, first, last)


def species_of(name: str, selection: Selection) -> Tag:
    try:
        return species_tag(name, job=selection.job)
    except ValidationError as error:
        raise ReportError("species", error.errors["species"]) from None


def detection_history(selection: Selection, species: Tag, occasions: Occasions) -> DetectionHistory:
    """The species' detection history at every site of the selection's dataset (sites by name, occasions in
    time order), with effort and the best detection of each cell: two aggregating queries."""
    placed = selection.recordings.filter(site__isnull=False, recorded_at__isnull=False)
    effort, first, last = _effort(selection, placed, occasions)
    if first is None:
        raise ReportError(
            "start" if occasions.start or occasions.end else "dataset",
            f"no audio with a start time at a site between {occasions.start or 'the start'} and "
            f"{occasions.end or 'the end'}{' in the hours ' + occasions.hours if occasions.hours else ''}: "
            "nothing to build a history from",
        )
    count = (last - first).days // occasions.days + 1
    if count > MAX_OCCASIONS:
        raise ReportError("occasion_days", f"{first} to {last} makes {count} occasions: use more days per occasion")
    found = _detections(selection, species, occasions, first, last)
    sites = list(Site.objects.filter(dataset=selection.dataset).order_by("name").values_list("id", "name"))
    dates = [first + dt.timedelta(days=i * occasions.days) for i in range(count)]
    cells = []
    for site_id, site_name in sites:
        row = []
        for index, day in enumerate(dates):
            detected = found.get((site_id, index), (0, None, None))
            row.append(Cell(site_name, day, effort.get((site_id, index), 0.0), *detected))
        cells.append(row)
    return DetectionHistory(
        species, selection, occasions, [name for _, name in sites], dates, cells, _left_out(selection)
    )


def _effort(selection: Selection, placed, occasions: Occasions) -> tuple[dict, dt.date | None, dt.date | None]:
    """{(site_id, occasion index): minutes of audio}, and the first and last day of the occasions."""
    spans, span_params = placed.values("site_id", "recorded_at", "duration").order_by().query.sql_with_params()
    zone = str(selection.zone)
    window_from, window_to = occasions.window_start_min, occasions.window_start_min + occasions.window_min
    sql = f"""
        WITH merged AS (
            SELECT site_id, unnest(range_agg(tstzrange(recorded_at, recorded_at + duration * interval '1 second')))
                AS span
            FROM ({spans}) recordings GROUP BY site_id
        ),
        pieces AS (
            SELECT merged.site_id, day::date AS day,
                merged.span * tstzrange((day + %s * interval '1 minute') AT TIME ZONE %s,
                                        (day + %s * interval '1 minute') AT TIME ZONE %s) AS piece
            FROM merged CROSS JOIN LATERAL generate_series(
                ((lower(merged.span) AT TIME ZONE %s)::date - 1)::timestamp,
                ((upper(merged.span) AT TIME ZONE %s)::date)::timestamp,
                interval '1 day'
            ) AS day
        ),
        daily AS (
            SELECT site_id, day, sum(extract(epoch FROM upper(piece) - lower(piece))) / 60 AS minutes
            FROM pieces WHERE NOT isempty(piece) GROUP BY site_id, day
        ),
        bounds AS (
            SELECT coalesce(%s::date, min(day)) AS first, coalesce(%s::date, max(day)) AS last FROM daily
        )
        SELECT daily.site_id, (daily.day - bounds.first) / %s AS occasion, sum(daily.minutes), bounds.first, bounds.last
        FROM bounds LEFT JOIN daily ON daily.day BETWEEN bounds.first AND bounds.last
        GROUP BY daily.site_id, occasion, bounds.first, bounds.last
    """
    params = (*span_params, window_from, zone, window_to, zone, zone, zone)
    params += (occasions.start, occasions.end, occasions.days)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    first, last = (rows[0][3], rows[0][4]) if rows else (None, None)
    if first is None or last is None or last < first:
        return {}, None, None
    return {(site_id, index): minutes for site_id, index, minutes, _, _ in rows if site_id is not None}, first, last


def _detections(selection: Selection, species: Tag, occasions: Occasions, first: dt.date, last: dt.date) -> dict:
    """{(site_id, occasion index): (detections, best score, its clip's UUID)} of the species.

    A job's detections are on the recordings it finished and no others (it stores a recording's rows
    when it finishes it), so they need no semi-join with them: one would cost a nested loop over
    every recording (the planner cannot tell how few rows the join leaves)."""
    found, found_params = (
        detections(selection)
        .filter(
            tag=species,
            clip_prediction__clip__recording__site__isnull=False,
            clip_prediction__clip__recording__recorded_at__isnull=False,
        )
        .values("score", site_id=F("clip_prediction__clip__recording__site_id"), detected_at=detected_at())
        .annotate(clip_uuid=F("clip_prediction__clip__uuid"))
        .order_by()
        .query.sql_with_params()
    )
    # The species' detections are read first (MATERIALIZED): the filters on computed days below, pushed into
    # that join, would make the planner expect a few rows and walk every window of the job by index.
    # Shifted so that the window starts at midnight: its day is the date, and it is in the window when
    # it falls within the window's length of that midnight.
    sql = f"""
        WITH found AS MATERIALIZED ({found}),
        shifted AS (
            SELECT site_id, score, clip_uuid, (detected_at AT TIME ZONE %s) - %s * interval '1 minute' AS moment
            FROM found
        ),
        windowed AS (
            SELECT site_id, score, clip_uuid, moment::date AS day FROM shifted
            WHERE moment - date_trunc('day', moment) < %s * interval '1 minute'
        )
        SELECT site_id, (day - %s::date) / %s AS occasion, count(*), max(score),
            (array_agg(clip_uuid ORDER BY score DESC, clip_uuid))[1]
        FROM windowed WHERE day BETWEEN %s AND %s
        GROUP BY site_id, occasion
    """
    params = (*found_params, str(selection.zone), occasions.window_start_min, occasions.window_min)
    params += (first, occasions.days, first, last)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {(site_id, index): (n, score, str(clip)) for site_id, index, n, score, clip in cursor.fetchall()}


def _left_out(selection: Selection) -> dict[str, int]:
    counts = selection.recordings.aggregate(
        no_start_time=Count("id", filter=Q(recorded_at__isnull=True)),
        no_site=Count("id", filter=Q(site__isnull=True, recorded_at__isnull=False)),
    )
    return {"no start time": counts["no_start_time"], "no site": counts["no_site"]}


# --- Writing ---------------------------------------------------------------------------------------------


def write_matrix(history: DetectionHistory, matrix: str, out: TextIO) -> None:
    """The wide matrix (detections: 1/0/NA; effort: minutes), a row per site, a column per occasion named by its
    first date: what unmarked::unmarkedFrameOccu reads (y = the detections, obsCovs = the effort)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["site", *(day.isoformat() for day in history.occasions)])
    for site, row in zip(history.sites, history.cells, strict=True):
        if matrix == "effort":
            writer.writerow([site, *(minutes_text(cell.effort_min) for cell in row)])
        else:
            writer.writerow([site, *("NA" if cell.value is None else cell.value for cell in row)])


def write_long(history: DetectionHistory, out: TextIO) -> None:
    """A row per site and occasion: the detections (NA where no audio), the best score and its clip's UUID."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LONG_HEADER)
    for row in history.cells:
        for cell in row:
            writer.writerow(long_fields(cell))


def long_fields(cell: Cell) -> list:
    return [
        cell.site,
        cell.occasion.isoformat(),
        "NA" if cell.value is None else cell.detections,
        "" if cell.max_conf is None else f"{cell.max_conf:.4f}",
        cell.max_conf_clip or "",
    ]


def write(history: DetectionHistory, matrix: str, out: TextIO) -> None:
    if matrix not in MATRICES:
        raise ReportError("matrix", f"{matrix!r}: give one of {', '.join(MATRICES)}")
    if matrix == "long":
        write_long(history, out)
    else:
        write_matrix(history, matrix, out)


def minutes_text(minutes: float) -> str:
    """Minutes to 3 decimals, without trailing zeros: 60, 59.5, 0.017."""
    return f"{minutes:.3f}".rstrip("0").rstrip(".")


def _clock(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours}:{rest:02}" if rest else str(hours)
