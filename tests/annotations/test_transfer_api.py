"""The API's annotation import (Raven tables, a zip of them, AOEF) and export downloads: answers, rights, and a 400
that names the problem and writes nothing."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from annotations import services
from annotations.models import SoundEventAnnotation
from annotations.raven import export_raven
from echoroo.models import SoundEvent, Tag

pytestmark = pytest.mark.django_db

IMPORT = "/api/v1/sound-event-annotations/import/"
EXPORT = "/api/v1/sound-event-annotations/export/"
TABLE = (
    "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tSpecies Code\n"
    "1\tSpectrogram 1\t1\t1.5\t2.25\t600\t2400\trufgro\n"
    "2\tSpectrogram 1\t1\t4\t6.5\t300\t1800.5\truffed grouse\n"
)


@pytest.fixture
def owned(field_dataset, user):
    field_dataset.created_by = user
    field_dataset.save()
    return field_dataset


def upload(client, dataset, name: str, content: bytes, file_format: str = "raven", **fields):
    data = {"dataset": str(dataset.uuid), "format": file_format, "file": SimpleUploadedFile(name, content), **fields}
    return client.post(IMPORT, data, format="multipart")


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def counts() -> tuple[int, int, int]:
    return SoundEvent.objects.count(), SoundEventAnnotation.objects.count(), Tag.objects.count()


def test_a_table_uploaded_by_the_datasets_creator_is_imported_once(api_client, owned, user):
    answer = upload(api_client, owned, "rugr_drum.Table.1.selections.txt", TABLE.encode())
    assert answer.status_code == 200, answer.json()
    assert answer.json() == {"added": 2, "already_there": 0}
    assert set(SoundEventAnnotation.objects.values_list("recording__path", "created_by", "source")) == {
        ("Field_season/rugr_drum.wav", user.pk, "raven")
    }
    again = upload(api_client, owned, "rugr_drum.Table.1.selections.txt", TABLE.encode())
    assert again.json() == {"added": 0, "already_there": 2}


def test_a_zip_of_tables_keeps_their_folders(api_client, owned):
    content = zipped(
        {
            "Field_season/rugr_drum.Table.1.selections.txt": TABLE,
            "Field_season/1min.Table.1.selections.txt": TABLE.replace("ruffed grouse", "American Robin"),
            "__MACOSX/Field_season/._1min.Table.1.selections.txt": "\x00\x05junk",
        }
    )
    answer = upload(api_client, owned, "tables.zip", content)
    assert answer.json() == {"added": 4, "already_there": 0}
    assert SoundEventAnnotation.objects.filter(recording__path="Field_season/1min.wav").count() == 2


@pytest.mark.parametrize(
    ("name", "content", "fields", "field", "words"),
    [
        ("rugr_drum.txt", TABLE.replace("6.5", "12"), {}, "rugr_drum.txt:3", "past the recording's end"),
        ("rugr_drum.txt", TABLE.replace("2400", "16000.5"), {}, "rugr_drum.txt:2", "Nyquist"),
        ("rugr_drum.txt", TABLE.replace("rufgro", "Wood Snark"), {}, "species", "unknown species: 'Wood Snark'"),
        ("rugr_drum.txt", TABLE, {"species_column": "Taxon"}, "rugr_drum.txt:1", "has no column 'Taxon'"),
        ("owl.txt", TABLE, {}, "owl.txt:2", "no recording of dataset 'Field season' has the file name 'owl'"),
        ("t.zip", zipped({"../rugr_drum.txt": TABLE}), {}, "file", "a path outside its folder"),
        ("t.zip", b"PK\x03\x04 not really", {}, "rugr_drum.txt:1", None),
        ("rugr_drum.txt", TABLE, {"format": "csv"}, "format", "not a valid choice"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem_and_nothing_is_written(
    api_client, owned, name, content, fields, field, words
):
    content = content.encode() if isinstance(content, str) else content
    before = counts()
    answer = upload(api_client, owned, name, content, **fields)
    assert answer.status_code == 400
    if words is None:  # not a zip after all: read as a table, it is not one
        assert list(answer.json()) == ["t.zip:1"]
        return
    assert words in answer.json()[field][0], answer.json()
    assert counts() == before


def test_an_unknown_dataset_or_no_file_is_a_400(api_client, owned):
    elsewhere = {"dataset": "5f0c4a7e-0000-4000-8000-000000000000", "format": "raven"}
    answer = api_client.post(IMPORT, elsewhere | {"file": SimpleUploadedFile("t.txt", TABLE.encode())})
    assert answer.status_code == 400 and "no dataset with UUID" in answer.json()["dataset"][0]
    answer = api_client.post(IMPORT, {"dataset": str(owned.uuid), "format": "raven"}, format="multipart")
    assert answer.status_code == 400 and "file" in answer.json()


def test_only_staff_or_the_datasets_creator_may_import(field_dataset, user, staff):
    client = APIClient()
    client.force_authenticate(user)
    answer = upload(client, field_dataset, "rugr_drum.txt", TABLE.encode())  # created by nobody
    assert answer.status_code == 403 and not SoundEventAnnotation.objects.exists()
    client.force_authenticate(staff)
    assert upload(client, field_dataset, "rugr_drum.txt", TABLE.encode()).json()["added"] == 2
    client.force_authenticate(None)
    assert upload(client, field_dataset, "rugr_drum.txt", TABLE.encode()).status_code == 403


def test_the_export_is_a_zip_of_the_tables_export_raven_writes(api_client, field_dataset, user, tmp_path):
    recording = field_dataset.recordings.get(path__endswith="1min.wav")
    services.create_annotation(recording, by=user, start_time=3.0, end_time=4.5, species=["Blue Jay"])
    services.create_annotation(recording, by=user, start_time=1.0, end_time=2.0, low_freq=100.0, high_freq=900.0)
    written = export_raven(field_dataset, tmp_path / "out")

    answer = api_client.get(EXPORT, {"dataset": str(field_dataset.uuid), "format": "raven"})

    assert answer.status_code == 200 and answer["Content-Type"] == "application/zip"
    assert 'filename="Field season_raven.zip"' in answer["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(b"".join(answer.streaming_content))) as archive:
        files = {name: archive.read(name).decode() for name in archive.namelist()}
    assert files == {
        path.relative_to(tmp_path / "out").as_posix(): Path(path).read_text(encoding="utf-8") for path in written
    }
    assert list(files) == ["Field_season/1min.Table.1.selections.txt"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"format": "raven"}, "dataset"),
        ({"dataset": "not-a-uuid", "format": "raven"}, "dataset"),
        ({"dataset": "5f0c4a7e-0000-4000-8000-000000000000", "format": "raven"}, "dataset"),
        ({"dataset": "its own", "format": "csv"}, "format"),
    ],
)
def test_a_bad_export_query_is_a_400_naming_the_field(api_client, field_dataset, params, field):
    if params.get("dataset") == "its own":
        params = params | {"dataset": str(field_dataset.uuid)}
    answer = api_client.get(EXPORT, params)
    assert answer.status_code == 400 and field in answer.json()


def test_aoef_goes_out_and_back_in_through_the_api(api_client, owned, user, audio_root):
    pytest.importorskip("annotations.aoef")
    recording = owned.recordings.get(path__endswith="1min.wav")
    services.create_annotation(recording, by=user, start_time=3.0, end_time=4.5, species=["Blue Jay"])
    answer = api_client.get(EXPORT, {"dataset": str(owned.uuid), "format": "aoef"})
    assert answer.status_code == 200 and answer["Content-Type"] == "application/json"
    content = b"".join(answer.streaming_content)
    again = upload(api_client, owned, "Field season.aoef.json", content, file_format="aoef")
    assert again.status_code == 200, again.json()
    assert again.json() == {"added": 0, "already_there": 1}
