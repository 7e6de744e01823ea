"""The pages in a real browser (Debian's Chromium, driven by Playwright) with a real worker: start a BirdNET job
from the form, watch it reach 100 %, see its detections on the spectrogram, play a clip, find similar clips."""

from __future__ import annotations

import re

import pytest

from tests.browser import BROWSER_TEST, chromium_page, playwright_api

pytestmark = [*BROWSER_TEST, pytest.mark.slow]

# A minute of audio through BirdNET, with the worker's start and the model's first load.
JOB_TIMEOUT_MS = 180_000


@pytest.fixture
def page():
    with chromium_page() as page:
        yield page


@pytest.fixture
def recording(field_dataset):
    # Read before the browser starts: under Playwright's sync API the ORM would open a second connection
    # in another context, left open, and the test database could not be dropped at the end.
    return field_dataset.recordings.get(path__endswith="1min.wav")


def test_a_birdnet_job_from_the_form_to_detections_playback_and_similar_clips(
    recording, admin_user, live_server, worker, page, save_screenshot
):
    expect = playwright_api.expect

    # Log in: every page sends an anonymous visitor to the login form first.
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    save_screenshot(page, "login")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Recordings and jobs")

    # The start-job form: BirdNET on one recording, with a threshold a little lower than the default.
    page.click("text=Start a job")
    page.select_option("#id_model_name", "birdnet")
    page.check("input[name=target][value=recording]")
    page.fill("#id_recording", recording.path)
    page.fill("#id_confidence_threshold", "0.3")
    save_screenshot(page, "job-new")
    page.click("button:has-text('Create the job')")
    expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f-]{36}/$"))

    # The job page polls its progress and reloads once the worker is done, to show the species.
    expect(page.locator(".facts .job-percent")).to_have_text("100 %", timeout=JOB_TIMEOUT_MS)
    expect(page.locator(".facts .job-status")).to_have_text("completed")
    expect(page.locator("table.species tbody tr").first).to_be_visible()
    save_screenshot(page, "job")

    page.click("nav >> text=Jobs")
    expect(page.locator("table.jobs tbody tr").first).to_contain_text("100 %")
    save_screenshot(page, "jobs")
    page.click("nav >> text=Home")
    expect(page.locator("table.datasets")).to_contain_text("Field season")
    save_screenshot(page, "home")

    # The recording: a spectrogram with the detections drawn on it as labelled boxes.
    page.goto(f"{live_server.url}/recordings/{recording.uuid}/")
    boxes = page.locator(".spectrogram .box")
    expect(boxes.first).to_be_visible()
    assert boxes.count() > 0
    page.wait_for_function("() => document.querySelector('.spectrogram img').naturalWidth === 1200")
    spectrogram = page.locator(".spectrogram img").bounding_box()
    first_box = boxes.first.bounding_box()
    assert spectrogram["x"] <= first_box["x"] < spectrogram["x"] + spectrogram["width"]
    assert first_box["y"] + first_box["height"] == pytest.approx(spectrogram["y"] + spectrogram["height"], abs=2)
    expect(boxes.first.locator(".label").first).to_have_text(re.compile(r"^\S.* \d\.\d\d$"))
    save_screenshot(page, "recording")

    # Clicking a box plays its clip: the player loads the clip's WAV, 3 s of audio.
    with page.expect_response(lambda response: "/audio.wav" in response.url) as audio:
        boxes.first.click()
    response = audio.value
    assert response.status in (200, 206), response.status
    assert response.headers["content-type"] == "audio/wav"
    page.wait_for_function("() => document.querySelector('audio.player').readyState >= 1")
    assert page.evaluate("document.querySelector('audio.player').duration") == pytest.approx(3.0, abs=0.01)
    whole = page.request.get(live_server.url + boxes.first.get_attribute("data-audio"))
    assert whole.status == 200 and whole.headers["content-type"] == "audio/wav"

    # "Find similar" on a clip: cards with a thumbnail, a play button, the similarity and a link to the time.
    page.locator("table.detections a.similar").first.click()
    expect(page).to_have_url(re.compile(r"/search/\?clip="))
    # The only recording is left out by default, and the page says how to search it too.
    expect(page.locator("main")).to_contain_text("untick “Leave out the query's own recording”")
    page.uncheck("#id_exclude_own_recording")
    page.click("button:has-text('Search')")
    cards = page.locator(".cards.results .card")
    expect(cards.first).to_be_visible()
    expect(cards.first.locator(".similarity")).to_have_text(re.compile(r"^0\.\d{3}$|^1\.000$"))
    page.wait_for_function(
        "() => [...document.querySelectorAll('.cards.results img')].slice(0, 4).every(img => img.naturalWidth === 240)"
    )
    save_screenshot(page, "search")
    with page.expect_response(lambda response: "/audio.wav" in response.url) as audio:
        cards.first.locator("button.play").click()
    assert audio.value.headers["content-type"] == "audio/wav"
    cards.first.locator("a").first.click()
    expect(page).to_have_url(re.compile(rf"/recordings/{recording.uuid}/\?t="))
    expect(page.locator(".spectrogram .box.highlight").first).to_be_visible()
