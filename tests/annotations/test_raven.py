"""Raven selection tables in and out: tables BirdNET-Analyzer's formats wrote from a real BirdNET job on the shared
recordings (our export_detections), edited as a person would, imported back and checked row by row; Raven's own
tables; malformed tables (a clear error, nothing written); the export read back by the import.

What a table says is read here with Python's csv module and the eBird code file in tests/data, never with the
import's own parsing or species lookup.
"""

from __future__ import annotations

import csv
import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from annotations import services
from annotations.errors import AnnotationError
from annotations.models import AnnotationChange, SoundEventAnnotation, SoundEventAnnotationTag
from annotations.raven import export_raven, import_raven
from echoroo.models import SoundEvent, Tag
from inference import services as inference
from inference.models import InferenceJob
from inference.runtimes.birdnet import package_labels
from tests.conftest import SHARED_DATA, import_field_recordings

pytestmark = pytest.mark.django_db

# A two-minute soundscape with House Finch, Dark-eyed Junco and Black-capped Chickadee (48 kHz), and 10 s of a
# ruffed grouse drumming (32 kHz).
FILES = ["soundscape.flac", "rugr_drum.wav"]
CONFIG = {"confidence_threshold": 0.5, "use_metadata_filter": False}
CODES = json.loads((SHARED_DATA / "ebird" / "eBird_taxonomy_codes_2024E.json").read_text(encoding="utf-8"))
LABEL_OF_CODE = {code: label for label, code in CODES.items() if "_" in label}
LABELS = {f"{label.scientific_name}_{label.common_name}" for label in package_labels()}
LABEL_OF_COMMON = {label.split("_", 1)[1].casefold(): label for label in LABELS}
ROBIN = "Turdus migratorius_American Robin"
BLUE_JAY = "Cyanocitta cristata_Blue Jay"


@pytest.fixture
def job(audio_root, user) -> InferenceJob:
    dataset = import_field_recordings(audio_root, FILES, dataset="Field season")
    dataset.created_by = user
    dataset.save()
    created = inference.create_job(model_name="birdnet", dataset=dataset, config=CONFIG, by=user)
    finished = inference.start_job(created, sync=True)
    assert finished.status == InferenceJob.Status.COMPLETED
    return finished


@pytest.fixture
def tables(job, tmp_path) -> Path:
    """The job's detections as BirdNET-Analyzer's per-file Raven tables, in a folder."""
    folder = tmp_path / "tables"
    call_command("export_detections", "--job", str(job.uuid), "--format", "raven", "--output", str(folder))
    return folder


def soundscape_table(folder: Path) -> Path:
    return folder / "Field_season" / "soundscape.BirdNET.selection.table.txt"


