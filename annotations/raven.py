"""Raven selection tables in and out: import a table, a folder of them or BirdNET-Analyzer's combined table as sound
event annotations of a dataset's recordings, and export a dataset's annotations as one table per recording.

Reading (one rule per question):
- Which recording: the row's "Begin Path" (or Raven's "Begin File"); else, for BirdNET-Analyzer's combined table,
  its list file (`<table>.list.txt` beside it: the audio files in the order their times run on); else the table's
  own name (`<file>.BirdNET.selection.table.txt`, Raven's `<file>.Table.1.selections.txt`, or `<file>.txt`). A
  name is matched to the dataset's recordings by file name, and by its folders when several share the name.
- When in the file: in a table whose rows name several files (a combined table: times run on across the
  files), the row's "File Offset (s)", the end keeping the row's length, and a row whose begin time and offset
  disagree with its file's other rows is an error (a box moved in one column only); else the begin and end times.
- Which species: `species_column` if given; else every name column present of "Species", "Scientific Name",
  "Common Name" and "Species Code" (if none is, the first present of "Annotation", "Label", "Class"), and the
  cells a row fills must name the same species: a stale code beside an edited common name is an error, not a
  guess. A cell may name several species, separated by ";". A row without a species is a box without one.
  BirdNET-Analyzer's "nocall" rows are skipped.
- Raven writes a selection once per view (Waveform 1, Spectrogram 1): one row per Selection is kept, the
  spectrogram's.
- "Notes" (or "Comments") become the notes, with BirdNET's "Confidence" after them ("confidence 0.8123");
  "Tags" ("key:value; key:value") and "Call Type" (tag call_type) become free tags; "Annotator" the author when
  a user of that name exists here, else a tag "annotator". Channel and Raven's measurements are not kept.
- A box spanning the whole band (0 Hz to the recording's Nyquist frequency) is stored without frequencies: that
  is how the export writes a box without them.

Re-importing adds nothing twice: a row's import key is its box (times to the millisecond, frequencies to the
hertz) and its species, unique per recording; a row is skipped when its recording holds an annotation with that
key, or any annotation (drawn, confirmed, imported) with the same box and species. So a moved box or a changed
species is a new annotation, changed notes or tags alone are not. Every problem in every table is found before
anything is written, and then nothing is (services.add_imported writes all rows in one transaction).
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path, PurePosixPath

from django.contrib.auth import get_user_model

from annotations.errors import AnnotationError
from annotations.models import SoundEventAnnotation, SoundEventAnnotationTag
from annotations.services import ImportedAnnotation, ImportResult, add_imported, box_errors, tag_pairs, with_tags
from annotations.species import SpeciesNames
from echoroo.models import SPECIES, Dataset, Recording
from inference.birdnet_formats import NOCALL, RAVEN_SUFFIX, result_name, species_code, split_label

BEGIN, END, LOW, HIGH = "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)"
SELECTION, VIEW = "Selection", "View"
BEGIN_PATH, BEGIN_FILE, FILE_OFFSET = "Begin Path", "Begin File", "File Offset (s)"
NAME_COLUMNS = ("Species", "Scientific Name", "Common Name", "Species Code")
OTHER_SPECIES_COLUMNS = ("Annotation", "Label", "Class")
NOTES_COLUMNS = ("Notes", "Note", "Comments", "Comment")
TAGS, CALL_TYPE, ANNOTATOR, CONFIDENCE = "Tags", "Call Type", "Annotator", "Confidence"
BOX_COLUMNS = {"start_time": BEGIN, "end_time": END, "low_freq": LOW, "high_freq": HIGH}
# What the export writes, in this order.
EXPORT_HEADER = (
    SELECTION,
    VIEW,
    "Channel",
    BEGIN,
    END,
    LOW,
    HIGH,
    "Common Name",
    "Species Code",
    "Scientific Name",
    TAGS,
    ANNOTATOR,
    "Notes",
)
EXPORT_SUFFIX = ".Table.1.selections.txt"
# A table's name is its audio file's name (or stem) and one of these.
TABLE_SUFFIXES = (
    re.compile(re.escape(RAVEN_SUFFIX) + "$", re.IGNORECASE),
    re.compile(r"\.Table\.\d+\.selections\.txt$", re.IGNORECASE),
    re.compile(r"\.selections\.txt$", re.IGNORECASE),
    re.compile(r"\.txt$", re.IGNORECASE),
)
LIST_SUFFIX = ".list.txt"
NOT_TABLES = (LIST_SUFFIX, ".birdnet.results.txt")  # list files; BirdNET-Analyzer's Audacity labels
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".aif", ".aiff", ".aifc", ".m4a", ".wma", ".opus"}
# Problems listed at most: a broken 100,000-row table still gives a readable message.
MAX_ERRORS = 20


@dataclass(frozen=True)
class TableFile:
    path: Path
    name: str  # as messages name it: relative to the folder imported, or the file's name


def import_raven(dataset: Dataset, path: Path | str, *, by, species_column: str | None = None) -> ImportResult:
    """Import a Raven selection table, or every table under a folder, as annotations of the dataset's recordings."""
    reader = TableReader(dataset, species_column)
    rows: list[ImportedAnnotation] = []
    for table in table_files(Path(path)):
        rows.extend(reader.read(table))
    reader.raise_problems()
    fresh = not_annotated_yet(rows)
    result = add_imported(fresh, by=by, source=SoundEventAnnotation.Source.RAVEN)
    return ImportResult(result.added, result.already_there + len(rows) - len(fresh), result.annotations)


