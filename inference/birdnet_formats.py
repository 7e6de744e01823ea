"""BirdNET-Analyzer's result files, as its release 2.4.0 writes them: Raven selection tables (one per audio file, or
one for all files with times running on), CSV, Kaleidoscope CSV, Audacity labels and the analysis parameters file.

Read from birdnet_analyzer/analyze/utils.py (generate_raven_table, generate_csv, generate_kaleidoscope,
generate_audacity, combine_results), analyze/core.py and config.py of that release. No Django and no database
here: one audio file's rows in, lines of text out (each ending in "\\n"), so that a caller streams them to a
file, a zip member or an HTTP response without holding an export in memory.

Where BirdNET-Analyzer writes values by string formatting, so do we; only text that holds a comma or a quote
(a path, a name) is quoted in the CSV formats, where BirdNET-Analyzer would write a broken row.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from inference.runtimes.base import Label

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
KALEIDOSCOPE_HEADER = (
    "INDIR",
    "FOLDER",
    "IN FILE",
    "OFFSET",
    "DURATION",
    "scientific_name",
    "common_name",
    "confidence",
    "lat",
    "lon",
    "week",
    "overlap",
    "sensitivity",
)
PARAMS_HEADER = (
    "File splitting duration",
    "Segment length",
    "Sample rate",
    "Segment overlap",
    "Minimum Segment length",
    "Bandpass filter minimum",
    "Bandpass filter maximum",
    "Merge consecutive detections",
    "Audio speed",
    "Custom classifier path",
)
# Ours, not BirdNET-Analyzer's: the last column of a verified export, who judged the row correct.
REVIEWER_COLUMN = "Reviewer"

# One file per audio file: its path without the extension, plus these.
RAVEN_SUFFIX = ".BirdNET.selection.table.txt"
CSV_SUFFIX = ".BirdNET.results.csv"
KALEIDOSCOPE_SUFFIX = ".BirdNET.results.kaleidoscope.csv"
AUDACITY_SUFFIX = ".BirdNET.results.txt"
# One file for all audio files (BirdNET-Analyzer's --combine_results); the list names the table's audio files.
COMBINED_RAVEN = "BirdNET_SelectionTable.txt"
COMBINED_RAVEN_LIST = "BirdNET_SelectionTable.list.txt"
COMBINED_CSV = "BirdNET_CombinedTable.csv"
COMBINED_KALEIDOSCOPE = "BirdNET_Kaleidoscope.csv"
PARAMS_FILE = "BirdNET_analysis_params.csv"

# The band BirdNET-Analyzer writes in a selection table: its model's band (SIG_FMIN 0, SIG_FMAX 15000 Hz) within
# its default bandpass (0-15000 Hz), at audio speed 1, and below the file's Nyquist frequency.
LOW_FREQ_HZ = 0
HIGH_FREQ_HZ = 15_000
# The row BirdNET-Analyzer writes in a file's table when it found nothing; the combined table leaves it out.
NOCALL = "nocall"
NOCALL_SPAN = ("0", "3")
# BirdNET-Analyzer's "no place, whole year" (its defaults for --lat, --lon and --week).
NOWHERE = -1

CODES_FILE = Path(__file__).resolve().parent / "data" / "eBird_taxonomy_codes_2024E.json"


class Row(NamedTuple):
    """One window-and-species prediction (or merged detection) of one audio file. The tables read rows by
    position, so a plain tuple of this shape (as a database cursor gives it) will do."""

    recording_id: int  # the audio file's, in whatever numbering the caller keeps
    start_s: float
    end_s: float
    label: str  # "Scientific_Common" (BirdNET) or a bare class name (Perch)
    score: float
    reviewers: str = ""  # verified exports: who judged it correct, by name


@dataclass(frozen=True)
class AudioFile:
    """An audio file as the formats name it, with the place and week its job's species filter read."""

    path: str  # as written in Begin Path, File and the list: AUDIO_ROOT / the recording's path
    relative_path: str  # the recording's path under AUDIO_ROOT: where its own result file goes
    duration_s: float
    samplerate: int
    latitude: float = NOWHERE
    longitude: float = NOWHERE
    week: int = NOWHERE
    # For our extra CSV columns: the recording's site and when it started.
    site: str = ""
    recorded_at: dt.datetime | None = None


@cache
def ebird_codes() -> dict[str, str]:
    """BirdNET label -> eBird species code ("Hylocichla mustelina_Wood Thrush" -> "woothr"), read once.

    The file maps codes back to labels too; only the label -> code half is kept, so that a class name that
    happens to be a code is never written as a BirdNET label."""
    with CODES_FILE.open(encoding="utf-8") as codes:
        return {label: code for label, code in json.load(codes).items() if "_" in label}


def species_code(label: str) -> str:
    """The label's eBird code; a label without one (another model's, a custom class) stands for itself."""
    return ebird_codes().get(label, label)


