"""Browsing datasets and their recordings: the queries behind /datasets/, a dataset's page and the recording page's
previous/next links, each table one query however many rows it covers."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, fields

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, JSONObject
from django.http import QueryDict
from django.utils import timezone

from echoroo.models import Dataset, ModelRun, Recording, Site
from inference.models import InferenceJob, JobRecording

RECORDINGS_PER_PAGE = 50
# ?model= for the recordings that no job has finished yet.
NOT_ANALYSED = "none"
# ?site= for the recordings that have no site.
NO_SITE = "none"
# A start-time cursor is "<ISO time>~<path>" ("~<path>" without a time): ISO times never hold a "~".
CURSOR_SEPARATOR = "~"


def jobs_on(dataset: Dataset) -> QuerySet:
    """The jobs that ran on the dataset or on one of its recordings."""
    return InferenceJob.objects.filter(Q(dataset=dataset) | Q(recording__dataset=dataset))


def latest_job() -> Subquery:
    """The newest job on the dataset (OuterRef) or one of its recordings, as JSON: uuid, status, model, version,
    at."""
    return Subquery(
        InferenceJob.objects.filter(Q(dataset=OuterRef("pk")) | Q(recording__dataset=OuterRef("pk")))
        .order_by("-created_at", "-pk")
        .values(
            json=JSONObject(
                uuid="uuid", status="status", model="model_run__name", version="model_run__version", at="created_at"
            )
        )[:1]
    )


def datasets_with_totals() -> QuerySet:
    """Datasets with their sites, recordings, hours, first and last start time and latest job (one query)."""
    sites = Site.objects.filter(dataset=OuterRef("pk")).order_by().values("dataset").annotate(n=Count("pk"))
    # The sites' count is a bare subquery (None without sites): wrapped in Coalesce, Django would put it in the
    # GROUP BY, and PostgreSQL would run it once per recording.
    return Dataset.objects.annotate(
        sites_count=Subquery(sites.values("n"), output_field=IntegerField()),
        recordings_count=Count("recordings"),
        hours=Coalesce(Sum("recordings__duration"), 0.0) / 3600,
        first_start=Min("recordings__recorded_at"),
        last_start=Max("recordings__recorded_at"),
        latest_job=latest_job(),
    ).order_by("name")


def with_latest_job(datasets) -> list[Dataset]:
    """The datasets, each latest_job a dict with its time as a datetime (JSON gives it as text), sites_count 0
    rather than None."""
    datasets = list(datasets)
    for dataset in datasets:
        dataset.sites_count = getattr(dataset, "sites_count", None) or 0
        if dataset.latest_job:
            dataset.latest_job["at"] = dt.datetime.fromisoformat(dataset.latest_job["at"])
    return datasets


def dataset_overview(dataset_uuid) -> tuple[Dataset, list[Site], Totals]:
    """A dataset with its totals and latest job, its sites with theirs, and the totals of its recordings at no site
    (three queries, one pass over the recordings). Dataset.DoesNotExist when there is none with this UUID."""
    dataset = Dataset.objects.annotate(latest_job=latest_job()).get(uuid=dataset_uuid)
    sites, unsited, everything = site_totals(dataset)
    for name, value in vars(everything).items():
        setattr(dataset, name, value)
    dataset.sites_count = len(sites)
    return with_latest_job([dataset])[0], sites, unsited


@dataclass
class Totals:
    """What a dataset or site holds: recordings, hours of audio, and the first and last start time."""

    recordings_count: int = 0
    hours: float = 0.0
    first_start: dt.datetime | None = None
    last_start: dt.datetime | None = None


def site_totals(dataset: Dataset) -> tuple[list[Site], Totals, Totals]:
    """The dataset's sites, each with its totals, the totals of its recordings at no site, and of all of them: one
    pass over the recordings (GROUP BY site) and one query for the sites."""
    by_site = {
        row["site_id"]: Totals(row["n"], (row["seconds"] or 0.0) / 3600, row["first"], row["last"])
        for row in Recording.objects.filter(dataset=dataset)
        .order_by()
        .values("site_id")
        .annotate(n=Count("pk"), seconds=Sum("duration"), first=Min("recorded_at"), last=Max("recorded_at"))
    }
    sites = list(Site.objects.filter(dataset=dataset).order_by("name"))
    for site in sites:
        totals = by_site.get(site.pk, Totals())
        site.recordings_count, site.hours = totals.recordings_count, totals.hours
        site.first_start, site.last_start = totals.first_start, totals.last_start
    starts = [totals.first_start for totals in by_site.values() if totals.first_start]
    ends = [totals.last_start for totals in by_site.values() if totals.last_start]
    everything = Totals(
        sum(totals.recordings_count for totals in by_site.values()),
        sum(totals.hours for totals in by_site.values()),
        min(starts, default=None),
        max(ends, default=None),
    )
    return sites, by_site.get(None, Totals()), everything


def model_runs_on(dataset: Dataset) -> QuerySet:
    """The model runs of the jobs on the dataset or its recordings: the choices of the ?model= filter."""
    return ModelRun.objects.filter(pk__in=jobs_on(dataset).values("model_run_id")).order_by("name", "version")


@dataclass(frozen=True)
class RecordingFilters:
    """What the recordings table is narrowed to and how it is ordered, as the query string gives it.

    Values that do not parse are dropped (and listed in `ignored`), so a stale link still shows recordings.
    """

    site: str = ""  # a site's uuid, or NO_SITE
    model: str = ""  # a model run's uuid: recordings a job of it finished; NOT_ANALYSED: those no job finished
    date_from: str = ""  # YYYY-MM-DD, in the time zone of the pages
    date_to: str = ""
    path: str = ""  # part of the path, any case
    order: str = "path"  # or "time": by start time (recordings without one last), then path

    PARAMS = {"site": "site", "model": "model", "date_from": "from", "date_to": "to", "path": "q", "order": "order"}

    @classmethod
    def from_query(cls, query: QueryDict) -> tuple[RecordingFilters, list[str]]:
        given = {name: query.get(param, "").strip() for name, param in cls.PARAMS.items()}
        ignored = []
        for name in ("site", "model"):
            if given[name] and given[name] != NO_SITE and not is_uuid(given[name]):
                ignored.append(cls.PARAMS[name])
                given[name] = ""
        for name in ("date_from", "date_to"):
            if given[name] and parse_date(given[name]) is None:
                ignored.append(cls.PARAMS[name])
                given[name] = ""
        if given["order"] not in ("path", "time"):
            if given["order"]:
                ignored.append("order")
            given["order"] = "path"
        return cls(**given), ignored

    def params(self) -> dict[str, str]:
        """The query string's parameters that say these filters (the default order left out)."""
        given = {self.PARAMS[f.name]: getattr(self, f.name) for f in fields(self)}
        return {param: value for param, value in given.items() if value and not (param == "order" and value == "path")}

    @property
    def narrowed(self) -> bool:
        return bool(self.site or self.model or self.date_from or self.date_to or self.path)

    def condition(self) -> Q:
        """The filters as a condition on Recording."""
        condition = Q()
        if self.site == NO_SITE:
            condition &= Q(site__isnull=True)
        elif self.site:
            condition &= Q(site__uuid=self.site)
        if self.model == NOT_ANALYSED:
            condition &= ~Exists(JobRecording.objects.filter(recording=OuterRef("pk"), status=JobRecording.Status.DONE))
        elif self.model:
            condition &= Exists(
                JobRecording.objects.filter(
                    recording=OuterRef("pk"), status=JobRecording.Status.DONE, job__model_run__uuid=self.model
                )
            )
        zone = timezone.get_current_timezone()
        if self.date_from:
            start = dt.datetime.combine(parse_date(self.date_from), dt.time(), zone)
            condition &= Q(recorded_at__gte=start)
        if self.date_to:
            end = dt.datetime.combine(parse_date(self.date_to) + dt.timedelta(days=1), dt.time(), zone)
            condition &= Q(recorded_at__lt=end)
        if self.path:
            condition &= Q(path__icontains=self.path)
        return condition


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def parse_date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


