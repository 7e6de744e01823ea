"""A job's detections out of the database as BirdNET-Analyzer writes them: Raven selection tables, CSV, Audacity labels.

A job's rows are its own (ClipPrediction.job, SoundEventPrediction.job): an export reads exactly one
job's, whatever ran before or after it on the same recordings, and never a classifier's scores.

A threshold set (validation.ThresholdSet) keeps only the detections at or above their species'
threshold in it; `verified` only the windows a reviewer judged "correct" for the species, one row
each, with the reviewers in a last column ("Reviewer").

Rows come from one streamed query (a server-side cursor inside one transaction), so an export of
millions of rows holds only a chunk of them in memory at a time.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path, PurePosixPath
from typing import NamedTuple, TextIO

from django.conf import settings
from django.contrib.postgres.aggregates import StringAgg
from django.db import transaction
from django.db.models import Exists, F, OuterRef, QuerySet, Subquery

from echoroo.models import ClipPredictionTag, Dataset, ModelRun, Recording, SoundEventPredictionTag
from inference.models import InferenceJob, JobRecording
from validation.models import ThresholdSet, Verdict
from validation.services import passing

FORMATS = ("raven", "csv", "audacity")

# BirdNET-Analyzer's headers, column for column (birdnet_analyzer/analyze.py).
RAVEN_HEADER = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Common Name",
    "Species Code",
    "Confidence",
    "Begin Path",
    "File Offset (s)",
)
CSV_HEADER = ("Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File")
# The column a verified export adds at the end: who judged the detection correct.
REVIEWER_COLUMN = "Reviewer"
# BirdNET-Analyzer's file names, after the recording's path without its extension.
RAVEN_SUFFIX = ".BirdNET.selection.table.txt"
AUDACITY_SUFFIX = ".BirdNET.results.txt"

CHUNK_ROWS = 5000


class ExportError(ValueError):
    """A scope or model run that cannot be exported; `field` says which input is at fault."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Scope:
    """One job's rows to export, and the recordings that get a table: those of the scope the job finished."""

    job: InferenceJob
    recordings: QuerySet[Recording]
    # Why this job, when none was named: "the newest completed job on dataset 'Marsh 2026'".
    chosen: str = ""
    # The job's recordings in the scope that it did not finish (failed, cancelled, pending): not exported.
    unfinished: int = 0


class Row(NamedTuple):
    """One window-and-species prediction, or one merged detection."""

    recording_id: int
    recording_path: str
    samplerate: int
    start_s: float
    end_s: float
    low_hz: float | None
    high_hz: float | None
    label: str
    score: float
    reviewers: str = ""  # verified exports: who judged it correct, by name


@dataclass(frozen=True)
class ExportReport:
    rows: int
    recordings: int  # recordings with at least one row
    files: tuple[Path, ...]


