"""echoroo.metadata: the recording time and place that AudioMoth comments and GUANO chunks carry in WAV headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from echoroo.metadata import WavMetadata, audiomoth_recorded_at, parse_guano, read_wav_metadata
from tests.audio_files import guano, info_comment, wav_with_chunk

SAMPLES = np.zeros(8000, dtype=np.float32)


def metadata_of(path) -> WavMetadata:
    with open(path, "rb") as file:
        return read_wav_metadata(file)


def test_the_shared_audiomoth_file_gives_its_recording_time_in_utc(shared_data):
    # Its header: "Recorded at 10:25:00 04/04/2020 (UTC) by AudioMoth 24526B065D325963 at gain setting 2 ..."
    assert metadata_of(shared_data / "metadata.wav") == WavMetadata(
        recorded_at=datetime(2020, 4, 4, 10, 25, tzinfo=UTC)
    )


def test_files_without_recorder_metadata_give_nothing(shared_data):
    for name in ("rugr_drum.wav", "great_plains_toad.wav", "soundscape.flac"):
        assert metadata_of(shared_data / name) == WavMetadata()
    # OpenSoundscape's JSON comment is not AudioMoth's, though it holds a recording_start_time.
    assert metadata_of(shared_data / "veryshort.wav") == WavMetadata()


@pytest.mark.parametrize(
    ("zone", "offset"),
    [
        ("(UTC)", timedelta(0)),
        ("(UTC-5)", timedelta(hours=-5)),
        ("(UTC+10)", timedelta(hours=10)),
        ("(UTC+5:30)", timedelta(hours=5, minutes=30)),
        ("(UTC-3:30)", timedelta(hours=-3, minutes=-30)),
        ("(UTC-0:30)", timedelta(minutes=-30)),  # what the firmware writes for a zone under an hour
    ],
)
def test_an_audiomoth_comment_is_read_day_first_in_the_zone_it_names(zone, offset):
    comment = (
        f"Recorded at 19:20:00 02/03/2021 {zone} by AudioMoth 24F319055FDF2F5B at medium gain while battery was 4.2V."
    )

    recorded_at = audiomoth_recorded_at(comment)

    assert recorded_at == datetime(2021, 3, 2, 19, 20, tzinfo=timezone(offset))
    assert recorded_at.utcoffset() == offset


def test_the_oldest_audiomoth_comment_without_a_zone_is_utc():
    comment = "Recorded at 05:30:00 01/04/2018 by AudioMoth 0FE081F80FE081F0 at gain setting 2"
    assert audiomoth_recorded_at(comment) == datetime(2018, 4, 1, 5, 30, tzinfo=UTC)


def test_an_impossible_audiomoth_date_is_a_problem_not_a_time():
    problems = []
    assert audiomoth_recorded_at("Recorded at 10:00:00 31/02/2021 (UTC) by AudioMoth", problems) is None
    assert problems == ["the AudioMoth comment's time 10:00:00 31/02/2021 is not a real date and time"]


def test_an_audiomoth_comment_in_a_wav_file_is_read(tmp_path):
    comment = "Recorded at 23:59:58 31/12/2022 (UTC+1) by AudioMoth 24F319055FDF2F5B at medium gain."
    path = wav_with_chunk(tmp_path / "moth.wav", SAMPLES, 8000, b"LIST", info_comment(comment))

    assert metadata_of(path).recorded_at == datetime(2022, 12, 31, 22, 59, 58, tzinfo=UTC)


def test_a_guano_chunk_gives_the_timestamp_with_its_offset_and_the_position(tmp_path):
    fields = {
        "Timestamp": "2021-06-11T21:14:03.250-04:00",
        "Loc Position": "42.4534 -76.4735",
        "Make": "Wildlife Acoustics",
        "Note": "pond edge\\nsecond line",
        "WA|Song Meter|Prefix": "SMU01234",
    }
    path = wav_with_chunk(tmp_path / "bat.wav", SAMPLES, 8000, b"guan", guano(fields))

    metadata = metadata_of(path)

    assert metadata.recorded_at == datetime(2021, 6, 11, 21, 14, 3, 250000, tzinfo=timezone(timedelta(hours=-4)))
    assert (metadata.latitude, metadata.longitude) == (42.4534, -76.4735)
    assert metadata.problems == ()


def test_a_guano_timestamp_without_an_offset_is_the_recorders_local_time(tmp_path):
    body = guano({"Timestamp": "2021-06-11 21:14:03"})
    path = wav_with_chunk(tmp_path / "bat.wav", SAMPLES, 8000, b"guan", body)

    assert metadata_of(path) == WavMetadata(recorded_at=datetime(2021, 6, 11, 21, 14, 3))  # naive: the caller's zone


def test_guano_wins_over_the_audiomoth_comment_and_unreadable_fields_are_named(tmp_path):
    path = wav_with_chunk(
        tmp_path / "both.wav",
        SAMPLES,
        8000,
        b"LIST",
        info_comment("Recorded at 10:00:00 01/01/2020 (UTC) by AudioMoth"),
    )
    data = bytearray(path.read_bytes())
    body = guano({"Timestamp": "2020-01-01T10:00:00.5Z", "Loc Position": "91.5 12"})
    data += b"guan" + len(body).to_bytes(4, "little") + body + b" " * (len(body) % 2)
    data[4:8] = (len(data) - 8).to_bytes(4, "little")
    path.write_bytes(bytes(data))

    metadata = metadata_of(path)

    assert metadata.recorded_at == datetime(2020, 1, 1, 10, 0, 0, 500000, tzinfo=UTC)
    assert (metadata.latitude, metadata.longitude) == (None, None)
    assert metadata.problems == (
        "GUANO Loc Position '91.5 12' is not a latitude in -90..90 and a longitude in -180..180",
    )


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"Timestamp": "last Tuesday"}, "GUANO Timestamp 'last Tuesday' is not an ISO 8601 date and time"),
        ({"Timestamp": "2021-06-11"}, "GUANO Timestamp '2021-06-11' is not an ISO 8601 date and time"),
        ({"Loc Position": "42.45"}, "GUANO Loc Position '42.45' is not 'latitude longitude'"),
        ({"Loc Position": "nan 12"}, "GUANO Loc Position 'nan 12' is not a latitude in -90..90"),
    ],
)
def test_unreadable_guano_fields_are_left_out_and_named(tmp_path, fields, problem):
    path = wav_with_chunk(tmp_path / "bad.wav", SAMPLES, 8000, b"guan", guano(fields))

    metadata = metadata_of(path)

    assert (metadata.recorded_at, metadata.latitude, metadata.longitude) == (None, None, None)
    assert len(metadata.problems) == 1 and metadata.problems[0].startswith(problem)


def test_guano_lines_split_at_the_first_colon_and_trim_whitespace_and_padding():
    body = b"GUANO|Version:  1.0\n\nTimestamp:  2012-03-29T03:58:01+04:00 \r\nEmpty:\nPET|Gain: 80\n   \x00\x00"
    assert parse_guano(body) == {
        "GUANO|Version": "1.0",
        "Timestamp": "2012-03-29T03:58:01+04:00",
        "PET|Gain": "80",
    }


def test_a_chunk_that_runs_past_the_end_of_the_file_stops_the_walk(tmp_path):
    path = wav_with_chunk(tmp_path / "cut.wav", SAMPLES, 8000, b"guan", guano({"Timestamp": "2020-01-01T10:00:00Z"}))
    path.write_bytes(path.read_bytes()[:-10])  # the copy was cut short inside the metadata

    assert metadata_of(path) == WavMetadata()
