"""Exports as BirdNET-Analyzer 2.4.0 writes them, from a real BirdNET job on real recordings: the command's files, the
API's streamed downloads, the job page's form.

What BirdNET-Analyzer writes is spelled out here from its source (birdnet_analyzer/analyze/utils.py, config.py
and analyze/__init__.py of release 2.4.0), never read from our code.
"""

import csv
import datetime as dt
import io
import json
import zipfile
from io import StringIO
from pathlib import Path

import pytest
import soundfile
from django.conf import settings
from django.core.management import CommandError, call_command
from django.http import StreamingHttpResponse
from django.urls import reverse

from echoroo.models import ClipPredictionTag, Recording, Tag
from inference import services
from inference.birdnet_formats import raven_band, species_code
from inference.models import InferenceJob
from inference.runtimes.birdnet import package_labels
from tests.conftest import SHARED_DATA, import_field_recordings
from validation import services as validation
from validation.models import SpeciesThreshold, ThresholdSet

pytestmark = pytest.mark.django_db

# birdnet_analyzer/analyze/utils.py
RAVEN_TABLE_HEADER = (
    "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tCommon Name\tSpecies Code\t"
    "Confidence\tBegin Path\tFile Offset (s)\n"
)
KALEIDOSCOPE_HEADER = (
    "INDIR,FOLDER,IN FILE,OFFSET,DURATION,scientific_name,common_name,confidence,lat,lon,week,overlap,sensitivity\n"
)
CSV_HEADER = "Start (s),End (s),Scientific name,Common name,Confidence,File\n"
# birdnet_analyzer/analyze/__init__.py: POSSIBLE_ADDITIONAL_COLUMNS_MAP, in its order.
ADDITIONAL_COLUMNS = ["lat", "lon", "week", "overlap", "sensitivity", "min_conf", "species_list", "model"]
# save_analysis_params
PARAMS_HEADER = (
    "File splitting duration,Segment length,Sample rate,Segment overlap,Minimum Segment length,"
    "Bandpass filter minimum,Bandpass filter maximum,Merge consecutive detections,Audio speed,Custom classifier path"
)
# config.py and get_result_file_names
OUTPUT_RAVEN_FILENAME = "BirdNET_SelectionTable.txt"
RAVEN_LIST_FILENAME = OUTPUT_RAVEN_FILENAME.rsplit(".", 1)[0] + ".list.txt"
OUTPUT_KALEIDOSCOPE_FILENAME = "BirdNET_Kaleidoscope.csv"
OUTPUT_CSV_FILENAME = "BirdNET_CombinedTable.csv"
ANALYSIS_PARAMS_FILENAME = "BirdNET_analysis_params.csv"
SUFFIXES = {
    "raven": ".BirdNET.selection.table.txt",
    "audacity": ".BirdNET.results.txt",
    "kaleidoscope": ".BirdNET.results.kaleidoscope.csv",
    "csv": ".BirdNET.results.csv",
}
# The eBird codes BirdNET-Analyzer fills "Species Code" from (birdnet_analyzer/eBird_taxonomy_codes_2024E.json).
CODES = json.loads((SHARED_DATA / "ebird" / "eBird_taxonomy_codes_2024E.json").read_text(encoding="utf-8"))

THREE_FILES = ["1min.wav", "great_plains_toad.wav", "rugr_drum.wav"]  # 60 s, 44.57 s (44.1 kHz), 10 s
# 03:59:45 UTC is 23:59:45 the day before in New York (EDT, UTC-4).
STARTED = dt.datetime(2024, 5, 17, 3, 59, 45, tzinfo=dt.UTC)
# No species filter: the toad (recorded elsewhere) is detected too.
CONFIG = {"confidence_threshold": 0.1, "use_metadata_filter": False}


@pytest.fixture
def job(audio_root, user) -> InferenceJob:
    """BirdNET over three real recordings at a site in New York state, each started at STARTED."""
    dataset = import_field_recordings(audio_root, THREE_FILES, site="North transect", latitude=42.47, longitude=-76.45)
    dataset.recordings.update(recorded_at=STARTED)
    created = services.create_job(model_name="birdnet", dataset=dataset, config=CONFIG, by=user)
    finished = services.start_job(created, sync=True)
    assert finished.status == InferenceJob.Status.COMPLETED
    return finished


@pytest.fixture
def out(tmp_path) -> Path:
    """A folder for an export (tmp_path holds AUDIO_ROOT too)."""
    return tmp_path / "out"


def export(*args) -> str:
    stdout = StringIO()
    call_command("export_detections", *map(str, args), stdout=stdout)
    return stdout.getvalue()