def table_files(path: Path) -> list[TableFile]:
    """The tables to read: the file itself, or every *.txt under the folder but list files and Audacity labels."""
    if path.is_file():
        return [TableFile(path, path.name)]
    if not path.is_dir():
        raise AnnotationError({"raven": f"{path} is neither a Raven selection table nor a folder of them"})
    found = []
    for file in sorted(path.rglob("*.[tT][xX][tT]")):
        name = file.relative_to(path).as_posix()
        if file.is_file() and not name.lower().endswith(NOT_TABLES) and not name.startswith("__MACOSX/"):
            found.append(TableFile(file, name))
    if not found:
        raise AnnotationError({"raven": f"{path} holds no Raven selection table (no *.txt file under it)"})
    return found


def import_key(start_s: float, end_s: float, low_hz: float | None, high_hz: float | None, labels: Iterable[str]) -> str:
    """What a re-import recognises a box by: its times to the millisecond, its band to the hertz, its species."""
    band = "" if low_hz is None else f"{low_hz:.0f}-{high_hz:.0f}Hz"
    species = "|".join(sorted(labels))
    key = f"raven:{start_s:.3f}-{end_s:.3f}s:{band}:{species}"
    if len(key) > 500:  # the column's size: many long species names
        key = f"raven:{start_s:.3f}-{end_s:.3f}s:{band}:sha1={hashlib.sha1(species.encode()).hexdigest()}"
    return key


def not_annotated_yet(rows: Sequence[ImportedAnnotation]) -> list[ImportedAnnotation]:
    """The rows whose box and species no annotation of their recording has yet, whatever its source or key."""
    recordings = {row.recording.pk for row in rows}
    if not recordings:
        return list(rows)
    species: dict[int, list[str]] = defaultdict(list)
    tags = SoundEventAnnotationTag.objects.filter(annotation__recording__in=recordings, tag__key=SPECIES)
    for annotation_id, label in tags.values_list("annotation_id", "tag__value"):
        species[annotation_id].append(label)
    boxes = SoundEventAnnotation.objects.filter(recording__in=recordings).values_list(
        "pk", "recording_id", "sound_event__start_time", "sound_event__end_time", "sound_event__low_freq",
        "sound_event__high_freq",
    )  # fmt: skip
    there = {(recording_id, import_key(*box, species[pk])) for pk, recording_id, *box in boxes}
    return [row for row in rows if (row.recording.pk, row.import_key) not in there]


# --- Reading ------------------------------------------------------------------------------------------------------


