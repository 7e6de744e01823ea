"""When species were heard and when recorders were running, counted in SQL (GROUP BY local date and hour) for
the charts.

Which detections: a report selection's (reports.selection: one job's window detections, the newest completed
job on the dataset unless one is named), on one site or all. A detection happens at its recording's start plus
its window's offset (reports.selection.detected_at); recordings without a start time cannot be placed and are
left out, and counted so that a chart can say so. Dates and hours are those of the selection's time zone.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.db.models import Count, QuerySet
from django.db.models.functions import ExtractHour, TruncDate

from echoroo.models import Site
from reports.selection import Selection, detected_at, detections

RECORDING = "clip_prediction__clip__recording"
GRAINS = ("hour", "day")


def selected(selection: Selection, site: Site | None, species: str | None = None) -> QuerySet:
    """The selection's detections on the site (all sites: None), of one species (all: None)."""
    rows = detections(selection)
    if site is not None:
        rows = rows.filter(**{f"{RECORDING}__site": site})
    if species:
        rows = rows.filter(tag__value=species)
    return rows


def dated(rows: QuerySet) -> QuerySet:
    """The detections on recordings with a start time: those a chart by date or hour can place."""
    return rows.filter(**{f"{RECORDING}__recorded_at__isnull": False})


def placed(rows: QuerySet) -> QuerySet:
    """The dated detections with `at`, when their window began."""
    return dated(rows).annotate(at=detected_at())


def by_date_and_hour(rows: QuerySet, zone: dt.tzinfo) -> dict[tuple[dt.date, int], int]:
    """Detections by local (date, hour): one query."""
    counted = (
        placed(rows)
        .annotate(day=TruncDate("at", tzinfo=zone), hour=ExtractHour("at", tzinfo=zone))
        .values("day", "hour")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {(row["day"], row["hour"]): row["n"] for row in counted}


def unplaced(rows: QuerySet) -> int:
    """Detections on recordings without a start time, which no chart by date or hour can show."""
    return rows.filter(**{f"{RECORDING}__recorded_at__isnull": True}).count()


def top_species(rows: QuerySet, limit: int) -> list[tuple[str, int]]:
    """The species with the most detections among the rows, most first, with their counts."""
    counted = rows.values("tag__value").annotate(n=Count("id")).order_by("-n", "tag__value")[:limit]
    return [(row["tag__value"], row["n"]) for row in counted]


def species_by(rows: QuerySet, species: list[str], grain: str, zone: dt.tzinfo) -> dict[str, dict]:
    """Each species' detections by local hour of day (grain "hour") or date (grain "day"): one query."""
    if grain not in GRAINS:
        raise ValueError(f"grain is 'hour' or 'day', not {grain!r}")
    if not species:
        return {}
    when = ExtractHour("at", tzinfo=zone) if grain == "hour" else TruncDate("at", tzinfo=zone)
    counted = (
        placed(rows.filter(tag__value__in=species))
        .annotate(when=when)
        .values("tag__value", "when")
        .annotate(n=Count("id"))
        .order_by()
    )
    found: dict[str, dict] = {name: {} for name in species}
    for row in counted:
        found[row["tag__value"]][row["when"]] = row["n"]
    return found


# The seconds each site was recording in each local hour (or day): a site's recordings become intervals of local
# time, and intervals that overlap (two recorders at once) are merged so that their audio counts once; recordings
# at no site are taken as one more site. Each merged interval is cut at hour (or day) boundaries, so a recording
# over midnight counts on both dates. Local times are timestamps without a zone: an hour is always 3,600 s.
EFFORT_SQL = """
WITH local AS (
    SELECT r.site_id, r.recorded_at AT TIME ZONE %s AS starts,
           (r.recorded_at AT TIME ZONE %s) + r.duration * interval '1 second' AS ends
    FROM ({recordings}) r
    WHERE r.recorded_at IS NOT NULL
),
spans AS (
    SELECT site_id, lower(span) AS starts, upper(span) AS ends
    FROM (SELECT site_id, unnest(range_agg(tsrange(starts, ends))) AS span FROM local GROUP BY site_id) merged
)
SELECT {site} slot::date AS day, {hour} AS hour,
       sum(extract(epoch FROM least(ends, slot + interval '1 {grain}') - greatest(starts, slot)))::float8
FROM spans
CROSS JOIN LATERAL generate_series(date_trunc('{grain}', starts), ends - interval '1 microsecond',
                                   interval '1 {grain}') AS slot
GROUP BY {site} day, hour
"""


def effort(recordings: QuerySet, zone: dt.tzinfo, *, grain: str = "hour", by_site: bool = False) -> dict[tuple, float]:
    """Seconds of recording by local (date, hour), or (date, None) for grain "day", summed over sites (each site's
    overlapping recordings counted once); with by_site, keyed by (site id, date, hour): one query."""
    if grain not in GRAINS:
        raise ValueError(f"grain is 'hour' or 'day', not {grain!r}")
    inner, params = recordings.order_by().values("site_id", "recorded_at", "duration").query.sql_with_params()
    sql = EFFORT_SQL.format(
        recordings=inner,
        grain=grain,
        hour="extract(hour FROM slot)::int" if grain == "hour" else "NULL::int",
        site="site_id," if by_site else "",
    )
    zone_name = str(zone)
    with connection.cursor() as cursor:
        cursor.execute(sql, [zone_name, zone_name, *params])
        rows = cursor.fetchall()
    if by_site:
        return {(site_id, day, hour): seconds for site_id, day, hour, seconds in rows}
    return {(day, hour): seconds for day, hour, seconds in rows}


def unplaced_recordings(recordings: QuerySet) -> int:
    """Recordings without a start time, which no chart by date can show."""
    return recordings.filter(recorded_at__isnull=True).count()


def on_site(recordings: QuerySet, site: Site | None) -> QuerySet:
    """The recordings of the site (all of them: None)."""
    return recordings.filter(site=site) if site is not None else recordings
