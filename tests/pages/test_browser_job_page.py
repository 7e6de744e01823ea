"""The job page in a 1366 px window: a dataset in deep folders, a recording that failed with a long error, and the
page still fits; the failed recording is said in a warning tone; no request 404s (the icon); Cancel asks first."""

import shutil

import pytest

from echoroo.importing import import_recordings
from inference import services
from inference.describe import week_text
from inference.models import InferenceJob
from inference.runner import recording_week
from tests.browser import BROWSER_TEST, chromium_page, playwright_api
from tests.conftest import SHARED_DATA

pytestmark = [*BROWSER_TEST, pytest.mark.slow]

WINDOW_WIDTH = 1366
# An AudioMoth card's folder inside a survey's: paths with no space to wrap at.
FOLDERS = ("Marsh_2026_spring_survey", "North_transect_beaver_pond_east", "SD_card_03_AudioMoth_24F319046")
WARN = "rgb(178, 106, 0)"  # --warn in static/echoroo/pages.css


@pytest.fixture
def deep_dataset_job(audio_root, admin_user) -> InferenceJob:
    """BirdNET over three recordings in deep folders, one of them gone before it runs: completed, one failed."""
    folder = audio_root.joinpath(*FOLDERS)
    folder.mkdir(parents=True)
    for name, source in (("20260401_053000.WAV", "1min.wav"), ("20260402_053000.WAV", "rugr_drum.wav")):
        shutil.copy(SHARED_DATA / source, folder / name)
    shutil.copy(SHARED_DATA / "1min.wav", folder / "20260403_053000.WAV")
    dataset = import_recordings(
        [audio_root / FOLDERS[0]], dataset="Marsh 2026", site="North", latitude=42.47, longitude=-76.45
    ).dataset
    (folder / "20260403_053000.WAV").unlink()
    job = services.create_job(model_name="birdnet", dataset=dataset, config={"confidence_threshold": 0.1})
    return services.start_job(job, sync=True)


def log_in(page, url: str) -> None:
    page.goto(url + "/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("button[type=submit]")


def test_the_job_page_fits_a_1366_px_window_and_says_what_failed(
    deep_dataset_job, admin_user, live_server, save_screenshot
):
    expect = playwright_api.expect
    job = deep_dataset_job
    gone = job.job_recordings.select_related("recording__site").get(status="failed").recording
    # What the runner gave the model's species filter: the site's place, the week of the recording's time.
    week = week_text(recording_week(gone, job.settings))
    failures = []
    with chromium_page() as page:
        page.on("response", lambda response: response.status >= 400 and failures.append(response.url))
        log_in(page, live_server.url)
        page.goto(f"{live_server.url}/jobs/{job.uuid}/")
        status = page.locator(".facts .job-status")
        expect(status).to_have_text("completed with 1 failed recording")
        assert status.evaluate("node => getComputedStyle(node).color") == WARN
        expect(page.locator(".facts .job-clips")).to_have_text("24 / 44")
        failed = page.locator("table.job-recordings tr[data-status=failed]")
        expect(failed.locator("td.windows")).to_have_text("none of 20 kept")
        expect(failed.locator("td.place")).to_contain_text("42.47, -76.45")
        expect(failed.locator("td.place")).to_contain_text(week)
        expect(page.locator("td.settings")).to_contain_text("scores of at least 0.1")
        save_screenshot(page, "job-deep-folders")
        page_width = page.evaluate("document.documentElement.scrollWidth")
        assert page_width <= WINDOW_WIDTH, f"the job page is {page_width} px wide in a {WINDOW_WIDTH} px window"

        page.goto(f"{live_server.url}/jobs/")
        expect(page.locator(f'tr[data-job="{job.uuid}"] .job-status')).to_have_text("completed with 1 failed recording")
        assert page.evaluate("document.documentElement.scrollWidth") <= WINDOW_WIDTH
        save_screenshot(page, "jobs-deep-folders")

        # The admin's job page too: its error, quoting two long paths, wraps within the page.
        page.goto(f"{live_server.url}/admin/inference/inferencejob/{job.pk}/change/")
        error = page.locator(".field-error_message div.readonly")
        expect(error).to_contain_text("1 of 3 recordings failed")
        assert error.evaluate("node => node.scrollWidth <= node.clientWidth"), "the error is cut off"
        assert page.evaluate("document.documentElement.scrollWidth") <= WINDOW_WIDTH
    assert failures == [], f"requests that failed: {failures}"


def test_cancel_asks_first_and_does_nothing_when_the_answer_is_no(field_recording, admin_user, live_server):
    expect = playwright_api.expect
    job = services.start_job(services.create_job(model_name="birdnet", recording=field_recording, by=admin_user))
    questions = []
    with chromium_page() as page:
        log_in(page, live_server.url)
        page.goto(f"{live_server.url}/jobs/{job.uuid}/")
        expect(page.locator(".facts .job-status")).to_have_text("running")

        def answer(dialog, accept: bool) -> None:
            questions.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        page.once("dialog", lambda dialog: answer(dialog, accept=False))
        page.click("button.danger:has-text('Cancel')")
        page.wait_for_timeout(500)
        page.reload()
        expect(page.locator(".facts .job-status")).to_have_text("running")

        page.once("dialog", lambda dialog: answer(dialog, accept=True))
        page.click("button.danger:has-text('Cancel')")
        expect(page.locator(".facts .job-status")).to_have_text("cancelled")
    assert len(questions) == 2 and questions[0].startswith("Cancel this job?")
    job.refresh_from_db()
    assert job.status == InferenceJob.Status.CANCELLED