class RecordingNames:
    """The dataset's recordings by file name: a name written in a table (a path from any machine) -> a recording."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.by_name: dict[str, list[Recording]] = defaultdict(list)
        self.by_stem: dict[str, list[Recording]] = defaultdict(list)
        for recording in dataset.recordings.only("id", "path", "duration", "samplerate", "dataset_id"):
            path = PurePosixPath(recording.path)
            for index, key in ((self.by_name, path.name), (self.by_stem, path.stem)):
                index[key].append(recording)
                if key.casefold() != key:
                    index[key.casefold()].append(recording)
        self.found: dict[tuple[str, bool], Recording | str] = {}

    def of_path(self, written: str) -> Recording | str:
        """The recording a Begin Path, Begin File or list entry names, or why none."""
        return self._find(written, stem=False)

    def of_table(self, table_name: str) -> Recording | str:
        """The recording a table is named after, or why none."""
        parts = table_name.split("/")
        base = parts[-1]
        for suffix in TABLE_SUFFIXES:
            if suffix.search(base):
                base = suffix.sub("", base)
                break
        stem = PurePosixPath(base).suffix.lower() not in AUDIO_SUFFIXES
        return self._find("/".join([*parts[:-1], base]), stem=stem)

    def _find(self, written: str, *, stem: bool) -> Recording | str:
        found = self.found.get((written, stem))
        if found is None:
            found = self.found[(written, stem)] = self._match(written, stem=stem)
        return found

    def _match(self, written: str, *, stem: bool) -> Recording | str:
        parts = [part for part in re.split(r"[\\/]", written.strip()) if part]
        if not parts:
            return "names no audio file"
        name, folders = parts[-1], parts[:-1]
        index = self.by_stem if stem else self.by_name
        candidates = index.get(name) or index.get(name.casefold()) or []
        what = f"file name {name!r}" if not stem else f"file name {name!r} (with any extension)"
        if not candidates:
            return f"no recording of dataset {self.dataset.name!r} has the {what}"
        if len(candidates) == 1:
            return candidates[0]
        # Several recordings share the name: the one whose folders match the most of those written.
        shared = {
            recording.pk: _common_tail(PurePosixPath(recording.path).parts[:-1], folders) for recording in candidates
        }
        best = max(shared.values())
        chosen = [recording for recording in candidates if shared[recording.pk] == best]
        if best > 0 and len(chosen) == 1:
            return chosen[0]
        listed = ", ".join(recording.path for recording in chosen[:5])
        return (
            f"{len(chosen)} recordings of dataset {self.dataset.name!r} have the {what} ({listed}): "
            "give the table its recording's folders, or a Begin Path column with them"
        )


def _common_tail(folders: Sequence[str], written: Sequence[str]) -> int:
    count = 0
    for mine, theirs in zip(reversed(folders), reversed(written), strict=False):
        if mine.casefold() != theirs.casefold():
            break
        count += 1
    return count


@dataclass(frozen=True)
class ListedFiles:
    """A combined table's list file: its audio files' recordings and where each starts on the table's time line."""

    recordings: list[Recording]
    starts_s: list[float]

    def locate(self, begin_s: float) -> tuple[Recording, float] | None:
        index = bisect.bisect_right(self.starts_s, begin_s + 1e-6) - 1
        if index < 0 or begin_s >= self.starts_s[-1] + self.recordings[-1].duration:
            return None
        return self.recordings[index], self.starts_s[index]


