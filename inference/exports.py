"""A job's detections out of the database as BirdNET-Analyzer writes them (inference.birdnet_formats): Raven selection
tables, CSV, Kaleidoscope CSV and Audacity labels, one file per recording or one combined file, into a folder (the
command) or streamed (the API: a combined file, or a zip of the per-recording files).

A job's rows are its own (ClipPrediction.job, SoundEventPrediction.job): an export reads exactly one
job's, whatever ran before or after it on the same recordings, and never a classifier's scores.

A threshold set (validation.ThresholdSet) keeps only the detections at or above their species'
threshold in it; `verified` only the windows a reviewer judged "correct" for the species, one row
each, with the reviewers in a last column ("Reviewer").

Rows come from one streamed query (a server-side cursor inside one transaction), merged with a streamed list of
the job's recordings in the same order, so an export of millions of rows holds only a chunk of them at a time.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zipfile
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import groupby
from operator import itemgetter
from pathlib import Path

from django.conf import settings
from django.contrib.postgres.aggregates import StringAgg
from django.db import connection, transaction
from django.db.models import CharField, Exists, F, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Collate

from echoroo.errors import DomainError
from echoroo.models import ClipPredictionTag, Dataset, ModelRun, Recording, SoundEventPredictionTag
from inference import birdnet_formats as formats
from inference.birdnet_formats import (  # noqa: F401  (the formats' names, as callers have read them from here)
    AUDACITY_SUFFIX,
    CSV_HEADER,
    KALEIDOSCOPE_HEADER,
    RAVEN_HEADER,
    RAVEN_SUFFIX,
    REVIEWER_COLUMN,
    AudioFile,
    Row,
    csv_field,
    split_label,
)
from inference.models import InferenceJob, JobRecording
from inference.runner import recording_location, recording_week
from validation.models import ThresholdSet, Verdict
from validation.services import passing

FORMATS = ("raven", "csv", "kaleidoscope", "audacity")
# The extra columns a CSV export may add after "File", always in this order. BirdNET-Analyzer's own
# (--additional_columns, in its order): lat, lon, week, overlap, sensitivity, min_conf, species_list, model;
# ours: date and time (of the detection's start), site and threshold (the one the row passed).
COLUMNS = (
    "date",
    "time",
    "site",
    "lat",
    "lon",
    "week",
    "overlap",
    "sensitivity",
    "min_conf",
    "threshold",
    "species_list",
    "model",
)
TABLES = {
    "raven": formats.RavenTable,
    "csv": formats.CsvTable,
    "kaleidoscope": formats.KaleidoscopeTable,
    "audacity": formats.AudacityLabels,
}
CONTENT_TYPES = {"raven": "text/plain", "csv": "text/csv", "kaleidoscope": "text/csv"}

CHUNK_ROWS = 5000
# A streamed download sends its text in pieces of about this many lines (or zip bytes).
CHUNK_LINES = 2000
CHUNK_BYTES = 256 * 1024


class ExportError(DomainError):
    """A scope or model run that cannot be exported; `field` says which input is at fault."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__({field: message})

    def __str__(self) -> str:
        return self.errors[self.field]


@dataclass(frozen=True)
class Scope:
    """One job's rows to export, and the recordings that get a table: those of the scope the job finished."""

    job: InferenceJob
    recordings: QuerySet[Recording]
    # Why this job, when none was named: "the newest completed job on dataset 'Marsh 2026'".
    chosen: str = ""
    # The job's recordings in the scope that it did not finish (failed, cancelled, pending): not exported.
    unfinished: int = 0


