"""Which detections a report reads, and when they happened.

A report reads one job's window detections (ClipPredictionTag rows of the job: each job's results are
its own): the job named, else the newest completed job on the dataset (inference.exports.scope_of
decides, as for exports). On top of the job's own threshold: a minimum score, a threshold set
(validation.ThresholdSet), and `verified` (only windows a reviewer judged correct for the species).

A detection happens at its recording's start (recorded_at) plus its window's start; its day and time of
day are read on the clock of one time zone (settings.TIME_ZONE unless a report names another):
recordings store instants, not the zone of the recorder that made them.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import DateTimeField, Exists, F, Func, OuterRef, QuerySet

from echoroo.models import Dataset, Recording
from inference.exports import ExportError, scope_of, threshold_set_named
from inference.models import InferenceJob
from inference.queries import job_predictions
from validation.models import ThresholdSet, Verdict

# Dates a report accepts: far enough apart for any survey, near enough that date arithmetic never overflows.
FIRST_YEAR, LAST_YEAR = 1900, 2200
TRUE_WORDS, FALSE_WORDS = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


class ReportError(ExportError):
    """Bad input to a report: `field` names the input at fault (a 400 in the API, a CommandError in a command).

    An export's error with its own name: reports catch theirs, and turn the exports' into theirs."""


@dataclass(frozen=True)
class Selection:
    """One job's detections as a report reads them."""

    job: InferenceJob
    # The recordings the job finished (in the dataset, given one): where it listened.
    recordings: QuerySet[Recording]
    dataset: Dataset | None = None
    threshold_set: ThresholdSet | None = None
    min_score: float | None = None
    verified: bool = False
    zone: dt.tzinfo = dt.UTC
    # Why this job, when none was named: "the newest completed job on dataset 'Marsh 2026'".
    chosen: str = ""


def select(
    *,
    dataset: Dataset | None = None,
    job: str | None = None,
    thresholds: str | None = None,
    min_score: float | None = None,
    verified: bool = False,
    zone: dt.tzinfo | None = None,
) -> Selection:
    """The detections of the job named (by UUID; on the dataset, given one) or of the newest completed job on the
    dataset; ReportError names the field at fault."""
    if dataset is None and not job:
        raise ReportError("dataset", "give a dataset or a job")
    try:
        scope = scope_of(job=job) if job else scope_of(dataset=dataset.name)
        threshold_set = threshold_set_named(thresholds) if thresholds else None
    except ExportError as error:
        raise ReportError(error.field, str(error)) from None
    found = scope.job
    if dataset is not None and job:
        on = found.dataset_id or Recording.objects.filter(pk=found.recording_id).values_list("dataset_id", flat=True)[0]
        if on != dataset.pk:
            raise ReportError("job", f"job {found.uuid} ran on another dataset than {dataset.name!r}")
    if dataset is None:
        dataset = found.dataset or found.recording.dataset
    return Selection(
        job=found,
        recordings=scope.recordings.filter(dataset=dataset),
        dataset=dataset,
        threshold_set=threshold_set,
        min_score=min_score,
        verified=verified,
        zone=zone or default_zone(),
        chosen=scope.chosen,
    )


def detections(selection: Selection) -> QuerySet:
    """The selection's window detections (ClipPredictionTag rows of its job) on the recordings it finished."""
    rows = job_predictions(selection.job, selection.threshold_set)
    if selection.min_score is not None:
        rows = rows.filter(score__gte=selection.min_score)
    if selection.verified:
        correct = Verdict.objects.filter(
            clip_id=OuterRef("clip_prediction__clip_id"), species_id=OuterRef("tag_id"), verdict=Verdict.Value.CORRECT
        )
        rows = rows.filter(Exists(correct))
    return rows


def detected_at() -> Func:
    """When a detection (a ClipPredictionTag row) happened: its recording's start plus its window's start."""
    return Func(
        F("clip_prediction__clip__recording__recorded_at"),
        F("clip_prediction__clip__start_time"),
        template="(%(expressions)s)",
        arg_joiner=" + interval '1 second' * ",
        output_field=DateTimeField(),
    )


def default_zone() -> dt.tzinfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


# --- Reading the inputs (one way for pages, the API and commands) ----------------------------------------


def parse_zone(text: str | None, field: str = "timezone") -> dt.tzinfo:
    """A time zone by its IANA name (Europe/Berlin); settings.TIME_ZONE when none is given."""
    text = (text or "").strip()
    if not text:
        return default_zone()
    unknown = ReportError(field, f"{text!r} is not a time zone; give an IANA name such as Europe/Berlin")
    try:
        zone = zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones ("America")
        raise unknown from None
    # The database reads days on this clock too: it must know the name as well (its zone files are its own).
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT now() AT TIME ZONE %s", [text])
    except DatabaseError:
        raise unknown from None
    return zone


def parse_date(text: str | None, field: str) -> dt.date | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise ReportError(field, f"{text!r} is not a date; write YYYY-MM-DD") from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ReportError(field, f"{text}: give a date from {FIRST_YEAR} to {LAST_YEAR}")
    return day


def parse_score(text: str | float | None, field: str) -> float | None:
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        score = float(text)
    except ValueError:
        raise ReportError(field, f"{text!r} is not a number; give a score from 0 to 1") from None
    if not (math.isfinite(score) and 0 <= score <= 1):
        raise ReportError(field, f"{text!r}: give a score from 0 to 1")
    return score


def parse_flag(text: str | bool | None, field: str) -> bool:
    if isinstance(text, bool):
        return text
    word = (text or "").strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ReportError(field, f"{text!r}: give true or false")


def parse_uuid(text: str | None, field: str) -> str | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ReportError(field, f"{text!r} is not a UUID") from None


def dataset_by_uuid(text: str | None, field: str = "dataset") -> Dataset | None:
    wanted = parse_uuid(text, field)
    if wanted is None:
        return None
    found = Dataset.objects.filter(uuid=wanted).first()
    if found is None:
        raise ReportError(field, f"no dataset with UUID {wanted}")
    return found


def dataset_by_name(name: str, field: str = "dataset") -> Dataset:
    found = Dataset.objects.filter(name=name).first()
    if found is None:
        names = ", ".join(repr(n) for n in Dataset.objects.order_by("name").values_list("name", flat=True)[:20])
        raise ReportError(field, f"no dataset named {name!r}; the datasets are: {names or 'none yet'}")
    return found


def reject_nul(params: Mapping[str, str]) -> None:
    """A NUL character in any parameter is a ReportError naming it (PostgreSQL takes none in text)."""
    lists = params.lists() if hasattr(params, "lists") else ((name, [value]) for name, value in params.items())
    for name, values in lists:
        if any("\x00" in str(value) for value in values):
            raise ReportError(name, "contains a NUL character")


def selection_from(params: Mapping[str, str], *, dataset: Dataset | None = None) -> Selection:
    """The selection a query string asks for: dataset (UUID) or job (UUID), thresholds, min_score, verified,
    timezone; a page passes its dataset itself."""
    reject_nul(params)
    if dataset is None:
        dataset = dataset_by_uuid(params.get("dataset"))
    return select(
        dataset=dataset,
        job=parse_uuid(params.get("job"), "job"),
        thresholds=(params.get("thresholds") or "").strip() or None,
        min_score=parse_score(params.get("min_score"), "min_score"),
        verified=parse_flag(params.get("verified"), "verified"),
        zone=parse_zone(params.get("timezone")),
    )
