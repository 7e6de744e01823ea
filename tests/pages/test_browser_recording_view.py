"""The recording page's view in a real browser (Debian's Chromium, driven by Playwright): short recordings drawn 256 px
high (not a page 100,000 px tall), detection labels hidden and shown, zooming in time, a band picked, and a clip
played with a second either side."""

from __future__ import annotations

import re

import pytest

from echoroo.models import ModelRun
from tests.browser import BROWSER_TEST, chromium_page, playwright_api
from tests.conftest import import_field_recordings
from tests.pages.detections import job_with_detections

pytestmark = [*BROWSER_TEST, pytest.mark.slow]

ROBIN = "Turdus migratorius_American Robin"
GROUSE = "Bonasa umbellus_Ruffed Grouse"


@pytest.fixture
def shown(field_dataset, audio_root):
    """The uuids of veryshort.wav (0.14 s) and rugr_drum.wav (10 s, with two detections at 3-6 s), read before the
    browser starts: under Playwright's sync API the ORM would open a connection the test database cannot drop."""
    veryshort = import_field_recordings(audio_root, ["veryshort.wav"], dataset="Short").recordings.get()
    rugr = field_dataset.recordings.get(path__endswith="rugr_drum.wav")
    run = ModelRun.objects.create(name="BirdNET", version="V2.4", kind=ModelRun.Kind.MODEL)
    job_with_detections(run, {rugr: {3.0: {GROUSE: 0.91, ROBIN: 0.12}}})
    return {"veryshort": str(veryshort.uuid), "rugr": str(rugr.uuid)}


@pytest.fixture
def page():
    with chromium_page() as page:
        yield page


def image_box(page) -> dict:
    page.wait_for_function("() => document.querySelector('.spectrogram img').complete")
    return page.locator(".spectrogram img").bounding_box()


def test_short_recordings_keep_a_256_px_spectrogram_with_zoom_band_labels_and_context(
    shown, admin_user, live_server, page, save_screenshot
):
    expect = playwright_api.expect
    page.goto(live_server.url + "/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("button[type=submit]")

    # 0.14 s: drawn at its share of a one-second view, 256 px high; the page stays about a screen tall.
    page.goto(f"{live_server.url}/recordings/{shown['veryshort']}/")
    page.wait_for_function("() => document.querySelector('.spectrogram img').naturalWidth === 171")
    image = image_box(page)
    track = page.locator(".spectrogram-track").bounding_box()
    assert image["height"] == 256
    assert image["width"] == pytest.approx(0.1421 * track["width"], abs=2)
    expect(page.locator(".recording-end")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollHeight") < 1600
    save_screenshot(page, "recording-veryshort")

    # 10 s: the whole column, 256 px high, the detection's labels on its box.
    page.goto(f"{live_server.url}/recordings/{shown['rugr']}/")
    page.wait_for_function("() => document.querySelector('.spectrogram img').naturalWidth === 1200")
    image = image_box(page)
    assert image["height"] == 256 and image["width"] == pytest.approx(track["width"], abs=1)
    assert page.evaluate("document.documentElement.scrollHeight") < 1800
    label = page.locator(".box .label").first
    expect(label).to_contain_text("Ruffed Grouse")
    save_screenshot(page, "recording-10s")

    # The labels go and come back; the box stays, and so does the choice on the next page.
    page.uncheck("input.show-detection-labels")
    expect(label).to_be_hidden()
    expect(page.locator(".box")).to_be_visible()
    page.reload()
    expect(page.locator("input.show-detection-labels")).not_to_be_checked()
    expect(page.locator(".box .label").first).to_be_hidden()
    save_screenshot(page, "recording-10s-no-labels")
    page.check("input.show-detection-labels")
    expect(page.locator(".box .label").first).to_be_visible()

    # With context, the 3-6 s clip plays from 2 to 7 s.
    page.check("input.play-context")
    page.locator(".box").click(position={"x": 40, "y": 200})
    player = page.locator("audio.player")
    expect(player).to_have_attribute("src", re.compile(r"/clips/[0-9a-f-]{36}/audio\.wav\?context=1$"))
    page.wait_for_function("() => document.querySelector('audio.player').duration > 0")
    assert page.evaluate("document.querySelector('audio.player').duration") == pytest.approx(5.0, abs=0.01)
    expect(page.locator(".now-playing")).to_contain_text("with 1 s before and after")

    # Zoom in: 3 s of the 10, still 1,200 px by 256, the box 1 s from the left edge of 3.
    page.click("a.zoom-in")
    expect(page).to_have_url(re.compile(r"[?&]view=3(&|$)"))
    expect(page.locator(".view-clock")).to_have_text("0:00.0 – 0:03.0")
    page.click("a[rel=next]")
    expect(page.locator(".view-clock")).to_have_text("0:03.0 – 0:06.0")
    page.wait_for_function("() => document.querySelector('.spectrogram img').naturalWidth === 1200")
    assert image_box(page)["height"] == 256

    # A band: 0-4 kHz, the axis and the image say so, and the view's length is kept.
    page.select_option("select[name=max_freq]", "4000")
    page.click(".jump button[type=submit]")
    expect(page).to_have_url(re.compile(r"max_freq=4000"))
    expect(page.locator(".freq-axis span").first).to_have_text("4 kHz")
    expect(page.locator(".view-clock")).to_have_text("0:03.0 – 0:06.0")
    expect(page.locator(".spectrogram img")).to_have_attribute("src", re.compile(r"max_freq=4000"))
    page.wait_for_function("() => document.querySelector('.spectrogram img').naturalWidth === 1200")
    save_screenshot(page, "recording-10s-zoomed-band")
