"""The review page in a real browser (Debian's Chromium, driven by Playwright) on a real BirdNET job: ten
detections judged with the keyboard, one reassigned to another species, one undone, a similar detection
given the same verdict, and the calibration following the verdicts."""

from __future__ import annotations

import re

import pytest

from echoroo.models import ClipPredictionTag
from inference import services as jobs
from tests.browser import BROWSER_TEST, chromium_page, playwright_api
from validation import services
from validation.models import Verdict

THRUSH = "Hylocichla mustelina"
pytestmark = BROWSER_TEST


@pytest.fixture
def job(field_dataset, django_user_model):
    """A BirdNET job on the field recordings (20 Wood Thrush detections), and a colleague's verdicts on them all:
    11 correct and 9 wrong, one short of a calibration.

    Made before the browser starts: under Playwright's sync API the ORM cannot be used in the test.
    """
    created = jobs.create_job(
        model_name="birdnet", dataset=field_dataset, config={"confidence_threshold": 0.1, "use_metadata_filter": False}
    )
    job = jobs.start_job(created, sync=True)
    thrush = services.species_tag(THRUSH, job=job)
    colleague = django_user_model.objects.create_user(username="colleague")
    rows = ClipPredictionTag.objects.filter(clip_prediction__job=job, tag=thrush)
    detections = sorted(rows.select_related("clip_prediction__clip"), key=lambda row: row.score)
    for rank, clip in enumerate(row.clip_prediction.clip for row in detections):
        verdict = "wrong" if rank < 8 or rank == 12 else "correct"
        services.record_verdict(clip=clip, species=thrush, verdict=verdict, by=colleague)
    assert Verdict.objects.filter(verdict="correct").count() == 11
    return job


@pytest.fixture
def page(job, user):
    with chromium_page() as page:
        yield page


def wait_for_image(page) -> None:
    page.wait_for_function(
        "() => { const img = document.querySelector('.review-spectrogram img');"
        " return img.complete && img.naturalWidth > 0 && img.src.endsWith(img.getAttribute('src')); }"
    )


def test_ten_detections_reviewed_by_keyboard_and_the_calibration_follows(job, live_server, page, save_screenshot):
    expect = playwright_api.expect
    page.goto(live_server.url + "/login/")
    page.fill("#id_username", "ecologist")
    page.fill("#id_password", "pw-ecologist-1")
    page.click("button[type=submit]")

    calibration_url = f"{live_server.url}/validation/jobs/{job.uuid}/calibration/?species=Hylocichla+mustelina"
    page.goto(calibration_url)
    expect(page.locator(".needed-box")).to_contain_text("review 1 more wrong")
    expect(page.locator(".n-correct")).to_have_text("11")

    page.goto(f"{live_server.url}/validation/jobs/{job.uuid}/review/?species=Hylocichla+mustelina&per_bin=10&seed=0")
    expect(page.locator(".progress-count")).to_have_text("0 / 14")
    expect(page.locator(".item-number")).to_have_text("1")
    wait_for_image(page)

    def judge(key: str, number: int) -> None:
        expect(page.locator(".item-number")).to_have_text(str(number))
        page.keyboard.press(key)

    judge("n", 1)
    judge("n", 2)
    judge("y", 3)
    # Another species: "o", then type-ahead over BirdNET's labels.
    expect(page.locator(".item-number")).to_have_text("4")
    page.keyboard.press("o")
    expect(page.locator(".other-species input")).to_be_focused()
    page.wait_for_function("() => document.querySelectorAll('#species-labels option').length > 6000")
    page.locator(".other-species input").fill("American Robin (Turdus migratorius)")
    page.keyboard.press("Enter")
    expect(page.locator(".review-status")).to_contain_text("another species: American Robin")
    judge("y", 5)
    judge("n", 6)
    judge("y", 7)
    # ← takes back the verdict just given and shows its detection again.
    expect(page.locator(".item-number")).to_have_text("8")
    page.keyboard.press("ArrowLeft")
    expect(page.locator(".item-number")).to_have_text("7")
    expect(page.locator(".review-status")).to_contain_text("Undone")
    expect(page.locator(".item-verdict")).to_be_hidden()
    judge("u", 7)
    judge("y", 8)
    judge("y", 9)
    judge("y", 10)
    expect(page.locator(".progress-count")).to_have_text("10 / 14")
    expect(page.locator(".item-number")).to_have_text("11")

    # The panel follows: everyone's verdicts, now enough for a fit (11 + 5 correct; 9 + 3 wrong + 1 other).
    expect(page.locator(".calibration-panel .count-correct")).to_have_text("16")
    expect(page.locator(".calibration-panel .count-wrong")).to_have_text("12")
    expect(page.locator(".calibration-panel .count-other")).to_have_text("1")
    expect(page.locator(".calibration-panel .count-unsure")).to_have_text("1")
    expect(page.locator(".calibration-panel .thresholds")).to_be_visible()

    # Similar to the last one (correct): check one, apply the same verdict after one confirmation.
    page.keyboard.press("s")
    cards = page.locator(".similar-card")
    expect(cards.first).to_be_visible()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.similar-card img')].every(img => img.complete && img.naturalWidth > 0)"
    )
    wait_for_image(page)
    cards.first.locator("input[type=checkbox]").check()
    expect(page.locator('[data-action="apply-similar"]')).to_have_text("Mark the 1 checked correct")
    save_screenshot(page, "review")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click('[data-action="apply-similar"]')
    expect(page.locator(".review-status")).to_contain_text("Marked 1 similar detection correct")
    expect(page.locator(".calibration-panel .count-correct")).to_have_text("17")

    page.click("#calibration-link")
    expect(page).to_have_url(re.compile(r"/calibration/\?species="))
    expect(page.locator(".n-correct")).to_have_text("17")
    expect(page.locator(".n-wrong")).to_have_text("12")
    expect(page.locator(".needed-box")).to_have_count(0)
    expect(page.locator("svg .curve")).to_have_count(1)
    expect(page.locator("svg circle.point")).to_have_count(17 + 12 + 1)
    expect(page.locator(".thresholds-table tbody tr")).to_have_count(3)
    save_screenshot(page, "calibration")

    # Back on the review page, what was judged shows as judged, and it resumes at the first left.
    page.go_back()
    page.reload()
    expect(page.locator(".progress-count")).to_have_text(re.compile(r"^1[01] / 14$"))
    expect(page.locator(".item-verdict")).to_be_hidden()