def scope_of(
    *, dataset: str | None = None, recording: str | None = None, job: str | None = None, model_run: str | None = None
) -> Scope:
    """The job to export: the job named (by UUID), or the newest completed job on a dataset (by name) or a recording.

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
        target = Dataset.objects.filter(name=dataset).first()
        if target is None:
            names = list(Dataset.objects.order_by("name").values_list("name", flat=True)[:20])
            raise ExportError("dataset", f"no dataset named {dataset!r}; the datasets are: {_listed(names)}")
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


def export_detections(
    scope: Scope,
    *,
    file_format: str,
    output: Path,
    min_score: float = 0.0,
    merged: bool = False,
    threshold_set: ThresholdSet | None = None,
    verified: bool = False,
) -> ExportReport:
    """Write the scope's job's window detections (or merged detections) on the scope's recordings to `output`.

    raven and audacity write one file per recording of the scope into the folder `output` (a header
    alone, or an empty file, where a recording has no rows); csv writes one file. With a threshold
    set, only the rows passing it; `verified`, only windows judged correct, with a "Reviewer" column
    (raven, csv; Audacity's labels have no room for one).
    """
    if file_format not in FORMATS:
        raise ExportError("format", f"unknown format {file_format!r}; the formats are: {', '.join(FORMATS)}")
    if verified and merged:
        raise ExportError("verified", "verdicts are given on windows, not on merged detections: leave out --merged")
    output = Path(output)
    if file_format == "csv":
        if output.is_dir():
            raise ExportError("output", f"{output} is a folder; the csv format writes one file")
        output.parent.mkdir(parents=True, exist_ok=True)
    elif output.exists() and not output.is_dir():
        raise ExportError(
            "output", f"{output} is a file; the {file_format} format writes a file per recording to a folder"
        )
    # One transaction: a server-side cursor streams without being materialised, and the
    # rows and the list of recordings come from one snapshot.
    with transaction.atomic():
        found = rows(scope, min_score=min_score, merged=merged, threshold_set=threshold_set, verified=verified)
        if file_format == "csv":
            with output.open("w", newline="", encoding="utf-8") as out:
                count, recordings = write_csv(found, out, reviewers=verified)
            return ExportReport(count, recordings, (output,))
        return _write_per_recording(scope, found, output, file_format, reviewers=verified)


def rows(
    scope: Scope,
    *,
    min_score: float = 0.0,
    merged: bool = False,
    threshold_set: ThresholdSet | None = None,
    verified: bool = False,
) -> Iterator[Row]:
    """The job's rows on the scope's recordings at or above `min_score` (and their species' threshold in the set,
    given one; judged correct, if `verified`), by recording, start time, then score (best first); streamed."""
    if merged:
        model, prediction, span = SoundEventPredictionTag, "sound_event_prediction", "sound_event"
    else:
        model, prediction, span = ClipPredictionTag, "clip_prediction", "clip"
    span = f"{prediction}__{span}"
    recording = f"{span}__recording"
    columns = [f"{recording}_id", f"{recording}__path", f"{recording}__samplerate"]
    columns += [f"{span}__start_time", f"{span}__end_time"]
    box = [f"{span}__low_freq", f"{span}__high_freq"] if merged else []  # windows have no frequency box
    query = model.objects.filter(**{f"{prediction}__job": scope.job, f"{recording}__in": scope.recordings}).filter(
        score__gte=min_score
    )
    if threshold_set is not None:
        query = passing(query, threshold_set)
    reviewers = []
    if verified:
        query = query.annotate(reviewers=correct_by(OuterRef(f"{span}_id"), OuterRef("tag_id"))).filter(
            reviewers__isnull=False
        )
        reviewers = ["reviewers"]
    query = (
        query.order_by(f"{recording}__path", f"{recording}_id", f"{span}__start_time", "-score", "tag__value")
        .values_list(*columns, *box, "tag__value", "score", *reviewers)
        .iterator(chunk_size=CHUNK_ROWS)
    )
    if merged:
        return (Row(*values) for values in query)
    return (Row(*values[:5], None, None, *values[5:]) for values in query)


def correct_by(clip_id, species_id) -> Subquery:
    """The names of the reviewers who judged the clip correct for the species ("anna, ben"); NULL when none did."""
    correct = Verdict.objects.filter(clip_id=clip_id, species_id=species_id, verdict=Verdict.Value.CORRECT)
    names = StringAgg("reviewer__username", ", ", order_by="reviewer__username")
    return Subquery(correct.order_by().values("species_id").annotate(names=names).values("names")[:1])


def write_csv(found: Iterable[Row], out: TextIO, *, reviewers: bool = False) -> tuple[int, int]:
    """BirdNET-Analyzer's CSV: every recording in one file (and who judged each row correct, if `reviewers`);
    returns (rows, recordings)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER + ((REVIEWER_COLUMN,) if reviewers else ()))
    count, recordings, last = 0, 0, None
    for row in found:
        scientific_name, common_name = split_label(row.label)
        fields = [
            _seconds(row.start_s),
            _seconds(row.end_s),
            scientific_name,
            common_name,
            f"{row.score:.4f}",
            audio_path(row.recording_path),
        ]
        writer.writerow(fields + ([row.reviewers] if reviewers else []))
        count += 1
        recordings += row.recording_id != last
        last = row.recording_id
    return count, recordings