def read_table(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as table:
        return list(csv.DictReader(table, delimiter="\t"))


def write_table(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    header = header or list(rows[0])
    with path.open("w", encoding="utf-8", newline="") as table:
        writer = csv.DictWriter(table, header, delimiter="\t", lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def expected(rows: list[dict], *, combined: bool = False) -> set[tuple]:
    """(file name, start, end, low, high, label) of a BirdNET table's rows but its "nocall" row, by hand: times in
    the file are the begin and end times, or in a combined table the file offset and the row's length."""
    found = set()
    for row in rows:
        if row["Common Name"] == "nocall":
            continue
        label = LABEL_OF_CODE.get(row["Species Code"]) or LABEL_OF_COMMON[row["Common Name"].casefold()]
        offset = float(row["File Offset (s)"] if combined else row["Begin Time (s)"])
        length = float(row["End Time (s)"]) - float(row["Begin Time (s)"])
        found.add(
            (
                Path(row["Begin Path"]).name,
                round(offset, 3),
                round(offset + length, 3),
                float(row["Low Freq (Hz)"]),
                float(row["High Freq (Hz)"]),
                label,
            )
        )
    return found


def stored(dataset=None) -> set[tuple]:
    """(file name, start, end, low, high, species) of the annotations."""
    annotations = services.with_tags()
    if dataset is not None:
        annotations = annotations.filter(recording__dataset=dataset)
    found = set()
    for annotation in annotations:
        event = annotation.sound_event
        species = "|".join(sorted(row.tag.value for row in annotation.tags.all() if row.tag.key == "species"))
        found.add(
            (
                Path(annotation.recording.path).name,
                round(event.start_time, 3),
                round(event.end_time, 3),
                event.low_freq,
                event.high_freq,
                species,
            )
        )
    return found


def counts() -> tuple[int, ...]:
    return tuple(
        model.objects.count()
        for model in (SoundEvent, SoundEventAnnotation, SoundEventAnnotationTag, AnnotationChange, Tag)
    )


def test_birdnet_tables_import_as_annotations_row_by_row(job, tables, user):
    rows = [row for path in sorted(tables.rglob("*.txt")) for row in read_table(path)]
    wanted = expected(rows)
    assert len(wanted) >= 3  # the soundscape's birds at 0.5 or more

    result = import_raven(job.dataset, tables, by=user)

    assert (result.added, result.already_there) == (len(wanted), 0)
    assert stored() == wanted
    annotation = SoundEventAnnotation.objects.select_related("sound_event").first()
    assert annotation.source == "raven" and annotation.created_by == user
    assert annotation.notes.startswith("confidence 0.")
    assert AnnotationChange.objects.filter(action="created").count() == len(wanted)


def test_reimporting_the_same_tables_adds_nothing(job, tables, user):
    first = import_raven(job.dataset, tables, by=user)
    before = counts()
    again = import_raven(job.dataset, tables, by=None)
    assert (again.added, again.already_there) == (0, first.added)
    assert counts() == before


def edit(table: Path) -> list[dict]:
    """As a person would in a spreadsheet: move the first box (its File Offset left as it was), rename the second's
    species by its common name (clearing the code), and add a selection with only a common name."""
    rows = read_table(table)
    assert len(rows) >= 2
    rows[0]["Begin Time (s)"] = str(float(rows[0]["Begin Time (s)"]) + 0.5)
    rows[0]["End Time (s)"] = str(float(rows[0]["End Time (s)"]) - 0.25)
    rows[1]["Common Name"], rows[1]["Species Code"] = "american robin", ""
    added = dict(rows[-1])
    added.update(
        {
            "Selection": str(len(rows) + 1),
            "Begin Time (s)": "100.125",
            "End Time (s)": "101.5",
            "Low Freq (Hz)": "2000",
            "High Freq (Hz)": "6500.5",
            "Common Name": "Blue Jay",
            "Species Code": "",
            "Confidence": "",
        }
    )
    rows.append(added)
    write_table(table, rows)
    return rows


def test_an_edited_table_imports_as_edited(job, tables, user):
    table = soundscape_table(tables)
    rows = edit(table)
    wanted = expected(rows)
    assert ("soundscape.flac", 100.125, 101.5, 2000.0, 6500.5, BLUE_JAY) in wanted

    result = import_raven(job.dataset, table, by=user)

    assert result.added == len(rows)
    assert stored() == wanted
    assert sum(label == ROBIN for *_, label in stored()) >= 1


def test_importing_the_edited_table_after_the_original_adds_the_edited_rows_only(job, tables, user):
    table = soundscape_table(tables)
    first = import_raven(job.dataset, table, by=user)
    rows = edit(table)
    result = import_raven(job.dataset, table, by=user)
    # The moved box, the renamed species and the new row are new; the rest was there.
    assert (result.added, result.already_there) == (3, len(rows) - 3)
    assert SoundEventAnnotation.objects.count() == first.added + 3


def test_a_stale_species_code_beside_an_edited_common_name_is_refused_unless_one_column_is_read(job, tables, user):
    table = soundscape_table(tables)
    rows = read_table(table)
    rows[1]["Common Name"] = "Blue Jay"  # its Species Code still names the bird BirdNET found
    write_table(table, rows)

    with pytest.raises(AnnotationError) as refused:
        import_raven(job.dataset, table, by=user)
    assert "the species columns name different species" in refused.value.errors[f"{table.name}:3"]
    assert not SoundEventAnnotation.objects.exists()

    import_raven(job.dataset, table, by=user, species_column="Common Name")
    assert sum(label == BLUE_JAY for *_, label in stored()) == 1


def test_the_combined_table_with_its_list_file_imports_as_the_per_file_tables_do(job, tables, tmp_path, user):
    combined = tmp_path / "combined"
    call_command(
        "export_detections", "--job", str(job.uuid), "--format", "raven", "--combined", "--output", str(combined)
    )
    rows = read_table(combined / "BirdNET_SelectionTable.txt")
    # Times run on across the files: the soundscape's rows begin after the 10 s of the grouse's file.
    wanted = expected([row for path in sorted(tables.rglob("*.txt")) for row in read_table(path)])
    assert expected(rows, combined=True) == wanted
    assert min(float(row["Begin Time (s)"]) for row in rows if "soundscape" in row["Begin Path"]) >= 10

    result = import_raven(job.dataset, combined / "BirdNET_SelectionTable.txt", by=user)
    assert result.added == len(wanted) and stored() == wanted

    # Without its Begin Path and File Offset columns, the list file places each row.
    SoundEventAnnotation.objects.all().delete()
    header = [name for name in rows[0] if name not in ("Begin Path", "File Offset (s)")]
    write_table(combined / "BirdNET_SelectionTable.txt", rows, header)
    import_raven(job.dataset, combined / "BirdNET_SelectionTable.txt", by=user)
    assert stored() == wanted


def test_a_combined_table_whose_box_moved_in_one_time_column_only_is_refused(job, tmp_path, user):
    combined = tmp_path / "combined"
    call_command(
        "export_detections", "--job", str(job.uuid), "--format", "raven", "--combined", "--output", str(combined)
    )
    rows = read_table(combined / "BirdNET_SelectionTable.txt")
    moved = max(range(len(rows)), key=lambda index: float(rows[index]["Begin Time (s)"]))
    rows[moved]["Begin Time (s)"] = str(float(rows[moved]["Begin Time (s)"]) + 1)
    write_table(combined / "BirdNET_SelectionTable.txt", rows)
    with pytest.raises(AnnotationError) as refused:
        import_raven(job.dataset, combined / "BirdNET_SelectionTable.txt", by=user)
    assert (
        "a box moved in one column only? Change both" in refused.value.errors[f"BirdNET_SelectionTable.txt:{moved + 2}"]
    )
    assert not SoundEventAnnotation.objects.exists()


RAVEN_TABLE = (
    "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tSpecies\tNotes\n"
    "1\tWaveform 1\t1\t1.500000000\t2.250000000\t1200.0\t4800.0\tHaemorhous mexicanus\tclear\n"
    "1\tSpectrogram 1\t1\t1.500000000\t2.250000000\t1200.0\t4800.0\tHaemorhous mexicanus\tclear\n"
    "2\tSpectrogram 1\t1\t10.000000000\t11.000000000\t0.0\t24000.0\tdaejun; bkcchi\t\n"
    "2\tWaveform 1\t1\t10.000000000\t11.000000000\t0.0\t24000.0\tdaejun; bkcchi\t\n"
)


def test_ravens_own_table_keeps_one_row_per_selection_and_reads_the_whole_band_as_no_band(job, tmp_path, user):
    table = tmp_path / "soundscape.Table.1.selections.txt"
    table.write_text(RAVEN_TABLE, encoding="utf-8")

    result = import_raven(job.dataset, table, by=user)

    assert result.added == 2
    assert stored() == {
        ("soundscape.flac", 1.5, 2.25, 1200.0, 4800.0, "Haemorhous mexicanus_House Finch"),
        (
            "soundscape.flac",
            10.0,
            11.0,
            None,
            None,
            "Junco hyemalis_Dark-eyed Junco|Poecile atricapillus_Black-capped Chickadee",
        ),
    }
    assert SoundEventAnnotation.objects.get(sound_event__start_time=1.5).notes == "clear"


@pytest.mark.parametrize(
    ("change", "line", "words"),
    [
        (lambda text: text.replace("End Time (s)", "End"), 1, "has no 'End Time (s)' column"),
        (lambda text: text.replace("Species", "Sound"), 1, "has no species column"),
        (lambda text: text.replace("10.000000000", "ten", 1), 4, "Begin Time (s) 'ten' is not a number"),
        (lambda text: text.replace("11.000000000", "9.5", 1), 4, "End Time (s) 9.5 is not after Begin Time (s) 10"),
        (lambda text: text.replace("11.000000000", "120.5", 1), 4, "End Time (s) is past the recording's end"),
        (lambda text: text.replace("4800.0", "24000.5", 2), 3, "High Freq (Hz) is above the recording's Nyquist"),
        (lambda text: text.replace("4800.0", "800.0", 2), 3, "High Freq (Hz) must be above low_freq"),
        (lambda text: text.replace("\tclear\n", "\tclear\textra\n", 2), 3, "has 10 tab-separated fields"),
        (lambda text: text.replace("Haemorhous mexicanus\tclear", "House Finch\tclear", 1), 3, None),
    ],
)
def test_a_malformed_table_names_its_file_and_line_and_writes_nothing(job, tmp_path, user, change, line, words):
    folder = tmp_path / "tables"
    folder.mkdir()
    (folder / "soundscape.Table.1.selections.txt").write_text(change(RAVEN_TABLE), encoding="utf-8")
    # A good table beside it: nothing of it is written either.
    (folder / "rugr_drum.Table.1.selections.txt").write_text(
        "Begin Time (s)\tEnd Time (s)\tSpecies\n1\t2\tBonasa umbellus\n", encoding="utf-8"
    )
    before = counts()

    if words is None:  # a common name is fine: the row imports
        import_raven(job.dataset, folder, by=user)
        assert counts() != before
        return
    with pytest.raises(AnnotationError) as refused:
        import_raven(job.dataset, folder, by=user)

    assert words in refused.value.errors[f"soundscape.Table.1.selections.txt:{line}"], refused.value.errors
    assert counts() == before


def test_unknown_species_are_listed_all_at_once_and_nothing_is_written(job, tmp_path, user):
    table = tmp_path / "soundscape.Table.1.selections.txt"
    text = RAVEN_TABLE.replace("Haemorhous mexicanus", "Dodo", 1).replace("daejun; bkcchi", "bkcchi; Snark", 1)
    table.write_text(text, encoding="utf-8")
    before = counts()

    with pytest.raises(AnnotationError) as refused:
        import_raven(job.dataset, table, by=user)

    message = refused.value.errors["species"]
    assert "'Dodo' (soundscape.Table.1.selections.txt:2)" in message
    assert "'Snark' (soundscape.Table.1.selections.txt:4)" in message
    assert counts() == before


def test_a_table_naming_no_recording_or_several_says_which(job, audio_root, tmp_path, user):
    table = tmp_path / "owl.Table.1.selections.txt"
    table.write_text(RAVEN_TABLE, encoding="utf-8")
    with pytest.raises(AnnotationError) as refused:
        import_raven(job.dataset, table, by=user)
    assert "no recording of dataset 'Field season' has the file name 'owl'" in refused.value.errors[f"{table.name}:2"]

    # Two recordings named soundscape.flac, in two folders: the table's folder or its Begin Path tells them apart.
    other = audio_root / "Field_season" / "east"
    other.mkdir()
    shutil.copy(SHARED_DATA / "soundscape.flac", other / "soundscape.flac")
    import_field_recordings(audio_root, [], dataset="Field season")
    assert job.dataset.recordings.filter(path__endswith="soundscape.flac").count() == 2
    table = tmp_path / "soundscape.Table.1.selections.txt"
    table.write_text(RAVEN_TABLE, encoding="utf-8")
    with pytest.raises(AnnotationError) as refused:
        import_raven(job.dataset, table, by=user)
    message = refused.value.errors[f"{table.name}:2"]
    assert "2 recordings of dataset 'Field season' have the file name 'soundscape'" in message
    assert "Field_season/east/soundscape.flac" in message

    (tmp_path / "folders" / "east").mkdir(parents=True)
    shutil.move(table, tmp_path / "folders" / "east" / table.name)
    import_raven(job.dataset, tmp_path / "folders", by=user)
    assert set(SoundEventAnnotation.objects.values_list("recording__path", flat=True)) == {
        "Field_season/east/soundscape.flac"
    }


def draw_some(dataset, user, staff) -> None:
    soundscape = dataset.recordings.get(path__endswith="soundscape.flac")
    grouse = dataset.recordings.get(path__endswith="rugr_drum.wav")
    services.create_annotation(
        soundscape, by=user, start_time=1.25, end_time=2.125, low_freq=1500.0, high_freq=7250.25,
        species=["House Finch"], tags=[("call_type", "song"), ("quality", "A")], notes="two\tlines\nhere",
    )  # fmt: skip
    services.create_annotation(soundscape, by=staff, start_time=30.0, end_time=33.0, species=["daejun", "bkcchi"])
    services.create_annotation(grouse, by=None, start_time=0.5, end_time=9.75, low_freq=0.0, high_freq=200.0)


def described(dataset) -> list[tuple]:
    rows = []
    for annotation in services.with_tags().filter(recording__dataset=dataset):
        event = annotation.sound_event
        rows.append(
            (
                Path(annotation.recording.path).name,
                event.start_time,
                event.end_time,
                event.low_freq,
                event.high_freq,
                sorted((row.tag.key, row.tag.value) for row in annotation.tags.all()),
                annotation.notes,
                annotation.created_by_id,
            )
        )
    return sorted(rows, key=repr)


def test_the_export_reads_back_as_the_same_annotations(job, audio_root, tmp_path, user, staff):
    draw_some(job.dataset, user, staff)
    copy = import_field_recordings(audio_root, FILES, dataset="Copy")

    written = export_raven(job.dataset, tmp_path / "out")
    assert sorted(path.relative_to(tmp_path / "out").as_posix() for path in written) == [
        "Field_season/rugr_drum.Table.1.selections.txt",
        "Field_season/soundscape.Table.1.selections.txt",
    ]
    rows = read_table(written[1])
    assert rows[0] == {
        "Selection": "1",
        "View": "Spectrogram 1",
        "Channel": "1",
        "Begin Time (s)": "1.25",
        "End Time (s)": "2.125",
        "Low Freq (Hz)": "1500",
        "High Freq (Hz)": "7250.25",
        "Common Name": "House Finch",
        "Species Code": "houfin",
        "Scientific Name": "Haemorhous mexicanus",
        "Tags": "call_type:song; quality:A",
        "Annotator": "ecologist",
        "Notes": "two lines here",
    }
    assert (rows[1]["Low Freq (Hz)"], rows[1]["High Freq (Hz)"]) == ("0", "24000")  # no band: all of it
    assert rows[1]["Species Code"] == "daejun; bkcchi"

    result = import_raven(copy, tmp_path / "out", by=None)

    assert result.added == 3
    original = [row[:6] + (row[6].replace("\t", " ").replace("\n", " "), row[7]) for row in described(job.dataset)]
    assert described(copy) == original
    # Into the dataset it came from, nothing is new.
    assert import_raven(job.dataset, tmp_path / "out", by=None).added == 0


def test_an_export_of_recordings_picks_those_and_an_unknown_annotator_becomes_a_tag(job, tmp_path, user, staff):
    draw_some(job.dataset, user, staff)
    soundscape = job.dataset.recordings.filter(path__endswith="soundscape.flac")
    written = export_raven(job.dataset, tmp_path / "out", recordings=soundscape)
    assert [path.name for path in written] == ["soundscape.Table.1.selections.txt"]
    rows = read_table(written[0])
    rows[0]["Annotator"] = "Someone Elsewhere"
    rows[0]["Begin Time (s)"] = "1.5"
    write_table(written[0], rows)
    result = import_raven(job.dataset, tmp_path / "out", by=staff)
    assert (result.added, result.already_there) == (1, 1)
    moved = services.with_tags().get(sound_event__start_time=1.5)
    assert ("annotator", "Someone Elsewhere") in {(row.tag.key, row.tag.value) for row in moved.tags.all()}
    assert moved.created_by == staff


def test_the_commands_write_and_read_tables(job, tmp_path, user):
    draw_some(job.dataset, user, user)
    out = StringIO()
    call_command("export_annotations", "--dataset", "Field season", "--raven", str(tmp_path / "out"), stdout=out)
    assert "Wrote 3 annotations of dataset 'Field season' to 2 tables in" in out.getvalue()
    out = StringIO()
    call_command("import_annotations", "--dataset", "Field season", "--raven", str(tmp_path / "out"), stdout=out)
    assert "Added 0 annotations to dataset 'Field season'" in out.getvalue()
    assert "; 3 already there (skipped)" in out.getvalue()