def split_label(label: str) -> tuple[str, str]:
    """ "Scientific_Common" (BirdNET) -> (scientific, common); a bare class name (Perch) stands for both names,
    as BirdNET-Analyzer writes it."""
    parsed = Label.parse(label)
    return parsed.scientific_name, parsed.common_name or parsed.scientific_name


def seconds(time_s: float) -> str:
    """A time as BirdNET-Analyzer writes it: rounded to 2 decimals, Python's shortest form ("3.0", "1.5")."""
    return str(round(time_s, 2))


def raven_band(samplerate: int) -> tuple[int, int]:
    """(Low Freq, High Freq) of a selection: BirdNET-Analyzer's band, below the file's Nyquist frequency."""
    return LOW_FREQ_HZ, int(min(samplerate / 2, HIGH_FREQ_HZ))


def result_name(relative_path: str, suffix: str) -> str:
    """An audio file's own result file: its path without extension, plus BirdNET-Analyzer's suffix."""
    return f"{PurePosixPath(relative_path).with_suffix('')}{suffix}"


def csv_field(text: str) -> str:
    """Text as a CSV field: as it is, unless a comma, a quote or a line break needs quotes."""
    if any(character in text for character in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


class Table:
    """One of BirdNET-Analyzer's formats: a header, then each audio file's rows as lines.

    Per audio file (`combined` false): a fresh Table for each file's own result file. Combined: one Table for
    every file in turn, written as one file."""

    suffix: str
    combined_name: str | None = None

    def __init__(self, *, combined: bool = False, reviewers: bool = False):
        self.combined = combined
        self.reviewers = reviewers
        self.rows = 0  # rows written so far
        self._names: dict[str, tuple[str, str]] = {}

    def header(self) -> str:
        return ""

    def lines(self, audio: AudioFile, rows: Iterable[Row]) -> Iterator[str]:
        raise NotImplementedError

    def names(self, label: str) -> tuple[str, str]:
        """(scientific, common), worked out once per label."""
        found = self._names.get(label)
        if found is None:
            found = self._names[label] = split_label(label)
        return found


class RavenTable(Table):
    """Raven selection tables. Combined: selections numbered on, begin and end times on one time line of the files
    played one after the other (each file's start at the sum of the durations before it), "File Offset (s)" the
    time within its own file; files without rows add their duration and no row."""

    suffix = RAVEN_SUFFIX
    combined_name = COMBINED_RAVEN

    def __init__(self, *, combined: bool = False, reviewers: bool = False):
        super().__init__(combined=combined, reviewers=reviewers)
        self.selection = 0
        self.offset_s: float = 0  # BirdNET-Analyzer's running sum starts at the integer 0
        self._species: dict[str, str] = {}

    def header(self) -> str:
        return "\t".join(RAVEN_HEADER + ((REVIEWER_COLUMN,) if self.reviewers else ())) + "\n"

    def lines(self, audio: AudioFile, rows: Iterable[Row]) -> Iterator[str]:
        low, high = raven_band(audio.samplerate)
        band = f"\t{low}\t{high}\t"
        path, offset_s, combined, reviewers = audio.path, self.offset_s, self.combined, self.reviewers
        selection = first = self.selection
        last_start = last_end = None
        # Rows come by window: a window's times are written once for all its species.
        for _, start_s, end_s, label, score, who in rows:
            selection += 1
            if start_s != last_start or end_s != last_end:
                last_start, last_end = start_s, end_s
                start = seconds(start_s)
                if combined:
                    begin, end = str(round(start_s, 2) + offset_s), str(round(end_s, 2) + offset_s)
                else:
                    begin, end = start, seconds(end_s)
                times, place = f"\tSpectrogram 1\t1\t{begin}\t{end}{band}", f"\t{path}\t{start}"
            line = f"{selection}{times}{self.species(label)}\t{score:.4f}{place}"
            yield f"{line}\t{who}\n" if reviewers else f"{line}\n"
        self.selection = selection
        self.rows += selection - first
        if combined:
            self.offset_s += audio.duration_s
        elif selection == first:
            self.selection += 1
            line = f"{self.selection}\tSpectrogram 1\t1\t{NOCALL_SPAN[0]}\t{NOCALL_SPAN[1]}{band}{NOCALL}\t{NOCALL}\t"
            line += f"1.0\t{path}\t0"
            yield f"{line}\t\n" if reviewers else f"{line}\n"

    def species(self, label: str) -> str:
        """ "Common Name<TAB>Species Code" of a label, worked out once."""
        found = self._species.get(label)
        if found is None:
            found = self._species[label] = f"{self.names(label)[1]}\t{species_code(label)}"
        return found


def raven_list(paths: Iterable[str]) -> Iterator[str]:
    """BirdNET_SelectionTable.list.txt: the combined table's audio files in order, one a line."""
    return (f"{path}\n" for path in paths)


class CsvTable(Table):
    """BirdNET-Analyzer's CSV, with extra columns after "File": `extra_columns` names them, and `extra(audio)`
    gives a function that returns a row's values for them (",a,b", ready to append)."""

    suffix = CSV_SUFFIX
    combined_name = COMBINED_CSV

    def __init__(
        self,
        *,
        combined: bool = False,
        reviewers: bool = False,
        extra_columns: tuple[str, ...] = (),
        extra: Callable[[AudioFile], Callable[[Row], str]] | None = None,
    ):
        super().__init__(combined=combined, reviewers=reviewers)
        self.extra_columns = extra_columns
        self.extra = extra
        self._species: dict[str, str] = {}

    def header(self) -> str:
        return ",".join(CSV_HEADER + self.extra_columns + ((REVIEWER_COLUMN,) if self.reviewers else ())) + "\n"

    def lines(self, audio: AudioFile, rows: Iterable[Row]) -> Iterator[str]:
        path = csv_field(audio.path)
        extra = self.extra(audio) if self.extra is not None and self.extra_columns else None
        reviewers, last_start, last_end, count = self.reviewers, None, None, 0
        for row in rows:
            _, start_s, end_s, label, score, who = row
            count += 1
            if start_s != last_start or end_s != last_end:
                last_start, last_end = start_s, end_s
                times = f"{seconds(start_s)},{seconds(end_s)},"
            line = f"{times}{self.species(label)},{score:.4f},{path}"
            if extra is not None:
                line += extra(row)
            yield f"{line},{csv_field(who)}\n" if reviewers else f"{line}\n"
        self.rows += count

    def species(self, label: str) -> str:
        """ "Scientific name,Common name" of a label, worked out once."""
        found = self._species.get(label)
        if found is None:
            scientific_name, common_name = self.names(label)
            found = self._species[label] = f"{csv_field(scientific_name)},{csv_field(common_name)}"
        return found


class KaleidoscopeTable(Table):
    """Kaleidoscope's CSV as BirdNET-Analyzer writes it: the file as INDIR (its folder's parent), FOLDER and
    IN FILE; OFFSET and DURATION; the names and confidence; then the place, week, overlap and sensitivity."""

    suffix = KALEIDOSCOPE_SUFFIX
    combined_name = COMBINED_KALEIDOSCOPE

    def __init__(self, *, overlap_s: float, sensitivity: float, combined: bool = False, reviewers: bool = False):
        super().__init__(combined=combined, reviewers=reviewers)
        self.overlap_s = overlap_s
        self.sensitivity = sensitivity

    def header(self) -> str:
        return ",".join(KALEIDOSCOPE_HEADER + ((REVIEWER_COLUMN,) if self.reviewers else ())) + "\n"

    def lines(self, audio: AudioFile, rows: Iterable[Row]) -> Iterator[str]:
        folder_path, filename = posixpath.split(audio.path)
        parent, folder = posixpath.split(folder_path)
        where = f"{csv_field(parent.rstrip('/'))},{csv_field(folder)},{csv_field(filename)}"
        setting = f"{audio.latitude:.4f},{audio.longitude:.4f},{audio.week},{self.overlap_s},{self.sensitivity}"
        count = 0
        for _, start_s, end_s, label, score, who in rows:
            count += 1
            start, end = round(start_s, 2), round(end_s, 2)
            scientific_name, common_name = self.names(label)
            line = (
                f"{where},{start},{end - start},{csv_field(scientific_name)},{csv_field(common_name)},"
                f"{score:.4f},{setting}"
            )
            yield f"{line},{csv_field(who)}\n" if self.reviewers else f"{line}\n"
        self.rows += count


class AudacityLabels(Table):
    """Audacity's label track: start, end, "Scientific, Common" and the confidence, tab-separated, no header.
    BirdNET-Analyzer writes them per audio file only."""

    suffix = AUDACITY_SUFFIX

    def lines(self, audio: AudioFile, rows: Iterable[Row]) -> Iterator[str]:
        count = 0
        for _, start_s, end_s, label, score, _ in rows:
            count += 1
            yield f"{seconds(start_s)}\t{seconds(end_s)}\t{label.replace('_', ', ')}\t{score:.4f}\n"
        self.rows += count


def params_file(values: tuple) -> str:
    """BirdNET_analysis_params.csv: the names of BirdNET-Analyzer's analysis settings in one row, their values
    (None written empty) in the next, as Python's csv module writes them (lines ending in CR LF)."""
    if len(values) != len(PARAMS_HEADER):
        raise ValueError(f"{len(PARAMS_HEADER)} values needed, one per setting, got {len(values)}")
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(PARAMS_HEADER)
    writer.writerow(values)
    return text.getvalue()
