"""echoroo.formatting: how lengths of time, times in a recording, bands and counts read, wherever they are shown."""

import pytest
from django.template import Context, Template

from echoroo.formatting import band_text, clock, count_text, duration_text, span_text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.14208616780045352, "0.142 s"),  # veryshort.wav, shown raw in the admin before
        (0.004, "0.004 s"),
        (3.0, "3 s"),
        (9.999, "10 s"),
        (12.34, "12.3 s"),
        (59.96, "1 min"),  # not "60 s"
        (65, "1 min 05 s"),
        (1800.0, "30 min"),  # shown as "1800.0 s" on the recording page before
        (3599.6, "1 h"),
        (3725, "1 h 02 min"),
        (86400, "24 h"),
        (None, "–"),
        (float("nan"), "–"),
    ],
)
def test_a_duration_reads_in_the_units_people_use(seconds, text):
    assert duration_text(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0:00.0"), (6, "0:06.0"), (59.96, "1:00.0"), (61.25, "1:01.2"), (3725.3, "1:02:05.3"), (-1, "0:00.0")],
)
def test_a_time_into_a_recording_reads_as_a_clock(seconds, text):
    assert clock(seconds) == text


def test_a_span_a_band_and_a_count_read_in_words():
    assert span_text(1797, 1800) == "29:57.0–30:00.0"
    assert band_text(None, None) == "whole band"
    assert band_text(1200, 5000) == "1.2–5 kHz"
    assert band_text(1200, None) == "from 1.2 kHz"
    assert band_text(None, 5000) == "up to 5 kHz"
    assert count_text(1, "recording") == "1 recording"
    assert count_text(0, "recording") == "0 recordings"
    assert count_text(12000, "window") == "12,000 windows"
    assert count_text(2, "species", "species") == "2 species"


def test_templates_format_durations_and_break_paths_between_folders():
    template = Template("{% load formatting %}{{ seconds|duration }} {{ path|path_breaks }}")
    html = template.render(Context({"seconds": 1800.0, "path": "Marsh/<b>/a.wav"}))
    assert html == "30 min Marsh/<wbr>&lt;b&gt;/<wbr>a.wav"


@pytest.mark.django_db
def test_the_recording_page_gives_its_length_as_a_duration(client, user, field_recording):
    client.force_login(user)
    html = client.get(f"/recordings/{field_recording.uuid}/").content.decode()
    assert '<span class="recording-length">1 min</span>' in html and "60.0 s" not in html