def recordings(job) -> list[Recording]:
    return sorted(job.dataset.recordings.all(), key=lambda recording: recording.path)


def audio_path(recording) -> str:
    return str(settings.AUDIO_ROOT / recording.path)


def windows(job, recording) -> list[tuple]:
    """(start, end, label, score) of the job's windows on the recording, in a table's order."""
    rows = ClipPredictionTag.objects.filter(clip_prediction__job=job, clip_prediction__clip__recording=recording)
    ordered = rows.order_by("clip_prediction__clip__start_time", "-score", "tag__value")
    return list(
        ordered.values_list(
            "clip_prediction__clip__start_time", "clip_prediction__clip__end_time", "tag__value", "score"
        )
    )


def seconds(value: float) -> str:
    return str(round(value, 2))  # BirdNET-Analyzer's timestamps: str(round(t, 2))


def raven_line(selection, start, end, label, score, path, begin=None, end_on=None) -> str:
    """A row of generate_raven_table, by its f-string; begin/end_on: the combined table's times."""
    common = label.split("_", 1)[-1]
    code = CODES[label] if label in CODES else label
    begin = seconds(start) if begin is None else begin
    end_on = seconds(end) if end_on is None else end_on
    return (
        f"{selection}\tSpectrogram 1\t1\t{begin}\t{end_on}\t0\t15000\t{common}\t{code}\t{score:.4f}\t{path}\t"
        f"{seconds(start)}\n"
    )


def test_every_birdnet_label_has_its_ebird_code():
    labels = [label.name for label in package_labels()]
    assert len(labels) == len(set(labels)) == 6522
    assert [species_code(label) for label in labels] == [CODES[label] for label in labels]
    assert species_code("Hylocichla mustelina_Wood Thrush") == "woothr"
    assert all(species_code(label) != label for label in labels)
    # What has no code stands for itself, as in BirdNET-Analyzer; a code is never read back as a label.
    assert species_code("Turdus migratorius") == "Turdus migratorius"
    assert species_code("woothr") == "woothr"
    shipped = Path(settings.BASE_DIR) / "inference" / "data" / "eBird_taxonomy_codes_2024E.json"
    assert shipped.read_bytes() == (SHARED_DATA / "ebird" / "eBird_taxonomy_codes_2024E.json").read_bytes()


def test_the_band_is_birdnet_analyzers_below_the_files_nyquist_frequency():
    assert raven_band(32_000) == (0, 15_000)
    assert raven_band(48_000) == (0, 15_000)
    assert raven_band(22_050) == (0, 11_025)
    assert raven_band(16_000) == (0, 8_000)


def test_each_recordings_files_are_named_and_written_as_birdnet_analyzer_writes_them(job, tmp_path):
    for file_format, suffix in SUFFIXES.items():
        export("--job", job.uuid, "--format", file_format, "--output", tmp_path / file_format)
        written = sorted(str(path.relative_to(tmp_path / file_format)) for path in (tmp_path / file_format).rglob("*"))
        expected = [f"Field_season/{Path(name).stem}{suffix}" for name in THREE_FILES]
        assert written == sorted([ANALYSIS_PARAMS_FILENAME, "Field_season", *expected])

    for recording in recordings(job):
        rows = windows(job, recording)
        assert rows, f"BirdNET found nothing in {recording.path}"
        stem, path = Path(recording.path).with_suffix(""), audio_path(recording)

        raven = (tmp_path / "raven" / f"{stem}{SUFFIXES['raven']}").read_text(encoding="utf-8")
        lines = [raven_line(index, *row, path) for index, row in enumerate(rows, 1)]
        assert raven == RAVEN_TABLE_HEADER + "".join(lines)

        table = (tmp_path / "csv" / f"{stem}{SUFFIXES['csv']}").read_text(encoding="utf-8")
        lines = [
            f"{seconds(s)},{seconds(e)},{label.replace('_', ',', 1)},{score:.4f},{path}\n"
            for s, e, label, score in rows
        ]
        assert table == CSV_HEADER + "".join(lines)

        labels = (tmp_path / "audacity" / f"{stem}{SUFFIXES['audacity']}").read_text(encoding="utf-8")
        lines = [
            f"{seconds(s)}\t{seconds(e)}\t{label.replace('_', ', ')}\t{score:.4f}\n" for s, e, label, score in rows
        ]
        assert labels == "".join(lines)

        kaleidoscope = (tmp_path / "kaleidoscope" / f"{stem}{SUFFIXES['kaleidoscope']}").read_text(encoding="utf-8")
        folder, filename = str(Path(path).parent), Path(path).name
        where = f"{str(Path(folder).parent).rstrip('/')},{Path(folder).name},{filename}"
        # The site's place; week 19 of BirdNET's 48 (17 May: the third week of May); the job's overlap and
        # sensitivity.
        setting = "42.4700,-76.4500,19,0.0,1.0"
        lines = [
            f"{where},{round(s, 2)},{round(e, 2) - round(s, 2)},{label.replace('_', ',', 1)},{score:.4f},{setting}\n"
            for s, e, label, score in rows
        ]
        assert kaleidoscope == KALEIDOSCOPE_HEADER + "".join(lines)