def write_raven(
    found: Iterable[Row], out: TextIO, *, model_sample_rate: int | None = None, reviewers: bool = False
) -> int:
    """One recording's Raven selection table, as BirdNET-Analyzer writes it (and who judged each row correct, if
    `reviewers`); returns the rows written."""
    out.write("\t".join(RAVEN_HEADER + ((REVIEWER_COLUMN,) if reviewers else ())) + "\n")
    count = 0
    for row in found:
        count += 1
        scientific_name, common_name = split_label(row.label)
        # The band the model heard: BirdNET-Analyzer writes its bandpass; a detection's own box wins.
        nyquist_hz = min(row.samplerate, model_sample_rate or row.samplerate) / 2
        low_hz = row.low_hz if row.low_hz is not None else 0
        high_hz = row.high_hz if row.high_hz is not None else nyquist_hz
        start = _seconds(row.start_s)
        fields = (count, "Spectrogram 1", 1, start, _seconds(row.end_s), f"{low_hz:g}", f"{high_hz:g}")
        fields += (common_name, scientific_name, f"{row.score:.4f}", audio_path(row.recording_path), start)
        fields += (row.reviewers,) if reviewers else ()
        out.write("\t".join(map(str, fields)) + "\n")
    return count


def write_audacity(found: Iterable[Row], out: TextIO) -> int:
    """One recording's Audacity labels: start, end and "Common name, confidence"; returns the rows written."""
    count = 0
    for row in found:
        _, common_name = split_label(row.label)
        out.write(f"{_seconds(row.start_s)}\t{_seconds(row.end_s)}\t{common_name}, {row.score:.4f}\n")
        count += 1
    return count


def split_label(label: str) -> tuple[str, str]:
    """ "Scientific_Common" (BirdNET) -> (scientific, common); a bare class name (Perch) stands for both names,
    as BirdNET-Analyzer writes it."""
    scientific_name, _, common_name = label.partition("_")
    return scientific_name, common_name or scientific_name


def _seconds(time_s: float) -> str:
    # 4 decimals hide float noise (2.9999999 -> 3.0); BirdNET-Analyzer writes "3.0" too.
    return str(round(time_s, 4))


def audio_path(recording_path: str) -> str:
    return str(settings.AUDIO_ROOT / recording_path)


def result_file(folder: Path, recording_path: str, file_format: str) -> Path:
    """Where a recording's table goes: its path under AUDIO_ROOT, without extension, plus BirdNET's suffix."""
    suffix = RAVEN_SUFFIX if file_format == "raven" else AUDACITY_SUFFIX
    return folder / f"{PurePosixPath(recording_path).with_suffix('')}{suffix}"


def detection_counts(job: InferenceJob) -> tuple[int, int]:
    """(window predictions, merged detections) the job stored: its own rows only."""
    windows = ClipPredictionTag.objects.filter(clip_prediction__job=job).count()
    detections = SoundEventPredictionTag.objects.filter(sound_event_prediction__job=job).count()
    return windows, detections


def _write_per_recording(
    scope: Scope, found: Iterator[Row], folder: Path, file_format: str, *, reviewers: bool = False
) -> ExportReport:
    count, written, with_rows = 0, [], set()
    for (recording_id, recording_path), recording_rows in groupby(
        found, key=lambda row: (row.recording_id, row.recording_path)
    ):
        path = _open_result(folder, recording_path, file_format)
        with path.open("w", newline="", encoding="utf-8") as out:
            if file_format == "raven":
                count += write_raven(
                    recording_rows, out, model_sample_rate=scope.job.model_run.sample_rate, reviewers=reviewers
                )
            else:
                count += write_audacity(recording_rows, out)
        written.append(path)
        with_rows.add(recording_id)
    # One file per recording, as BirdNET-Analyzer writes: an empty table says "nothing found".
    for recording_id, recording_path in scope.recordings.order_by("path").values_list("id", "path").iterator():
        if recording_id not in with_rows:
            path = _open_result(folder, recording_path, file_format)
            with path.open("w", newline="", encoding="utf-8") as out:
                if file_format == "raven":
                    write_raven((), out, reviewers=reviewers)
            written.append(path)
    return ExportReport(count, len(with_rows), tuple(written))


def _open_result(folder: Path, recording_path: str, file_format: str) -> Path:
    path = result_file(folder, recording_path, file_format)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


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