@dataclass(frozen=True)
class ExportOptions:
    """What to export of a scope's job, and how; checked when made (ExportError names the option at fault)."""

    file_format: str
    # One file for all recordings (raven: with its list of audio files), not one per recording.
    combined: bool = False
    # Extra CSV columns, names from COLUMNS (kept in COLUMNS' order).
    columns: tuple[str, ...] = ()
    min_score: float = 0.0
    merged: bool = False
    threshold_set: ThresholdSet | None = None
    verified: bool = False
    # The clock the date and time columns are read on (an IANA name); empty: settings.TIME_ZONE.
    time_zone: str = ""

    def __post_init__(self) -> None:
        if self.file_format not in FORMATS:
            raise ExportError("format", f"unknown format {self.file_format!r}; the formats are: {', '.join(FORMATS)}")
        if self.verified and self.merged:
            raise ExportError("verified", "verdicts are given on windows, not on merged detections: leave out --merged")
        if not 0 <= self.min_score <= 1:
            raise ExportError("min_score", f"must be in [0, 1], got {self.min_score:g}")
        if self.combined and self.file_format == "audacity":
            raise ExportError(
                "combined", "BirdNET-Analyzer writes Audacity labels per recording only: leave out combined"
            )
        unknown = [name for name in self.columns if name not in COLUMNS]
        if unknown:
            raise ExportError("columns", f"unknown column {unknown[0]!r}; the extra columns are: {', '.join(COLUMNS)}")
        if self.columns and self.file_format != "csv":
            raise ExportError("columns", "only the csv format takes extra columns, as in BirdNET-Analyzer")
        try:
            zoneinfo.ZoneInfo(self.time_zone.strip() or settings.TIME_ZONE)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ExportError(
                "timezone", f"{self.time_zone!r} is not a time zone; give an IANA name such as Europe/Berlin"
            ) from None
        object.__setattr__(self, "columns", tuple(name for name in COLUMNS if name in self.columns))

    @property
    def zone(self) -> dt.tzinfo:
        return zoneinfo.ZoneInfo(self.time_zone.strip() or settings.TIME_ZONE)


