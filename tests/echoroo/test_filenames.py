"""Recording times in recorder file names."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from echoroo.filenames import parse_recorded_at

APRIL_1_0530 = datetime(2026, 4, 1, 5, 30, 0)


@pytest.mark.parametrize(
    "filename",
    [
        "20260401_053000.WAV",  # AudioMoth
        "20260401_053000.wav",
        "SMM01234_20260401_053000.wav",  # Song Meter Mini
        "S4A01234_20260401_053000.wav",  # Song Meter SM4
        "SM4BAT-FS_20260401_053000.flac",
        "north_ridge_SMM01234_20260401_053000.wav",  # a prefix a person added
        "SMM01234_20260401_053000_000.wav",  # split files
        "20260401_053000T.WAV",  # AudioMoth triggered recording
        "20260401_053000",  # no extension
        "site1/deployment2/20260401_053000.WAV",  # folders are ignored
    ],
)
def test_recorder_names_give_the_naive_start_time(filename):
    assert parse_recorded_at(filename) == APRIL_1_0530


def test_a_z_suffix_means_utc():
    assert parse_recorded_at("20260401_053000Z.wav") == APRIL_1_0530.replace(tzinfo=UTC)


def test_an_offset_suffix_gives_an_aware_time():
    assert parse_recorded_at("SMM01234_20260401_053000+0930.wav") == APRIL_1_0530.replace(
        tzinfo=timezone(timedelta(hours=9, minutes=30))
    )
    assert parse_recorded_at("20260401_053000-0500.wav") == APRIL_1_0530.replace(tzinfo=timezone(timedelta(hours=-5)))


def test_the_first_stamp_in_a_name_is_the_start():
    assert parse_recorded_at("20260401_053000_20260401_060000.wav") == APRIL_1_0530


@pytest.mark.parametrize(
    "filename",
    [
        "20261301_053000.wav",  # month 13
        "20260431_053000.wav",  # April 31
        "20260401_253000.wav",  # 25 o'clock
        "20260401_056000.wav",  # minute 60
        "20260401_053000+2500.wav",  # no such offset
        "20260401-053000.wav",  # not the recorders' layout
        "2026040_053000.wav",  # seven-digit date
        "20260401_0530001.wav",  # seven-digit time
        "X20260401_053000.wav",  # the prefix must end with "_" or "-"
        "1min.wav",
        "great_plains_toad.wav",
        "",
    ],
)
def test_names_without_a_valid_stamp_give_none(filename):
    assert parse_recorded_at(filename) is None