class TableReader:
    """Reads tables into rows, collecting every problem by file and line instead of stopping at the first."""

    def __init__(self, dataset: Dataset, species_column: str | None = None):
        self.dataset = dataset
        self.species_column = (species_column or "").strip() or None
        self.recordings = RecordingNames(dataset)
        self.names = SpeciesNames()
        self.labels: dict[str, str | None] = {}
        self.errors: dict[str, str] = {}
        self.unknown: dict[str, list[str]] = {}  # unknown species -> where it is written
        self.users: dict[str, object | None] = {}

    def problem(self, where: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.setdefault(where, message)
        else:
            self.errors["more"] = "more problems not listed: fix these first"

    def raise_problems(self) -> None:
        errors = dict(self.errors)
        if self.unknown:
            listed = "; ".join(
                f"{name!r} ({', '.join(where[:3])}{', ...' if len(where) > 3 else ''})"
                for name, where in self.unknown.items()
            )
            errors["species"] = (
                f"unknown species: {listed}. Name a model label, a scientific or common name, or an eBird code, "
                "or read another column with --species-column"
            )
        if errors:
            raise AnnotationError(errors)

    def read(self, table: TableFile) -> list[ImportedAnnotation]:
        """The table's rows, one per selection (problems are kept for raise_problems)."""
        lines = _lines(table)
        if lines is None:
            self.problem(table.name, "is not text (UTF-8 or Windows-1252): is it a Raven selection table?")
            return []
        if not lines or not lines[0].strip():
            self.problem(table.name, "is empty: a Raven selection table starts with its header line")
            return []
        header = [name.strip() for name in lines[0].split("\t")]
        columns = {name.casefold(): index for index, name in reversed(list(enumerate(header)))}
        missing = [name for name in (BEGIN, END) if name.casefold() not in columns]
        if (LOW.casefold() in columns) != (HIGH.casefold() in columns):
            missing.append(HIGH if LOW.casefold() in columns else LOW)
        if missing:
            self.problem(
                f"{table.name}:1",
                f"has no {' or '.join(repr(name) for name in missing)} column: not a Raven selection table? "
                f"(its columns: {', '.join(header)})",
            )
            return []
        species_columns = self._species_columns(table, header, columns)
        place = self._place(table, columns, lines)
        if species_columns is None or place is None:
            return []

        def cell(cells: list[str], name: str) -> str:
            index = columns.get(name.casefold())
            return cells[index].strip() if index is not None and index < len(cells) else ""

        chosen: dict[str, tuple[str, ImportedAnnotation]] = {}  # selection -> (view, row), in the table's order
        for number, line in enumerate(lines[1:], 2):
            if not line.strip():
                continue
            where = f"{table.name}:{number}"
            cells = line.split("\t")
            if len(cells) > len(header):
                self.problem(where, f"has {len(cells)} tab-separated fields; the header has {len(header)}")
                continue
            names = {column: cell(cells, column) for column in species_columns}
            written = [name for name in names.values() if name]
            if written and all(name.casefold() == NOCALL for name in written):
                continue  # BirdNET-Analyzer's "nothing found" row
            selection = cell(cells, SELECTION) or f"line {number}"
            view = cell(cells, VIEW).casefold()
            kept = chosen.get(selection)
            if kept is not None and (kept[0].startswith("spectrogram") or not view.startswith("spectrogram")):
                continue  # the same selection in another view
            row = self._row(where, cells, cell, names, place)
            if row is not None:
                chosen[selection] = (view, row)
        return [row for _, row in chosen.values()]

    def _species_columns(self, table: TableFile, header: list[str], columns: dict[str, int]) -> list[str] | None:
        if self.species_column is not None:
            if self.species_column.casefold() in columns:
                return [self.species_column]
            self.problem(f"{table.name}:1", f"has no column {self.species_column!r} (its columns: {', '.join(header)})")
            return None
        present = [name for name in NAME_COLUMNS if name.casefold() in columns]
        present = present or [name for name in OTHER_SPECIES_COLUMNS if name.casefold() in columns][:1]
        if not present:
            self.problem(
                f"{table.name}:1",
                f"has no species column (looked for {', '.join(NAME_COLUMNS + OTHER_SPECIES_COLUMNS)}): "
                f"name it with --species-column (its columns: {', '.join(header)})",
            )
            return None
        return present

    def _place(self, table: TableFile, columns: dict[str, int], lines: list[str]) -> Callable | None:
        """A function (where, cells, cell, begin, end) -> (recording, start_s, end_s) in its file, or None."""
        own_file = next((name for name in (BEGIN_PATH, BEGIN_FILE) if name.casefold() in columns), None)
        # File Offset is read only where the times run on across files: in a table of one file it equals the begin
        # time, and a box moved in a spreadsheet leaves it stale (Raven computes it again; a spreadsheet does not).
        runs_on = False
        if own_file and FILE_OFFSET.casefold() in columns:
            index = columns[own_file.casefold()]
            named = {cells[index].strip() for cells in (line.split("\t") for line in lines[1:]) if index < len(cells)}
            runs_on = len(named - {""}) > 1
        file_starts_s: dict[int, tuple[float, str]] = {}  # recording -> (its start on the time line, the row saying so)
        listed = self._listed_files(table)
        if listed is False:
            return None
        named_after: list[Recording | str] = []  # the table's own name's recording, looked up when first needed

        def place(where: str, cells: list[str], cell, begin_s: float, end_s: float):
            written = cell(cells, own_file) if own_file else ""
            if written:
                found = self.recordings.of_path(written)
                if isinstance(found, str):
                    self.problem(where, f"{own_file} {written!r}: {found}")
                    return None
                offset = cell(cells, FILE_OFFSET) if runs_on else ""
                if not offset:
                    return found, begin_s, end_s
                start_s = self._number(where, FILE_OFFSET, offset)
                if start_s is None:
                    return None
                file_start_s, first = file_starts_s.setdefault(found.pk, (begin_s - start_s, where))
                if abs(begin_s - start_s - file_start_s) > 0.01:
                    self.problem(
                        where,
                        f"{BEGIN} {begin_s:g} and {FILE_OFFSET} {start_s:g} put the file's start at "
                        f"{begin_s - start_s:g} s on the table's time line, {first} at {file_start_s:g} s: "
                        "a box moved in one column only? Change both",
                    )
                    return None
                return found, start_s, round(start_s + (end_s - begin_s), 6)
            if listed is not None:
                located = listed.locate(begin_s)
                if located is None:
                    self.problem(where, f"{BEGIN} {begin_s:g} is past the end of the files in its list file")
                    return None
                recording, file_start_s = located
                return recording, round(begin_s - file_start_s, 6), round(end_s - file_start_s, 6)
            if not named_after:
                named_after.append(self.recordings.of_table(table.name))
            found = named_after[0]
            if isinstance(found, str):
                how = f"its {own_file} is empty and " if own_file else ""
                self.problem(where, f"{how}the table's name names its audio file: {found}")
                return None
            return found, begin_s, end_s

        return place

    def _listed_files(self, table: TableFile) -> ListedFiles | None | bool:
        """The list file beside a combined table, if there is one (False: it names a file not found)."""
        list_path = table.path.with_name(table.path.name[: -len(".txt")] + LIST_SUFFIX)
        if not list_path.is_file():
            return None
        recordings, starts_s, total_s = [], [], 0.0
        lines = _lines(TableFile(list_path, list_path.name)) or []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            found = self.recordings.of_path(line)
            if isinstance(found, str):
                self.problem(f"{table.name[: -len('.txt')]}{LIST_SUFFIX}:{number}", found)
                return False
            recordings.append(found)
            starts_s.append(total_s)
            total_s += found.duration
        return ListedFiles(recordings, starts_s) if recordings else None

    def _number(self, where: str, column: str, text: str) -> float | None:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            self.problem(where, f"{column} {text!r} is not a number")
            return None
        return value

    def _row(self, where, cells, cell, names: dict[str, str], place) -> ImportedAnnotation | None:
        numbers = {}
        for column in (BEGIN, END, LOW, HIGH):
            text = cell(cells, column)
            if not text and column in (LOW, HIGH):
                numbers[column] = None
                continue
            if not text:
                self.problem(where, f"{column} is empty")
                return None
            numbers[column] = self._number(where, column, text)
            if numbers[column] is None:
                return None
        begin_s, end_s, low_hz, high_hz = numbers[BEGIN], numbers[END], numbers[LOW], numbers[HIGH]
        if end_s <= begin_s:
            self.problem(where, f"{END} {end_s:g} is not after {BEGIN} {begin_s:g}")
            return None
        labels = self._labels(where, names)
        placed = place(where, cells, cell, begin_s, end_s)
        if placed is None or labels is None:
            return None
        recording, start_s, end_s = placed
        if low_hz == 0 and high_hz is not None and abs(high_hz - recording.samplerate / 2) < 0.5:
            low_hz = high_hz = None  # the whole band: a box without frequencies
        problems = box_errors(recording, start_s, end_s, low_hz, high_hz)
        if problems:
            listed = "; ".join(f"{BOX_COLUMNS[name]} {message}" for name, message in problems.items())
            self.problem(where, f"{listed} (on recording {recording.path})")
            return None
        tags = self._tags(where, cells, cell)
        if tags is None:
            return None
        notes = next((cell(cells, name) for name in NOTES_COLUMNS if cell(cells, name)), "")
        confidence = cell(cells, CONFIDENCE)
        if confidence:
            notes = "; ".join(part for part in (notes, f"confidence {confidence}") if part)
        author = None
        annotator = cell(cells, ANNOTATOR)
        if annotator:
            author = self._user(annotator)
            if author is None:
                tags.append(("annotator", annotator))
        return ImportedAnnotation(
            recording=recording,
            start_time=start_s,
            end_time=end_s,
            low_freq=low_hz,
            high_freq=high_hz,
            tags=[(SPECIES, label) for label in labels] + tags,
            notes=notes,
            import_key=import_key(start_s, end_s, low_hz, high_hz, labels),
            created_by=author,
        )

    def _labels(self, where: str, names: dict[str, str]) -> list[str] | None:
        """The row's species, as labels; None when a name is unknown or the columns disagree."""
        found: dict[str, list[str]] = {}
        unknown = False
        for column, text in names.items():
            labels = []
            for name in (part.strip() for part in text.split(";")):
                if not name:
                    continue
                label = self._label(name)
                if label is None:
                    self.unknown.setdefault(name, []).append(where)
                    unknown = True
                else:
                    labels.append(label)
            if text:
                found[column] = sorted(set(labels))
        if unknown:
            return None
        if len({tuple(labels) for labels in found.values()}) > 1:
            said = ", ".join(f"{column} {names[column]!r}" for column in found)
            self.problem(
                where,
                f"the species columns name different species ({said}): make them agree, or read one of them "
                "with --species-column",
            )
            return None
        return next(iter(found.values()), [])

    def _label(self, name: str) -> str | None:
        if name not in self.labels:
            self.labels[name] = self.names.label(name)
        return self.labels[name]

    def _tags(self, where, cells, cell) -> list[tuple[str, str]] | None:
        pairs = []
        for part in cell(cells, TAGS).split(";"):
            if part.strip():
                key, colon, value = part.partition(":")
                if not colon:
                    self.problem(where, f"{TAGS}: {part.strip()!r} is not key:value")
                    return None
                pairs.append((key, value))
        if cell(cells, CALL_TYPE):
            pairs.append(("call_type", cell(cells, CALL_TYPE)))
        try:
            return tag_pairs((), pairs)
        except AnnotationError as error:
            self.problem(where, "; ".join(error.errors.values()))
            return None

    def _user(self, username: str):
        if username not in self.users:
            self.users[username] = get_user_model().objects.filter(username=username).first()
        return self.users[username]


def _lines(table: TableFile) -> list[str] | None:
    """The file's lines without their line ends; None when it is not text."""
    data = table.path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\0" in text:
            return None
        return [line.rstrip("\r") for line in text.split("\n")]
    return None


# --- Writing ------------------------------------------------------------------------------------------------------


def export_raven(
    dataset: Dataset, directory: Path | str, *, recordings: Iterable[Recording] | None = None
) -> list[Path]:
    """One Raven selection table per recording with annotations, under the recording's folders; the files written."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise AnnotationError({"raven": f"{directory} is a file: give a folder for the tables"})
    annotations = with_tags().filter(recording__dataset=dataset)
    if recordings is not None:
        annotations = annotations.filter(recording__in=list(recordings))
    ordered = annotations.order_by("recording__path", "sound_event__start_time", "sound_event__end_time", "pk")
    written = []
    for _, group in groupby(ordered.iterator(chunk_size=2000), key=lambda annotation: annotation.recording_id):
        group = list(group)
        recording = group[0].recording
        path = directory / result_name(recording.path, EXPORT_SUFFIX)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as table:
            table.write("\t".join(EXPORT_HEADER) + "\n")
            table.writelines(f"{line}\n" for line in export_lines(recording, group))
        written.append(path)
    return written


def export_lines(recording: Recording, annotations: Sequence[SoundEventAnnotation]) -> Iterable[str]:
    """A table's rows: one per annotation, in the order given."""
    for selection, annotation in enumerate(annotations, 1):
        event = annotation.sound_event
        low_hz, high_hz = event.low_freq, event.high_freq
        if low_hz is None:
            low_hz, high_hz = 0, recording.samplerate / 2
        pairs = sorted((row.tag.key, row.tag.value) for row in annotation.tags.all())
        labels = [value for key, value in pairs if key == SPECIES]
        names = [split_label(label) for label in labels]
        cells = (
            str(selection),
            "Spectrogram 1",
            "1",
            repr(float(event.start_time)),
            repr(float(event.end_time)),
            _hertz(low_hz),
            _hertz(high_hz),
            "; ".join(common for _, common in names),
            "; ".join(species_code(label) for label in labels),
            "; ".join(scientific for scientific, _ in names),
            "; ".join(f"{key}:{value}" for key, value in pairs if key != SPECIES),
            annotation.created_by.get_username() if annotation.created_by else "",
            annotation.notes,
        )
        yield "\t".join(_one_line(text) for text in cells)


def _hertz(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _one_line(text: str) -> str:
    """A cell of a tab-separated table: tabs and line breaks become spaces."""
    return re.sub(r"[\t\r\n]+", " ", text)