def test_the_parameters_file_has_birdnet_analyzers_settings_with_the_jobs_values(job, out):
    export("--job", job.uuid, "--format", "raven", "--output", out)
    params = (out / ANALYSIS_PARAMS_FILENAME).read_bytes().decode()
    # csv.writer's lines end in CR LF. No file splitting or minimum length: windows run on across a recording.
    assert params == f"{PARAMS_HEADER}\r\n,3.0,48000,0.0,0.0,0,15000,1,1.0,\r\n"


def test_a_recording_without_detections_gets_birdnet_analyzers_nocall_row(job, out):
    export("--job", job.uuid, "--format", "raven", "--output", out, "--min-score", 1.0)
    for recording in recordings(job):
        table = (out / f"{Path(recording.path).with_suffix('')}{SUFFIXES['raven']}").read_text()
        assert (
            table
            == RAVEN_TABLE_HEADER
            + f"1\tSpectrogram 1\t1\t0\t3\t0\t15000\tnocall\tnocall\t1.0\t{audio_path(recording)}\t0\n"
        )


def test_the_combined_raven_table_runs_on_across_the_files_and_lists_them(job, out):
    output = export("--job", job.uuid, "--format", "raven", "--combined", "--output", out)
    assert sorted(path.name for path in out.iterdir()) == sorted(
        [OUTPUT_RAVEN_FILENAME, RAVEN_LIST_FILENAME, ANALYSIS_PARAMS_FILENAME]
    )
    ordered = recordings(job)
    paths = [audio_path(recording) for recording in ordered]
    assert (out / RAVEN_LIST_FILENAME).read_text() == "".join(f"{path}\n" for path in paths)
    # combine_raven_tables: each file starts where the ones before it end (their durations, as the audio reads).
    durations = [soundfile.info(path).duration for path in paths]
    assert durations[1] == pytest.approx(44.5713, abs=1e-4)
    expected, selection, offset = [], 0, 0
    for recording, path, duration in zip(ordered, paths, durations, strict=True):
        for start, end, label, score in windows(job, recording):
            selection += 1
            begin, end_on = str(float(seconds(start)) + offset), str(float(seconds(end)) + offset)
            expected.append(raven_line(selection, start, end, label, score, path, begin, end_on))
        offset += duration
    table = (out / OUTPUT_RAVEN_FILENAME).read_text()
    assert table == RAVEN_TABLE_HEADER + "".join(expected)
    assert f"Wrote {selection} window predictions" in output and "3 files in" in output

    second = [line.split("\t") for line in table.splitlines()[1:] if line.split("\t")[10] == paths[2]]
    assert second and all(
        float(fields[3]) == pytest.approx(60.0 + durations[1] + float(fields[11]), abs=1e-9) for fields in second
    )


def test_the_combined_table_counts_a_file_without_rows_in_the_time_line(job, out):
    """Only the last file has a row (one verified window): it still starts after the other two files."""
    last = recordings(job)[-1]
    start, _, label, _ = windows(job, last)[0]
    clip = last.clips.get(start_time=start)
    validation.record_verdict(clip=clip, species=Tag.objects.get(value=label), verdict="correct", by=job.created_by)
    export("--job", job.uuid, "--format", "raven", "--combined", "--verified", "--output", out)
    header, row = (out / OUTPUT_RAVEN_FILENAME).read_text().splitlines()
    assert header == RAVEN_TABLE_HEADER.rstrip("\n") + "\tReviewer"
    fields = row.split("\t")
    offset = 0
    for recording in recordings(job)[:2]:
        offset += soundfile.info(audio_path(recording)).duration
    assert fields[0] == "1" and fields[3] == str(float(seconds(start)) + offset) and fields[11] == seconds(start)
    assert fields[-1] == job.created_by.username
    assert len((out / RAVEN_LIST_FILENAME).read_text().splitlines()) == 3