# --- Keyset pages: a page starts after (or ends before) a recording, never at an OFFSET -------------------------


def cursor_of(recording: Recording, order: str) -> str:
    """Where a page starts after or ends before this recording, in the given order."""
    if order == "path":
        return recording.path
    at = recording.recorded_at.isoformat() if recording.recorded_at else ""
    return f"{at}{CURSOR_SEPARATOR}{recording.path}"


def parse_cursor(cursor: str, order: str) -> tuple[dt.datetime | None, str] | None:
    """(start time, path) of a cursor; None when it does not parse (the page then starts at the beginning)."""
    if order == "path":
        return None, cursor
    at, separator, path = cursor.partition(CURSOR_SEPARATOR)
    if not separator:
        return None
    if not at:
        return None, path
    try:
        parsed = dt.datetime.fromisoformat(at)
    except ValueError:
        return None
    return (parsed, path) if parsed.tzinfo else None


def after(key: tuple[dt.datetime | None, str], order: str) -> Q:
    """Recordings after the key in the order (start times ascending, those without one last, then path)."""
    at, path = key
    if order == "path":
        return Q(path__gt=path)
    if at is None:
        return Q(recorded_at__isnull=True, path__gt=path)
    return Q(recorded_at__gt=at) | Q(recorded_at=at, path__gt=path) | Q(recorded_at__isnull=True)


