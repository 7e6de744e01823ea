"""Search by an uploaded snippet in a real browser (Debian's Chromium, driven by Playwright), on a real BirdNET job's
embeddings: the file chosen, the model left automatic, the snippet shown with its player and spectrogram."""

from __future__ import annotations

import re

import pytest
import soundfile as sf

from tests.browser import BROWSER_TEST, chromium_page, playwright_api

pytestmark = [*BROWSER_TEST, pytest.mark.slow]


@pytest.fixture
def page():
    with chromium_page() as page:
        yield page


def test_a_snippet_is_searched_with_the_only_model_and_shown_with_a_player_and_spectrogram(
    birdnet_job, field_recording, admin_user, live_server, page, save_screenshot, tmp_path
):
    expect = playwright_api.expect
    samples, rate = sf.read(field_recording.absolute_path, dtype="float32")
    snippet = tmp_path / "grouse or not.wav"
    sf.write(snippet, samples[9 * rate : 12 * rate], rate)

    page.goto(live_server.url + "/login/?next=/search/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Find similar sounds")
    expect(page.locator("#id_model")).to_have_value("")  # automatic
    page.set_input_files("#id_file", str(snippet))
    page.fill("#id_min_similarity", "0.5")
    page.click("button:has-text('Search')")

    expect(page.locator(".cards.results .card").first).to_be_visible()
    expect(page.locator("section.query")).to_contain_text("grouse or not.wav")
    expect(page.locator("section.query")).to_contain_text(re.compile(r"3\.0 s · 32000 Hz"))
    page.wait_for_function("() => document.querySelector('img.snippet-spectrogram').naturalWidth === 720")
    page.wait_for_function("() => document.querySelector('audio.snippet-player').readyState >= 1")
    assert page.evaluate("document.querySelector('audio.snippet-player').duration") == pytest.approx(3.0, abs=0.01)
    first = page.locator(".cards.results .card").first
    expect(first.locator(".similarity")).to_have_text(re.compile(r"^(1\.000|0\.99\d)$"))
    expect(first).to_contain_text("0:09")
    save_screenshot(page, "search-snippet")