def test_combined_csv_and_kaleidoscope_are_one_file_each(job, tmp_path):
    export("--job", job.uuid, "--format", "csv", "--combined", "--output", tmp_path / "csv")
    export("--job", job.uuid, "--format", "kaleidoscope", "--combined", "--output", tmp_path / "kaleidoscope")
    export("--job", job.uuid, "--format", "csv", "--output", tmp_path / "per-file")
    combined = (tmp_path / "csv" / OUTPUT_CSV_FILENAME).read_text()
    per_file = sorted((tmp_path / "per-file").rglob(f"*{SUFFIXES['csv']}"))
    # combine_csv_files: the first file whole, the others without their header.
    assert combined == CSV_HEADER + "".join(path.read_text().removeprefix(CSV_HEADER) for path in per_file)
    kaleidoscope = (tmp_path / "kaleidoscope" / OUTPUT_KALEIDOSCOPE_FILENAME).read_text()
    assert kaleidoscope.startswith(KALEIDOSCOPE_HEADER)
    assert kaleidoscope.count("\n") == combined.count("\n") == 1 + ClipPredictionTag.objects.count()
    # The one-file CSV of earlier versions (--output name.csv) is the combined table.
    export("--job", job.uuid, "--format", "csv", "--output", tmp_path / "detections.csv")
    assert (tmp_path / "detections.csv").read_text() == combined


def test_csv_extra_columns_give_when_and_where_each_detection_was(job, tmp_path, settings):
    settings.TIME_ZONE = "America/New_York"
    threshold_set = ThresholdSet.objects.create(name="spring", default_threshold=0.3)
    first = recordings(job)[0]
    rows = windows(job, first)
    favoured = Tag.objects.get(value=rows[0][2])
    SpeciesThreshold.objects.create(threshold_set=threshold_set, species=favoured, threshold=0.1)
    columns = "model,species_list,threshold,min_conf,sensitivity,overlap,week,lon,lat,site,time,date"
    export(
        "--job",
        job.uuid,
        "--format",
        "csv",
        "--output",
        tmp_path / "x.csv",
        "--columns",
        columns,
        "--thresholds",
        "spring",
    )
    with (tmp_path / "x.csv").open(newline="") as table:
        reader = csv.DictReader(table)
        written = list(reader)
    # BirdNET-Analyzer's columns in its order, ours before them (date, time, site) and threshold after min_conf.
    birdnet_analyzers = CSV_HEADER.rstrip("\n").split(",") + ADDITIONAL_COLUMNS
    assert [name for name in reader.fieldnames if name in birdnet_analyzers] == birdnet_analyzers
    assert reader.fieldnames[6:9] == ["date", "time", "site"] and reader.fieldnames[14:16] == ["min_conf", "threshold"]
    assert len(reader.fieldnames) == len(birdnet_analyzers) + 4
    kept = [row for row in rows if row[3] >= (0.1 if row[2] == favoured.value else 0.3)]
    mine = [row for row in written if row["File"] == audio_path(first)]
    assert len(mine) == len(kept) > 0
    for row, (start, _, label, _) in zip(mine, kept, strict=True):
        local = (STARTED + dt.timedelta(seconds=start)).astimezone(dt.timezone(dt.timedelta(hours=-4)))
        assert row["date"] == local.date().isoformat() and row["time"] == local.strftime("%H:%M:%S.%f")[:-3]
        assert (row["site"], row["lat"], row["lon"], row["week"]) == ("North transect", "42.47", "-76.45", "19")
        assert (row["overlap"], row["sensitivity"], row["min_conf"]) == ("0.0", "1.0", "0.1")
        assert row["threshold"] == ("0.1" if label == favoured.value else "0.3")
        assert (row["species_list"], row["model"]) == ("", "birdnet 2.4")
    dates = {row["date"] for row in mine}
    assert dates == {"2024-05-16", "2024-05-17"}  # the recording runs over midnight, New York time

    export(
        "--job",
        job.uuid,
        "--format",
        "csv",
        "--output",
        tmp_path / "utc.csv",
        "--columns",
        "date,time",
        "--timezone",
        "UTC",
    )
    with (tmp_path / "utc.csv").open(newline="") as table:
        first_row = next(csv.DictReader(table))
    assert (first_row["date"], first_row["time"][:8]) == ("2024-05-17", "03:59:45")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "raven", "--columns", "date"], "--columns: only the csv format takes extra columns"),
        (["--format", "csv", "--columns", "date,colour"], "--columns: unknown column 'colour'; the extra columns are"),
        (["--format", "audacity", "--combined"], "--combined: BirdNET-Analyzer writes Audacity labels per recording"),
        (["--format", "csv", "--columns", "date", "--timezone", "Mars/Olympus"], "--timezone: 'Mars/Olympus' is not"),
    ],
)
def test_bad_options_name_the_option_and_write_nothing(job, tmp_path, args, message):
    with pytest.raises(CommandError, match=f"^{message}"):
        export("--job", job.uuid, "--output", tmp_path / "out", *args)
    assert not (tmp_path / "out").exists()