def before(key: tuple[dt.datetime | None, str], order: str) -> Q:
    """Recordings before the key in the order."""
    at, path = key
    if order == "path":
        return Q(path__lt=path)
    if at is None:
        return Q(recorded_at__isnull=False) | Q(recorded_at__isnull=True, path__lt=path)
    return Q(recorded_at__lt=at) | Q(recorded_at=at, path__lt=path)


def ordering(order: str, *, backwards: bool = False) -> list:
    if order == "path":
        return ["-path"] if backwards else ["path"]
    if backwards:
        return [F("recorded_at").desc(nulls_first=True), "-path"]
    return [F("recorded_at").asc(nulls_last=True), "path"]


def recordings_with_models(recordings: QuerySet) -> QuerySet:
    """Recordings with their site and, per model run that a job ran on them, its name, version and status (done if
    any job of it finished the recording, else the newest job's): one query for a page."""
    runs = (
        JobRecording.objects.filter(recording=OuterRef("pk"))
        .order_by(
            "job__model_run_id",
            Case(When(status=JobRecording.Status.DONE, then=0), default=1),
            "-job__created_at",
            "-job_id",
        )
        .distinct("job__model_run_id")
        .values(json=JSONObject(name="job__model_run__name", version="job__model_run__version", status="status"))
    )
    return recordings.select_related("site").annotate(model_runs=ArraySubquery(runs))


@dataclass
class RecordingPage:
    """One page of recordings and the cursors of the pages around it."""

    recordings: list[Recording]
    total: int
    previous_cursor: str | None  # the page before ends before this (None: this is the first)
    next_cursor: str | None  # the page after starts after this (None: this is the last)
    is_last: bool


def recording_page(
    dataset: Dataset,
    filters: RecordingFilters,
    *,
    start_after: str = "",
    end_before: str = "",
    last: bool = False,
    size: int = RECORDINGS_PER_PAGE,
) -> RecordingPage:
    """The page of the dataset's recordings matching the filters that starts after a cursor, ends before one, is
    the last, or else is the first: two queries (the rows, and how many match), at any depth."""
    order = filters.order
    matching = Recording.objects.filter(dataset=dataset).filter(filters.condition())
    key_after = parse_cursor(start_after, order) if start_after else None
    key_before = parse_cursor(end_before, order) if end_before and key_after is None else None
    backwards = last or key_before is not None
    rows = matching
    if key_after is not None:
        rows = rows.filter(after(key_after, order))
    elif key_before is not None:
        rows = rows.filter(before(key_before, order))
    found = list(recordings_with_models(rows).order_by(*ordering(order, backwards=backwards))[: size + 1])
    more = len(found) > size
    found = found[:size]
    if backwards:
        found.reverse()
        has_previous, has_next = more, key_before is not None
    else:
        has_previous, has_next = key_after is not None, more
    return RecordingPage(
        recordings=found,
        total=matching.count(),
        previous_cursor=cursor_of(found[0], order) if found and has_previous else None,
        next_cursor=cursor_of(found[-1], order) if found and has_next else None,
        is_last=not has_next,
    )


def neighbours(recording: Recording, filters: RecordingFilters) -> tuple[Recording | None, Recording | None]:
    """The recordings before and after this one in its dataset, in the filters' order and among those they keep
    (one query; each with its uuid, path and start time only)."""
    order = filters.order
    key = (recording.recorded_at, recording.path)
    matching = Recording.objects.filter(dataset_id=recording.dataset_id).filter(filters.condition())
    columns = ("uuid", "path", "recorded_at")
    previous = matching.filter(before(key, order)).order_by(*ordering(order, backwards=True))
    following = matching.filter(after(key, order)).order_by(*ordering(order))
    found = {
        side: Recording(uuid=uuid_, path=path, recorded_at=at, dataset_id=recording.dataset_id)
        for uuid_, path, at, side in previous.annotate(side=Value(-1))
        .values_list(*columns, "side")[:1]
        .union(following.annotate(side=Value(1)).values_list(*columns, "side")[:1], all=True)
    }
    return found.get(-1), found.get(1)
