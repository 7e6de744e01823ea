"""The new-job form in a real browser, as a user who is not staff: every error at once, then a job by common name."""

from __future__ import annotations

import re

import pytest

from inference.models import InferenceJob
from tests.browser import BROWSER_TEST, chromium_page, playwright_api

pytestmark = BROWSER_TEST


@pytest.fixture
def recording_path(field_dataset) -> str:
    # Read before the browser starts (see tests/pages/test_browser.py).
    return field_dataset.recordings.get(path__endswith="1min.wav").path


def test_a_user_sees_every_error_at_once_then_creates_a_job_by_common_name(
    user, recording_path, live_server, save_screenshot
):
    expect = playwright_api.expect
    with chromium_page() as page:
        page.goto(live_server.url + "/login/")
        page.fill("#id_username", "ecologist")
        page.fill("#id_password", "pw-ecologist-1")
        page.click("button[type=submit]")
        page.click("text=Start a job")
        expect(page.locator("#id_confidence_threshold")).to_have_value("0.1")

        page.check("input[name=target][value=recording]")
        page.fill("#id_recording", "no/such.wav")
        page.fill("#id_confidence_threshold", "2")
        page.fill("#id_custom_species_list", "Ruffed Grouse\nDodo")
        page.uncheck("#id_start_now")
        page.click("button:has-text('Create the job')")
        errors = page.locator(".errorlist")
        expect(errors).to_have_count(3)
        expect(errors.nth(0)).to_contain_text("No recording has the UUID or path 'no/such.wav'")
        expect(page.locator(".has-error .errorlist")).to_contain_text(
            ["must be in [0, 1], got 2", "not a species BirdNET knows: 'Dodo'"]
        )
        save_screenshot(page, "job-new-errors")

        page.fill("#id_recording", recording_path)
        page.fill("#id_confidence_threshold", "0.1")
        page.fill("#id_custom_species_list", "Ruffed Grouse")
        page.click("button:has-text('Create the job')")
        expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f-]{36}/$"))
        save_screenshot(page, "job-new-created")
    job = InferenceJob.objects.get()
    assert job.created_by == user and job.status == InferenceJob.Status.PENDING
    assert job.config["custom_species_list"] == ["Bonasa umbellus_Ruffed Grouse"]
