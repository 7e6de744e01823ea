"""Detections out of the database as BirdNET-Analyzer writes them: Raven selection tables, CSV, Audacity labels.

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
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from echoroo.models import (
    ClipPrediction,
    ClipPredictionTag,
    Dataset,
    ModelRun,
    Recording,
    SoundEventPrediction,
    SoundEventPredictionTag,
)
from inference.models import InferenceJob, JobRecording

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
    """The recordings to export, and the model run a job implies."""

    recordings: QuerySet[Recording]
    job: InferenceJob | None = None


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


@dataclass(frozen=True)
class ExportReport:
    rows: int
    recordings: int  # recordings with at least one row
    files: tuple[Path, ...]


def scope_of(*, dataset: str | None = None, recording: str | None = None, job: str | None = None) -> Scope:
    """The recordings of a dataset (by name), of one recording or of a job (by UUID)."""
    if sum(value is not None for value in (dataset, recording, job)) != 1:
        raise ExportError("dataset", "give one of a dataset, a recording or a job")
    if dataset is not None:
        found = Dataset.objects.filter(name=dataset).first()
        if found is None:
            names = list(Dataset.objects.order_by("name").values_list("name", flat=True)[:20])
            raise ExportError("dataset", f"no dataset named {dataset!r}; the datasets are: {_listed(names)}")
        return Scope(Recording.objects.filter(dataset=found))
    if recording is not None:
        found = Recording.objects.filter(uuid=_uuid("recording", recording)).first()
        if found is None:
            raise ExportError("recording", f"no recording with UUID {recording}")
        return Scope(Recording.objects.filter(pk=found.pk))
    found = InferenceJob.objects.select_related("model_run").filter(uuid=_uuid("job", job)).first()
    if found is None:
        raise ExportError("job", f"no inference job with UUID {job}")
    return Scope(Recording.objects.filter(pk__in=JobRecording.objects.filter(job=found).values("recording_id")), found)


def model_run_of(scope: Scope, wanted: str | None = None, *, merged: bool = False) -> ModelRun:
    """The model run to export: `wanted` (id, UUID, "name version" or name), the job's, or the only one with results."""
    if scope.job is not None:
        if wanted is not None and _find_model_run(wanted) != scope.job.model_run:
            raise ExportError(
                "model_run", f"the job ran {scope.job.model_run}, not {wanted!r}; leave the model run out"
            )
        return scope.job.model_run
    if wanted is not None:
        return _find_model_run(wanted)
    results = (SoundEventPrediction if merged else ClipPrediction).objects.filter(
        model_run=OuterRef("pk"),
        **{("sound_event" if merged else "clip") + "__recording__in": scope.recordings},
    )
    runs = list(ModelRun.objects.filter(Exists(results)))
    if len(runs) == 1:
        return runs[0]
    what = "detections" if merged else "predictions"
    if not runs:
        raise ExportError("model_run", f"these recordings have no {what} yet: run a job on them first")
    raise ExportError("model_run", f"several model runs have {what} here: {_listed(_described(runs))}; choose one")


def export_detections(
    scope: Scope,
    model_run: ModelRun,
    *,
    file_format: str,
    output: Path,
    min_score: float = 0.0,
    merged: bool = False,
) -> ExportReport:
    """Write the model run's predictions (or merged detections) on the scope's recordings to `output`.

    raven and audacity write one file per recording of the scope into the folder `output` (a header
    alone, or an empty file, where a recording has no rows); csv writes one file.
    """
    if file_format not in FORMATS:
        raise ExportError("format", f"unknown format {file_format!r}; the formats are: {', '.join(FORMATS)}")
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
        found = rows(scope, model_run, min_score=min_score, merged=merged)
        if file_format == "csv":
            with output.open("w", newline="", encoding="utf-8") as out:
                count, recordings = write_csv(found, out)
            return ExportReport(count, recordings, (output,))
        return _write_per_recording(scope, model_run, found, output, file_format)


def rows(scope: Scope, model_run: ModelRun, *, min_score: float = 0.0, merged: bool = False) -> Iterator[Row]:
    """The scope's rows at or above `min_score`, by recording, start time, then score (best first); streamed."""
    if merged:
        model, prediction, span = SoundEventPredictionTag, "sound_event_prediction", "sound_event"
    else:
        model, prediction, span = ClipPredictionTag, "clip_prediction", "clip"
    span = f"{prediction}__{span}"
    recording = f"{span}__recording"
    columns = [f"{recording}_id", f"{recording}__path", f"{recording}__samplerate"]
    columns += [f"{span}__start_time", f"{span}__end_time"]
    box = [f"{span}__low_freq", f"{span}__high_freq"] if merged else []  # windows have no frequency box
    query = (
        model.objects.filter(**{f"{prediction}__model_run": model_run, f"{recording}__in": scope.recordings})
        .filter(score__gte=min_score)
        .order_by(f"{recording}__path", f"{recording}_id", f"{span}__start_time", "-score", "tag__value")
        .values_list(*columns, *box, "tag__value", "score")
        .iterator(chunk_size=CHUNK_ROWS)
    )
    if merged:
        return (Row(*values) for values in query)
    return (Row(*values[:5], None, None, *values[5:]) for values in query)


def write_csv(found: Iterable[Row], out: TextIO) -> tuple[int, int]:
    """BirdNET-Analyzer's CSV: every recording in one file; returns (rows, recordings)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    count, recordings, last = 0, 0, None
    for row in found:
        scientific_name, common_name = split_label(row.label)
        writer.writerow(
            [
                _seconds(row.start_s),
                _seconds(row.end_s),
                scientific_name,
                common_name,
                f"{row.score:.4f}",
                audio_path(row.recording_path),
            ]
        )
        count += 1
        recordings += row.recording_id != last
        last = row.recording_id
    return count, recordings


def write_raven(found: Iterable[Row], out: TextIO, *, model_sample_rate: int | None = None) -> int:
    """One recording's Raven selection table, as BirdNET-Analyzer writes it; returns the rows written."""
    out.write("\t".join(RAVEN_HEADER) + "\n")
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
    """(window predictions, merged detections) the job's model run has on the job's finished recordings."""
    done = JobRecording.objects.filter(job=job, status=JobRecording.Status.DONE).values("recording_id")
    windows = ClipPredictionTag.objects.filter(
        clip_prediction__model_run_id=job.model_run_id, clip_prediction__clip__recording__in=done
    ).count()
    detections = SoundEventPredictionTag.objects.filter(
        sound_event_prediction__model_run_id=job.model_run_id, sound_event_prediction__sound_event__recording__in=done
    ).count()
    return windows, detections


def _write_per_recording(
    scope: Scope, model_run: ModelRun, found: Iterator[Row], folder: Path, file_format: str
) -> ExportReport:
    count, written, with_rows = 0, [], set()
    for (recording_id, recording_path), recording_rows in groupby(
        found, key=lambda row: (row.recording_id, row.recording_path)
    ):
        path = _open_result(folder, recording_path, file_format)
        with path.open("w", newline="", encoding="utf-8") as out:
            if file_format == "raven":
                count += write_raven(recording_rows, out, model_sample_rate=model_run.sample_rate)
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
                    write_raven((), out)
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