# --- The API --------------------------------------------------------------------------------------------------------


def download(api_client, **params) -> tuple[StreamingHttpResponse, bytes]:
    response = api_client.get(reverse("export-detections"), params)
    assert response.status_code == 200, response.content
    assert isinstance(response, StreamingHttpResponse)
    return response, b"".join(response.streaming_content)


def test_the_api_streams_a_zip_of_the_files_the_command_writes(job, api_client, out):
    export("--job", job.uuid, "--format", "raven", "--output", out)
    response, body = download(api_client, job=job.uuid, format="raven")
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="BirdNET_raven_{job.uuid}.zip"'
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    written = {str(path.relative_to(out)): path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert {name: archive.read(name) for name in archive.namelist()} == written
    assert len(written) == 4


def test_the_api_streams_the_combined_file_the_command_writes(job, api_client, tmp_path):
    for file_format, name in (
        ("raven", OUTPUT_RAVEN_FILENAME),
        ("csv", OUTPUT_CSV_FILENAME),
        ("kaleidoscope", OUTPUT_KALEIDOSCOPE_FILENAME),
    ):
        export("--job", job.uuid, "--format", file_format, "--combined", "--output", tmp_path / file_format)
        response, body = download(api_client, job=job.uuid, format=file_format, combined="true")
        assert response["Content-Disposition"] == f'attachment; filename="{name}"'
        assert response["Content-Type"].endswith("; charset=utf-8")
        assert body == (tmp_path / file_format / name).read_bytes()


def test_the_api_takes_a_dataset_a_threshold_set_verified_and_columns(job, api_client, tmp_path):
    threshold_set = ThresholdSet.objects.create(name="strict", default_threshold=0.5)
    args = ("--format", "csv", "--combined", "--thresholds", "strict", "--columns", "date,site")
    export("--job", job.uuid, *args, "--output", tmp_path / "strict")
    _, body = download(
        api_client, dataset=job.dataset.uuid, format="csv", combined="true", thresholds="strict", columns="date,site"
    )
    assert body == (tmp_path / "strict" / OUTPUT_CSV_FILENAME).read_bytes()
    assert 1 < body.count(b"\n") < 1 + ClipPredictionTag.objects.count()
    assert threshold_set.default_threshold == 0.5

    start, _, label, _ = windows(job, recordings(job)[0])[0]
    clip = recordings(job)[0].clips.get(start_time=start)
    validation.record_verdict(clip=clip, species=Tag.objects.get(value=label), verdict="correct", by=job.created_by)
    _, body = download(api_client, job=job.uuid, format="csv", combined="true", verified="true")
    header, row = body.decode().splitlines()
    assert header == CSV_HEADER.rstrip("\n") + ",Reviewer" and row.endswith(f",{job.created_by.username}")


@pytest.mark.parametrize(
    "params, field",
    [
        ({"format": "excel"}, "format"),
        ({"format": "audacity", "combined": "true"}, "combined"),
        ({"format": "raven", "columns": "date"}, "columns"),
        ({"format": "csv", "columns": "colour"}, "columns"),
        ({"format": "csv", "thresholds": "autumn"}, "thresholds"),
        ({"format": "csv", "min_score": "2"}, "min_score"),
        ({"format": "csv", "verified": "true", "merged": "true"}, "verified"),
        ({"format": "csv", "job": None}, "job"),
        ({"format": "csv", "dataset": "00000000-0000-0000-0000-000000000000", "job": None}, "dataset"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(job, api_client, params, field):
    query = {"job": str(job.uuid), **params}
    query = {name: value for name, value in query.items() if value is not None}
    response = api_client.get(reverse("export-detections"), query)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_the_job_page_has_a_download_form_for_the_api(job, client):
    client.force_login(job.created_by)
    page = client.get(f"/jobs/{job.uuid}/").content.decode()
    assert f'action="{reverse("export-detections")}"' in page
    assert f'name="job" value="{job.uuid}"' in page
    for name in ('name="format"', 'name="combined"', 'name="thresholds"', 'name="verified"'):
        assert name in page