def parse_columns(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """ "date,site, lat" (or a list of names) -> the names; an unknown name is left for ExportOptions to refuse."""
    if text is None:
        return ()
    names = text.split(",") if isinstance(text, str) else text
    return tuple(dict.fromkeys(name.strip() for name in names if name.strip()))


@dataclass
class Tally:
    """What an export wrote, counted as it goes."""

    rows: int = 0
    recordings: int = 0  # recordings with at least one row


@dataclass(frozen=True)
class ExportReport:
    rows: int
    recordings: int  # recordings with at least one row
    files: tuple[Path, ...]


@dataclass(frozen=True)
class ExportFile:
    """One file of an export: its name (relative to the export's folder) and its text, line by line."""

    name: str
    lines: Iterator[str]


@dataclass(frozen=True)
class Download:
    """An export as one streamed HTTP download."""

    filename: str
    content_type: str
    chunks: Iterator[bytes]


def scope_of(
    *, dataset: str | None = None, recording: str | None = None, job: str | None = None, model_run: str | None = None
) -> Scope:
    """The job to export: the job named (by UUID), or the newest completed job on a dataset (by name or UUID) or a
    recording (by UUID).

    `model_run` (id, UUID, "name version" or name) picks among the jobs of a dataset or recording; with a
    job it must be the job's. Only a job's own rows are ever exported: never another job's, never a
    classifier's scores.
    """
    if sum(value is not None for value in (dataset, recording, job)) != 1:
        raise ExportError("dataset", "give one of a dataset, a recording or a job")
    wanted = _find_model_run(model_run) if model_run is not None else None
    if job is not None:
        found = InferenceJob.objects.select_related("model_run").filter(uuid=_uuid("job", job)).first()
        if found is None:
            raise ExportError("job", f"no inference job with UUID {job}")
        if wanted is not None and wanted != found.model_run:
            raise ExportError("model_run", f"the job ran {found.model_run}, not {model_run!r}; leave the model run out")
        return _of_job(found)
    if dataset is not None:
        target = _dataset(dataset)
        where = f"dataset {target.name!r}"
        found = _newest_completed(InferenceJob.objects.filter(dataset=target), wanted, field="dataset", where=where)
        return _of_job(found, chosen=f"the newest completed job on {where}")
    target = Recording.objects.filter(uuid=_uuid("recording", recording)).first()
    if target is None:
        raise ExportError("recording", f"no recording with UUID {recording}")
    where = f"recording {target.path}"
    finished_it = JobRecording.objects.filter(job=OuterRef("pk"), recording=target, status=JobRecording.Status.DONE)
    found = _newest_completed(InferenceJob.objects.filter(Exists(finished_it)), wanted, field="recording", where=where)
    return Scope(found, Recording.objects.filter(pk=target.pk), chosen=f"the newest completed job on {where}")


def _dataset(wanted: str) -> Dataset:
    """A dataset by UUID or by name."""
    try:
        by_uuid = uuid.UUID(str(wanted))
    except ValueError:
        by_uuid = None
    found = Dataset.objects.filter(uuid=by_uuid).first() if by_uuid else None
    found = found or Dataset.objects.filter(name=wanted).first()
    if found is None and by_uuid:
        raise ExportError("dataset", f"no dataset with UUID {wanted}")
    if found is None:
        names = list(Dataset.objects.order_by("name").values_list("name", flat=True)[:20])
        raise ExportError("dataset", f"no dataset named {wanted!r}; the datasets are: {_listed(names)}")
    return found


def _of_job(job: InferenceJob, *, chosen: str = "") -> Scope:
    """The scope of a whole job: the recordings it finished."""
    recordings = JobRecording.objects.filter(job=job)
    done = recordings.filter(status=JobRecording.Status.DONE)
    unfinished = recordings.exclude(status=JobRecording.Status.DONE).count()
    return Scope(job, Recording.objects.filter(pk__in=done.values("recording_id")), chosen, unfinished)


def _newest_completed(jobs: QuerySet, model_run: ModelRun | None, *, field: str, where: str) -> InferenceJob:
    # A job that stored embeddings only has no detections to export.
    completed = jobs.filter(status=InferenceJob.Status.COMPLETED).exclude(config__contains={"store_predictions": False})
    newest = completed.select_related("model_run").order_by(F("completed_at").desc(nulls_last=True), "-pk")
    found = (newest if model_run is None else newest.filter(model_run=model_run)).first()
    if found is not None:
        return found
    if model_run is not None and completed.exists():
        ran = ModelRun.objects.filter(jobs__in=completed).distinct()
        raise ExportError(
            "model_run", f"no completed job of {model_run} on {where}; the jobs there ran: {_listed(_described(ran))}"
        )
    raise ExportError(
        field, f"no job with detections has completed on {where}: run one first (or export a running one by its UUID)"
    )


def threshold_set_named(name: str) -> ThresholdSet:
    """The threshold set of this name, or an error listing the sets."""
    found = ThresholdSet.objects.filter(name=name).first()
    if found is None:
        names = [repr(n) for n in ThresholdSet.objects.order_by("name").values_list("name", flat=True)[:20]]
        raise ExportError("thresholds", f"no threshold set named {name!r}; the sets are: {_listed(names)}")
    return found


# --- Writing: to a folder, or streamed ---------------------------------------------------------------------------


def export_detections(scope: Scope, options: ExportOptions, output: Path) -> ExportReport:
    """Write the scope's job's window detections (or merged detections) on the scope's recordings to `output`.

    `output` is a folder: one file per recording finished (BirdNET-Analyzer's names, under the recording's path),
    or the combined file (raven: and its list of audio files), and the analysis parameters file. A csv export to
    a path ending in ".csv" writes that one file, every recording in it.
    """
    output = Path(output)
    one_file = options.file_format == "csv" and not options.combined and output.suffix.lower() == ".csv"
    if one_file and output.is_dir():
        raise ExportError("output", f"{output} is a folder; give a file name ending in .csv, or a folder without")
    if not one_file and output.exists() and not output.is_dir():
        raise ExportError("output", f"{output} is a file; the {options.file_format} format writes files to a folder")
    tally, written = Tally(), []
    with one_snapshot():
        if one_file:
            files = export_files(scope, replace(options, combined=True), tally)
            output.parent.mkdir(parents=True, exist_ok=True)
            _write(output, next(files).lines)
            files.close()
            return ExportReport(tally.rows, tally.recordings, (output,))
        output.mkdir(parents=True, exist_ok=True)
        for file in export_files(scope, options, tally):
            path = output / file.name
            path.parent.mkdir(parents=True, exist_ok=True)
            _write(path, file.lines)
            written.append(path)
    return ExportReport(tally.rows, tally.recordings, tuple(written))


def download(scope: Scope, options: ExportOptions) -> Download:
    """The export as one download: the combined file, or a zip of the per-recording files and the parameters
    file. Nothing is read until the chunks are."""
    if options.combined:
        name = TABLES[options.file_format].combined_name
        return Download(name, f"{CONTENT_TYPES[options.file_format]}; charset=utf-8", _combined_chunks(scope, options))
    filename = f"BirdNET_{options.file_format}_{scope.job.uuid}.zip"
    return Download(filename, "application/zip", _zip_chunks(scope, options))


def export_files(scope: Scope, options: ExportOptions, tally: Tally | None = None) -> Iterator[ExportFile]:
    """The export's files in order, each streamed: read a file's lines before asking for the next file.

    Per recording: each recording's own file (a recording without rows too: BirdNET-Analyzer writes one for
    every file it analysed), then the parameters file. Combined: the combined file, for raven its list of
    audio files, then the parameters file."""
    tally = tally if tally is not None else Tally()
    groups = _by_recording(scope, options, tally)

    def written(table: formats.Table, lines: Iterable[str]) -> Iterator[str]:
        if table.header():
            yield table.header()
        yield from lines
        tally.rows += table.rows

    if options.combined:
        table = _table(scope, options, combined=True)
        lines = (line for audio, rows in groups for line in table.lines(audio, rows))
        yield ExportFile(table.combined_name, written(table, lines))
        if options.file_format == "raven":
            yield ExportFile(
                formats.COMBINED_RAVEN_LIST, formats.raven_list(audio.path for _, audio in _audio_files(scope))
            )
    else:
        for audio, rows in groups:
            table = _table(scope, options)
            name = formats.result_name(audio.relative_path, table.suffix)
            yield ExportFile(name, written(table, table.lines(audio, rows)))
    yield ExportFile(formats.PARAMS_FILE, iter([formats.params_file(analysis_params(scope.job, options))]))


def analysis_params(job: InferenceJob, options: ExportOptions) -> tuple:
    """The values of BirdNET-Analyzer's parameters file for the job: its window layout and sample rate, the band
    (BirdNET-Analyzer's 0-15000 Hz), no file splitting (windows run on across a whole recording), no minimum
    length (a recording's last window is kept however short), no merging of windows (empty for merged
    detections: overlapping windows are joined, not a count of them), audio speed 1, no custom classifier."""
    model_run = job.model_run
    merged = "" if options.merged else 1
    window_s = float(model_run.segment_duration) if model_run.segment_duration else ""
    return (
        "",
        window_s,
        model_run.sample_rate or "",
        float(job.settings.overlap),
        0.0,
        formats.LOW_FREQ_HZ,
        formats.HIGH_FREQ_HZ,
        merged,
        1.0,
        "",
    )


@contextmanager
def one_snapshot():
    """One transaction that sees one snapshot of the database: server-side cursors stream inside it, and the
    rows and the list of recordings agree even while a job writes."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def _write(path: Path, lines: Iterable[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        out.writelines(lines)


def _encoded(lines: Iterable[str]) -> Iterator[bytes]:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= CHUNK_LINES:
            yield "".join(batch).encode()
            batch.clear()
    if batch:
        yield "".join(batch).encode()


def _combined_chunks(scope: Scope, options: ExportOptions) -> Iterator[bytes]:
    with one_snapshot():
        files = export_files(scope, options)
        yield from _encoded(next(files).lines)
        files.close()


class _Sink:
    """A write-only stream zipfile writes an archive into (it adds data descriptors, needing no seek); what
    it wrote is taken out in pieces."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return data


def _zip_chunks(scope: Scope, options: ExportOptions) -> Iterator[bytes]:
    sink = _Sink()
    now = dt.datetime.now().timetuple()[:6]
    with one_snapshot(), zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in export_files(scope, options):
            member = zipfile.ZipInfo(file.name, date_time=now)
            member.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(member, "w") as out:
                for chunk in _encoded(file.lines):
                    out.write(chunk)
                    if sink.size >= CHUNK_BYTES:
                        yield sink.take()
    yield sink.take()


# --- Reading: the job's rows, recording by recording -------------------------------------------------------------


def _table(scope: Scope, options: ExportOptions, *, combined: bool = False) -> formats.Table:
    reviewers = options.verified
    if options.file_format == "csv":
        return formats.CsvTable(
            combined=combined,
            reviewers=reviewers,
            extra_columns=options.columns,
            extra=_extra_columns(scope.job, options) if options.columns else None,
        )
    if options.file_format == "kaleidoscope":
        config = scope.job.settings
        return formats.KaleidoscopeTable(
            overlap_s=float(config.overlap),
            sensitivity=float(config.sensitivity),
            combined=combined,
            reviewers=reviewers,
        )
    if options.file_format == "raven":
        return formats.RavenTable(combined=combined, reviewers=reviewers)
    return formats.AudacityLabels()


def _by_recording(scope: Scope, options: ExportOptions, tally: Tally) -> Iterator[tuple[AudioFile, Iterator[Row]]]:
    """Each recording the job finished (by path) with its rows, from two streamed queries in the same order."""
    groups = groupby(rows(scope, options), key=itemgetter(0))
    group = next(groups, None)
    for recording_id, audio in _audio_files(scope):
        if group is not None and group[0] == recording_id:
            tally.recordings += 1
            yield audio, group[1]
            group = next(groups, None)
        else:
            yield audio, iter(())
    if group is not None:
        raise RuntimeError(f"recording {group[0]}'s rows came out of order: the export is incomplete")


def _audio_files(scope: Scope) -> Iterator[tuple[int, AudioFile]]:
    """The recordings the job finished in the scope, by path (as BirdNET-Analyzer sorts its files: by code
    point, whatever the database's collation), each as the formats name it."""
    config = scope.job.settings
    recordings = scope.recordings.select_related("site", "dataset").order_by(Collate("path", "C"), "pk")
    for recording in recordings.iterator(chunk_size=CHUNK_ROWS):
        place = recording_location(recording, config)
        latitude, longitude = place if place is not None else (formats.NOWHERE, formats.NOWHERE)
        yield (
            recording.pk,
            AudioFile(
                path=audio_path(recording.path),
                relative_path=recording.path,
                duration_s=recording.duration,
                samplerate=recording.samplerate,
                latitude=latitude,
                longitude=longitude,
                week=recording_week(recording, config),
                site=recording.site.name if recording.site is not None else "",
                recorded_at=recording.recorded_at,
            ),
        )


def rows(scope: Scope, options: ExportOptions) -> Iterator[Row]:
    """The job's rows on the scope's recordings at or above the minimum score (and their species' threshold in the
    set, given one; judged correct, if verified), by recording path, start time, then score (best first);
    streamed, as plain tuples of a Row's shape (no object made per row)."""
    return rows_query(scope, options).iterator(chunk_size=CHUNK_ROWS)


def rows_query(scope: Scope, options: ExportOptions) -> QuerySet:
    """The query of `rows`."""
    if options.merged:
        model, prediction, span = SoundEventPredictionTag, "sound_event_prediction", "sound_event"
    else:
        model, prediction, span = ClipPredictionTag, "clip_prediction", "clip"
    span = f"{prediction}__{span}"
    recording = f"{span}__recording"
    query = model.objects.filter(**{f"{prediction}__job": scope.job, f"{recording}__in": scope.recordings})
    if options.min_score:
        query = query.filter(score__gte=options.min_score)
    if options.threshold_set is not None:
        query = passing(query, options.threshold_set)
    if options.verified:
        query = query.annotate(reviewers=correct_by(OuterRef(f"{span}_id"), OuterRef("tag_id")))
        query = query.filter(reviewers__isnull=False)
    else:
        query = query.annotate(reviewers=Value("", output_field=CharField()))
    columns = [f"{recording}_id", f"{span}__start_time", f"{span}__end_time", "tag__value", "score", "reviewers"]
    ordered = query.order_by(
        Collate(f"{recording}__path", "C"), f"{recording}_id", f"{span}__start_time", "-score", "tag__value"
    )
    return ordered.values_list(*columns)


def correct_by(clip_id, species_id) -> Subquery:
    """The names of the reviewers who judged the clip correct for the species ("anna, ben"); NULL when none did."""
    correct = Verdict.objects.filter(clip_id=clip_id, species_id=species_id, verdict=Verdict.Value.CORRECT)
    names = StringAgg("reviewer__username", ", ", order_by="reviewer__username")
    return Subquery(correct.order_by().values("species_id").annotate(names=names).values("names")[:1])


def _extra_columns(job: InferenceJob, options: ExportOptions) -> Callable[[AudioFile], Callable[[Row], str]]:
    """For each recording, the function that gives a row's extra CSV columns (",v1,v2")."""
    config = job.settings
    zone = options.zone
    per_job = {
        "overlap": str(float(config.overlap)),
        "sensitivity": str(float(config.sensitivity)),
        "min_conf": str(float(config.confidence_threshold)),
        "species_list": csv_field("; ".join(config.custom_species_list or ())),
        "model": csv_field(f"{job.model_run.name} {job.model_run.version}"),
    }
    thresholds: dict[str, str] = {}
    default_threshold = per_job["min_conf"]
    if options.threshold_set is not None:
        default_threshold = str(float(options.threshold_set.default_threshold))
        for label, threshold in options.threshold_set.species.values_list("species__value", "threshold"):
            thresholds[label] = str(float(threshold))

    def for_recording(audio: AudioFile) -> Callable[[Row], str]:
        fixed = {
            **per_job,
            "site": csv_field(audio.site),
            "lat": str(audio.latitude),
            "lon": str(audio.longitude),
            "week": str(audio.week),
        }
        values = [fixed.get(name) for name in options.columns]
        dated = [index for index, name in enumerate(options.columns) if name in ("date", "time")]
        threshold_at = options.columns.index("threshold") if "threshold" in options.columns else None
        start = audio.recorded_at
        last_start_s = None

        def row_values(row: Row) -> str:
            nonlocal last_start_s
            if dated and row[1] != last_start_s:  # a window's species share its date and time
                last_start_s = row[1]
                when = (start + dt.timedelta(seconds=row[1])).astimezone(zone) if start is not None else None
                for index in dated:
                    if when is None:
                        values[index] = ""
                    elif options.columns[index] == "date":
                        values[index] = when.date().isoformat()
                    else:
                        values[index] = when.time().isoformat(timespec="milliseconds")
            if threshold_at is not None:
                values[threshold_at] = thresholds.get(row[3], default_threshold)
            return "," + ",".join(values)

        return row_values

    return for_recording


def audio_path(recording_path: str) -> str:
    return str(settings.AUDIO_ROOT / recording_path)


def detection_counts(job: InferenceJob) -> tuple[int, int]:
    """(window predictions, merged detections) the job stored: its own rows only."""
    windows = ClipPredictionTag.objects.filter(clip_prediction__job=job).count()
    detections = SoundEventPredictionTag.objects.filter(sound_event_prediction__job=job).count()
    return windows, detections


def _find_model_run(wanted: str) -> ModelRun:
    text = wanted.strip()
    runs = ModelRun.objects.all()
    if text.isdigit():
        found = list(runs.filter(pk=int(text)))
    else:
        try:
            found = list(runs.filter(uuid=uuid.UUID(text)))
        except ValueError:
            name, _, version = text.rpartition(" ")
            found = list(runs.filter(name=name, version=version)) if name else []
            found = found or list(runs.filter(name=text))
    if len(found) == 1:
        return found[0]
    known = _described(ModelRun.objects.all()[:20])
    if found:
        raise ExportError("model_run", f"{wanted!r} names several model runs: {_listed(_described(found))}")
    raise ExportError("model_run", f"no model run {wanted!r}; the model runs are: {_listed(known)}")


def _described(runs: Iterable[ModelRun]) -> list[str]:
    return [f"{run} (id {run.pk})" for run in runs]


def _listed(names: list[str]) -> str:
    return ", ".join(names) if names else "none yet"


def _uuid(field: str, text: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(text))
    except ValueError:
        raise ExportError(field, f"{text!r} is not a UUID") from None
