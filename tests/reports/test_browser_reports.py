"""The dataset pages in a real browser (Debian's Chromium, driven by Playwright): from the list of datasets to a
dataset's sites, charts and recordings, a filter, and from a recording to the next one of the filtered list."""

from __future__ import annotations

import re

import pytest

from inference import services
from tests.browser import BROWSER_TEST, chromium_page, playwright_api
from tests.reports.season import import_season

pytestmark = [*BROWSER_TEST, pytest.mark.slow]


@pytest.fixture
def page():
    with chromium_page() as page:
        yield page


@pytest.fixture
def season(audio_root, admin_user):
    """The season with a finished BirdNET job, made before the browser starts (see tests/pages/test_browser.py)."""
    dataset = import_season(audio_root)
    job = services.create_job(
        model_name="birdnet", dataset=dataset, config={"confidence_threshold": 0.1}, by=admin_user
    )
    services.start_job(job, sync=True)
    recordings = {recording.path.rsplit("/", 1)[-1]: recording for recording in dataset.recordings.all()}
    return dataset, recordings


def charts_loaded(page) -> None:
    """Every chart image has arrived and is a real picture (an image that failed has no natural width)."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('.charts img')].every(img => img.complete && img.naturalWidth === 1100)"
    )


def test_from_the_datasets_to_a_dataset_its_charts_and_the_next_recording(season, live_server, page, save_screenshot):
    dataset, recordings = season
    expect = playwright_api.expect
    page.goto(live_server.url + "/login/?next=/datasets/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Datasets")
    row = page.locator(f'tr[data-dataset="{dataset.uuid}"]')
    expect(row).to_contain_text("Season 2026")
    expect(row).to_contain_text("2026-05-01 – 2026-05-02")
    expect(row).to_contain_text("birdnet")
    save_screenshot(page, "reports-datasets")

    # The dataset: its sites, the charts of the species detected most, and its recordings.
    row.locator("a").first.click()
    expect(page).to_have_url(re.compile(rf"/datasets/{dataset.uuid}/$"))
    expect(page.locator("table.sites tbody tr")).to_have_count(3)
    expect(page.locator("table.recordings tbody tr")).to_have_count(4)
    expect(page.locator("table.recordings tbody tr").first).to_contain_text("birdnet")
    charts_loaded(page)
    assert page.locator(".charts img").count() == 4
    save_screenshot(page, "reports-dataset")

    # Another species: its heat map and phenology are drawn for it.
    species = page.locator("select[name=species] option").nth(1)
    name = species.get_attribute("value")
    page.select_option("select[name=species]", name)
    page.click(".charts-form button[type=submit]")
    charts_loaded(page)
    assert "species=" + name.split(" ")[0] in page.locator(".charts img").first.get_attribute("src")

    # The recordings of one site, by start time; a recording's next recording is the next of that list.
    page.select_option("select[name=site]", label="North marsh")
    page.select_option("select[name=order]", "time")
    page.click(".recording-filters button[type=submit]")
    expect(page.locator("table.recordings tbody tr")).to_have_count(2)
    expect(page.locator(".recordings-count")).to_have_text("2 recordings match these filters.")
    save_screenshot(page, "reports-dataset-filtered")
    page.locator("table.recordings tbody tr a").first.click()
    expect(page.locator("h1")).to_contain_text("NORTH_20260501_053000.wav")
    expect(page.locator(".recording-nav .button.disabled")).to_have_text("‹ previous recording")
    page.click("text=next recording ›")
    expect(page.locator("h1")).to_contain_text("NORTH_20260502_060000.wav")
    expect(page.locator(".recording-nav .button.disabled")).to_have_text("next recording ›")
    save_screenshot(page, "reports-recording-next")
    page.click(".recording-nav a.dataset-list")
    expect(page.locator("table.recordings tbody tr").first).to_contain_text("NORTH_20260502_060000.wav")
    assert recordings


def test_a_dataset_species_summary_sorts_and_filters(season, live_server, page, save_screenshot):
    dataset, _ = season
    expect = playwright_api.expect
    page.goto(live_server.url + f"/login/?next=/datasets/{dataset.uuid}/species/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(rf"/datasets/{dataset.uuid}/species/"))
    rows = page.locator("table tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() > 3
    save_screenshot(page, "reports-species-summary")
    # One site only: every row left is at that site.
    page.goto(live_server.url + f"/datasets/{dataset.uuid}/species/?site=South+ridge")
    expect(rows.first).to_be_visible()
    assert all("South ridge" in text for text in rows.all_inner_texts())
    save_screenshot(page, "reports-species-summary-site")
