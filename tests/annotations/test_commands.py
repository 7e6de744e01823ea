"""manage.py import_annotations and export_annotations: what they print, and their errors (nothing written)."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotations import services
from annotations.models import SoundEventAnnotation
from echoroo.models import SoundEvent
from tests.conftest import import_field_recordings

pytestmark = pytest.mark.django_db

TABLE = (
    "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tCommon Name\tCall Type\n"
    "1\tSpectrogram 1\t1\t1.5\t2.25\t600\t2400\tRuffed Grouse\tdrum\n"
    "2\tSpectrogram 1\t1\t4\t6.5\t300\t1800.5\tBonasa umbellus\t\n"
)
GROUSE = "Bonasa umbellus_Ruffed Grouse"


def run(name: str, *args) -> str:
    out = StringIO()
    call_command(name, *map(str, args), stdout=out)
    return out.getvalue()


@pytest.fixture
def table(tmp_path) -> Path:
    folder = tmp_path / "tables"
    folder.mkdir()
    path = folder / "rugr_drum.Table.1.selections.txt"
    path.write_text(TABLE, encoding="utf-8")
    return path


def test_import_says_what_it_added_and_skips_it_the_second_time(field_dataset, table):
    said = run("import_annotations", "--dataset", "Field season", "--raven", table.parent)
    assert f"Added 2 annotations to dataset 'Field season' from {table.parent}; 0 already there (skipped)" in said
    annotation = services.with_tags().get(sound_event__start_time=1.5)
    assert {(row.tag.key, row.tag.value) for row in annotation.tags.all()} == {
        ("species", GROUSE),
        ("call_type", "drum"),
    }
    assert annotation.created_by is None and annotation.recording.path == "Field_season/rugr_drum.wav"

    said = run("import_annotations", "--dataset", str(field_dataset.uuid), "--raven", table)
    assert "Added 0 annotations" in said and "; 2 already there (skipped)" in said
    assert SoundEventAnnotation.objects.count() == 2


def test_import_by_a_user_names_them(field_dataset, table, user):
    run("import_annotations", "--dataset", "Field season", "--raven", table, "--user", "ecologist")
    assert set(SoundEventAnnotation.objects.values_list("created_by", flat=True)) == {user.pk}


def test_a_species_column_is_read_when_named(field_dataset, table):
    table.write_text(TABLE.replace("Call Type", "Sound"), encoding="utf-8")
    with pytest.raises(CommandError, match="rugr_drum.Table.1.selections.txt:1: has no column 'Taxon'"):
        run("import_annotations", "--dataset", "Field season", "--raven", table, "--species-column", "Taxon")
    run("import_annotations", "--dataset", "Field season", "--raven", table, "--species-column", "Common Name")
    assert SoundEventAnnotation.objects.count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "Nowhere", "--raven", "{table}"], "--dataset: no dataset named 'Nowhere' (or with that UUID)"),
        (["--dataset", "Field season", "--raven", "{table}", "--user", "nobody"], "--user: no user named 'nobody'"),
        (
            ["--dataset", "Field season", "--raven", "/nonexistent/tables"],
            "--raven: /nonexistent/tables does not exist",
        ),
        (["--dataset", "Field season", "--aoef", "{table}", "--species-column", "X"], "only Raven tables"),
        (["--dataset", "Field season", "--raven", "{table}", "--aoef", "{table}"], "not allowed with argument"),
        (["--dataset", "Field season"], "one of the arguments --raven --aoef is required"),
    ],
)
def test_bad_arguments_are_refused_saying_why(field_dataset, table, args, message):
    with pytest.raises(CommandError) as refused:
        run("import_annotations", *(arg.format(table=table) for arg in args))
    assert message in str(refused.value)
    assert not SoundEventAnnotation.objects.exists()


def test_a_malformed_table_is_refused_naming_its_line_and_nothing_is_written(field_dataset, table):
    table.write_text(TABLE.replace("6.5", "10.5"), encoding="utf-8")  # rugr_drum.wav is 10 s long
    with pytest.raises(CommandError) as refused:
        run("import_annotations", "--dataset", "Field season", "--raven", table.parent)
    message = str(refused.value)
    assert message.startswith(f"Nothing imported from {table.parent}:")
    assert "rugr_drum.Table.1.selections.txt:3: End Time (s) is past the recording's end (10 s)" in message
    assert not SoundEvent.objects.exists()


def test_export_writes_tables_that_import_reads_into_another_dataset(field_dataset, audio_root, table, tmp_path):
    run("import_annotations", "--dataset", "Field season", "--raven", table)
    copy = import_field_recordings(audio_root, ["rugr_drum.wav"], dataset="Copy")

    said = run("export_annotations", "--dataset", "Field season", "--raven", tmp_path / "out")
    assert f"Wrote 2 annotations of dataset 'Field season' to 1 tables in {tmp_path / 'out'}" in said
    assert (tmp_path / "out" / "Field_season" / "rugr_drum.Table.1.selections.txt").is_file()
    said = run("import_annotations", "--dataset", "Copy", "--raven", tmp_path / "out")
    assert "Added 2 annotations to dataset 'Copy'" in said
    assert SoundEventAnnotation.objects.filter(recording__dataset=copy).count() == 2


def test_export_refuses_a_file_for_a_folder_and_an_unknown_dataset(field_dataset, table):
    with pytest.raises(CommandError, match=r"--raven: .* is a file: give a folder"):
        run("export_annotations", "--dataset", "Field season", "--raven", table)
    with pytest.raises(CommandError, match="--dataset: no dataset named 'Nowhere'"):
        run("export_annotations", "--dataset", "Nowhere", "--raven", table.parent)


def test_aoef_goes_out_and_back_in_through_the_commands(field_dataset, audio_root, table, tmp_path):
    pytest.importorskip("annotations.aoef")
    run("import_annotations", "--dataset", "Field season", "--raven", table)
    copy = import_field_recordings(audio_root, ["rugr_drum.wav"], dataset="Copy")
    said = run("export_annotations", "--dataset", "Field season", "--aoef", tmp_path / "out.json")
    assert f"Wrote 2 annotations of dataset 'Field season' to {tmp_path / 'out.json'}" in said
    said = run("import_annotations", "--dataset", "Copy", "--aoef", tmp_path / "out.json")
    assert "Added 2 annotations to dataset 'Copy'" in said
    assert SoundEventAnnotation.objects.filter(recording__dataset=copy).count() == 2
