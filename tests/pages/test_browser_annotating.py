"""Annotating in a real browser (Debian's Chromium, driven by Playwright): draw a box on the spectrogram with the
mouse, tag it (species from the type-ahead, a free tag), save it, see its history, and find clips and sound events
similar to it, on a real BirdNET job's results with real embeddings."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from tests.browser import BROWSER_TEST, chromium_page, playwright_api

pytestmark = [*BROWSER_TEST, pytest.mark.slow]

ROBIN = "Turdus migratorius_American Robin"
# The box drawn: seconds and Hz of 1min.wav (32 kHz: the image's top is 16 kHz).
BOX = {"start_time": 20.0, "end_time": 23.0, "low_freq": 2000.0, "high_freq": 6000.0}


@pytest.fixture
def page():
    with chromium_page() as page:
        yield page


def off_the_browser_thread(function, *args):
    """Run database work in a thread of its own: Playwright's sync API runs an event loop in this one, where Django
    refuses the ORM. The thread's connection is closed when it is done, so the test database can be dropped."""

    def run():
        try:
            return function(*args)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def saved_annotations(recording_id: int) -> list[dict]:
    from annotations.models import SoundEventAnnotation

    return [
        {
            "uuid": str(annotation.uuid),
            "sound_event_id": annotation.sound_event_id,
            "sound_event": str(annotation.sound_event.uuid),
            "box": {name: getattr(annotation.sound_event, name) for name in BOX},
            "tags": sorted((row.tag.key, row.tag.value) for row in annotation.tags.select_related("tag")),
            "by": annotation.created_by.username,
        }
        for annotation in SoundEventAnnotation.objects.filter(recording_id=recording_id).select_related(
            "sound_event", "created_by"
        )
    ]


def embed(job_id: int, sound_event_id: int) -> tuple[str, str, int]:
    """What the workers do once a job ends and once a box is saved: embed the job's detections and the box."""
    from embeddings import tasks
    from embeddings.models import SoundEventEmbedding

    detections = tasks.embed_job_detections(job_id)
    box = tasks.embed_sound_events([sound_event_id])
    return detections, box, SoundEventEmbedding.objects.filter(sound_event_id=sound_event_id).count()


def test_draw_a_box_tag_it_and_find_similar_clips_and_sound_events(
    birdnet_job, field_recording, admin_user, live_server, page, save_screenshot
):
    expect = playwright_api.expect
    # Read before the browser starts (see off_the_browser_thread).
    recording_uuid, recording_id, job_id = field_recording.uuid, field_recording.pk, birdnet_job.pk

    page.goto(live_server.url + "/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/recordings/{recording_uuid}/")
    page.wait_for_function("() => document.querySelector('.spectrogram img').naturalWidth === 1200")
    expect(page.locator(".annotations")).to_contain_text("No annotations yet")

    # Where a second and a hertz are on the screen: the image spans 0-60 s left to right, 16 kHz to 0 top down.
    image = page.locator(".spectrogram img").bounding_box()
    s_per_px, hz_per_px = 60.0 / image["width"], 16_000.0 / image["height"]

    def point(time_s: float, freq_hz: float) -> tuple[float, float]:
        return image["x"] + time_s / s_per_px, image["y"] + (16_000.0 - freq_hz) / hz_per_px

    page.click("button.annotate-mode")
    expect(page.locator("button.annotate-mode")).to_have_attribute("aria-pressed", "true")

    # Escape while dragging draws nothing.
    page.mouse.move(*point(40.0, 9000.0))
    page.mouse.down()
    page.mouse.move(*point(44.0, 5000.0), steps=5)
    expect(page.locator(".annotation-box.draft")).to_have_count(1)
    page.keyboard.press("Escape")
    page.mouse.up()
    expect(page.locator(".annotation-box.draft")).to_have_count(0)
    expect(page.locator(".annotation-panel")).to_be_hidden()

    # Drag from the box's top-left corner to its bottom-right: the form opens with its numbers.
    page.mouse.move(*point(BOX["start_time"], BOX["high_freq"]))
    page.mouse.down()
    page.mouse.move(*point(21.5, 4000.0), steps=4)
    page.mouse.move(*point(BOX["end_time"], BOX["low_freq"]), steps=4)
    save_screenshot(page, "annotate-drawing")
    page.mouse.up()
    panel = page.locator(".annotation-panel")
    expect(panel).to_be_visible()
    expect(panel.locator("h3")).to_have_text("New annotation")
    expect(panel.locator("a.find-similar")).to_be_hidden()
    expect(panel.locator("button.delete-annotation")).to_be_hidden()
    for name, value in BOX.items():
        shown = float(panel.locator(f"input[name={name}]").input_value())
        assert shown == pytest.approx(value, abs=s_per_px if name.endswith("time") else hz_per_px), name

    # A species the models do not know: the API's 400 shows beside the field, and nothing is saved.
    species = panel.locator("#annotation-species-input")
    species.fill("Notabird nonexistens")
    species.press("Enter")
    panel.locator("button.save-annotation").click()
    expect(panel.locator('.field-error[data-error-for="species"]')).to_contain_text("unknown species: Notabird")
    expect(panel.locator(".annotation-errors")).to_contain_text("Not saved: see species below.")
    save_screenshot(page, "annotate-error")
    assert off_the_browser_thread(saved_annotations, recording_id) == []
    panel.locator(".species-chips button.remove-species").click()

    # The type-ahead offers the model's species as you type; picking one makes it a species of the box.
    species.press_sequentially("American Rob", delay=40)
    offered = page.locator('#annotation-species-options option[value="American Robin (Turdus migratorius)"]')
    expect(offered).to_have_count(1)
    species.fill("American Robin (Turdus migratorius)")  # what picking the offered option does
    expect(panel.locator(".species-chips li")).to_have_count(1)
    expect(panel.locator(".species-chips li")).to_contain_text("American Robin")
    panel.locator("#annotation-tags-input").fill("call_type: song")
    save_screenshot(page, "annotate-form")
    panel.locator("button.save-annotation").click()

    # Saved: the page comes back with the box drawn and picked out, and listed below.
    expect(page).to_have_url(re.compile(r"[?&]annotation=[0-9a-f-]{36}"))
    box = page.locator(".spectrogram .annotation-box.selected")
    expect(box).to_have_count(1)
    expect(box).to_contain_text("American Robin · admin")
    expect(page.locator(".annotations-table tbody tr")).to_have_count(1)
    expect(page.locator(".annotations-table")).to_contain_text("call_type: song")
    page.wait_for_function("() => document.querySelector('.spectrogram img').naturalWidth === 1200")
    save_screenshot(page, "annotate-saved")
    [saved] = off_the_browser_thread(saved_annotations, recording_id)
    assert saved["by"] == "admin"
    assert saved["tags"] == [("call_type", "song"), ("species", ROBIN)]
    for name, value in BOX.items():
        assert saved["box"][name] == pytest.approx(value, abs=s_per_px if name.endswith("time") else hz_per_px), name
    drawn = box.bounding_box()
    assert drawn["x"] == pytest.approx(point(saved["box"]["start_time"], 0)[0], abs=2)
    assert drawn["y"] == pytest.approx(point(0, saved["box"]["high_freq"])[1], abs=2)

    # Out of Annotate mode, the author drags the box to move it: 2 s later, 1 kHz higher; the form opens with the new
    # numbers, a second tag goes in, and Save keeps both (a PATCH).
    page.keyboard.press("Escape")
    expect(page.locator("button.annotate-mode")).to_have_attribute("aria-pressed", "false")
    page.mouse.move(*point(21.5, 4000.0))
    page.mouse.down()
    page.mouse.move(*point(22.5, 4500.0), steps=4)
    page.mouse.move(*point(23.5, 5000.0), steps=4)
    page.mouse.up()
    expect(panel.locator(".annotation-moved")).to_be_visible()
    moved = {name: value + (2.0 if name.endswith("time") else 1000.0) for name, value in saved["box"].items()}
    for name, value in moved.items():
        shown = float(panel.locator(f"input[name={name}]").input_value())
        assert shown == pytest.approx(value, abs=s_per_px if name.endswith("time") else hz_per_px), name
    panel.locator("#annotation-tags-input").fill("call_type: song\nsex: male")
    save_screenshot(page, "annotate-moved")
    panel.locator("button.save-annotation").click()
    expect(page.locator(".annotations-table")).to_contain_text("sex: male")
    [saved] = off_the_browser_thread(saved_annotations, recording_id)
    assert saved["tags"] == [("call_type", "song"), ("sex", "male"), ("species", ROBIN)]
    for name, value in moved.items():
        assert saved["box"][name] == pytest.approx(value, abs=s_per_px if name.endswith("time") else hz_per_px), name

    # "✓ confirm" on a detection's row: its box becomes an annotation of that species, drawn and listed.
    first_row = page.locator("table.detections tbody tr").first
    species_confirmed = first_row.locator("td").nth(1).locator("strong").inner_text()
    first_row.locator("button.confirm").click()
    expect(page.locator(".annotations-table tbody tr")).to_have_count(2)
    expect(page.locator(".spectrogram .annotation-box.selected")).to_contain_text(species_confirmed)
    save_screenshot(page, "annotate-confirmed")
    confirmed = [row for row in off_the_browser_thread(saved_annotations, recording_id) if row["uuid"] != saved["uuid"]]
    assert [value.split("_")[-1] for key, value in confirmed[0]["tags"] if key == "species"] == [species_confirmed]

    # The workers' part, done here: the job's detections and the box get their embeddings.
    detections, embedded_box, rows = off_the_browser_thread(embed, job_id, saved["sound_event_id"])
    assert rows == 1, (detections, embedded_box)

    # Clicking the box opens it: its numbers, species and tags, who made it, its history, find similar.
    box = page.locator(f".spectrogram .annotation-box[data-annotation='{saved['uuid']}']")
    box.click()
    expect(panel.locator("h3")).to_have_text("Annotation")
    expect(panel.locator(".annotation-meta")).to_contain_text("by admin")
    expect(panel.locator("#annotation-tags-input")).to_have_value("call_type: song\nsex: male")
    expect(panel.locator(".species-chips li")).to_contain_text("American Robin")
    panel.locator("button.show-history").click()
    history = panel.locator(".annotation-history li")
    expect(history).to_have_count(2)
    expect(history.first).to_contain_text("created by admin")
    expect(history.first).to_contain_text("American Robin")
    expect(history.last).to_contain_text("changed by admin: start time")
    expect(history.last).to_contain_text("+ sex: male")
    save_screenshot(page, "annotate-existing")

    panel.locator("a.find-similar").click()
    expect(page).to_have_url(re.compile(rf"/search/\?sound_event={saved['sound_event']}&target=both$"))
    # The only recording is the box's own, which the search leaves out by default: searched too, as the page says.
    expect(page.locator("main")).to_contain_text("untick “Leave out the query's own recording”")
    page.uncheck("#id_exclude_own_recording")
    page.click("button:has-text('Search')")
    results = page.locator(".cards.results")
    expect(results.locator(".card").first).to_be_visible()
    clips = results.locator(".card:not(.event-card)")
    events = results.locator(f".event-card:not([data-sound-event='{saved['sound_event']}'])")
    assert clips.count() > 0, "similar clips"
    assert events.count() > 0, "similar sound events: the job's detections"
    expect(events.first.locator(".event-kind")).to_have_text(re.compile("^(detection|annotation)$"))
    page.wait_for_function(
        "() => [...document.querySelectorAll('.cards.results img')].slice(0, 4).every(img => img.naturalWidth > 0)"
    )
    save_screenshot(page, "annotate-similar")


@pytest.fixture
def two_boxes(field_recording, user, admin_user):
    """A box of the user's (ecologist) and one of the admin's on 1min.wav, written before the browser starts."""
    from annotations.services import create_annotation

    mine = create_annotation(field_recording, by=user, start_time=5.0, end_time=7.0, low_freq=3000.0, high_freq=8000.0)
    theirs = create_annotation(field_recording, by=admin_user, start_time=30.0, end_time=33.0, species=[ROBIN])
    return mine, theirs


def test_only_the_author_changes_a_box_and_deleting_asks_first(
    field_recording, two_boxes, live_server, page, save_screenshot
):
    expect = playwright_api.expect
    mine, theirs = two_boxes
    recording_uuid, recording_id = field_recording.uuid, field_recording.pk

    page.goto(live_server.url + "/login/")
    page.fill("#id_username", "ecologist")
    page.fill("#id_password", "pw-ecologist-1")
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/recordings/{recording_uuid}/")
    panel = page.locator(".annotation-panel")

    # Someone else's box opens read-only: no Save, no Delete, the fields disabled; it can still be searched from.
    page.locator(f".annotation-box[data-annotation='{theirs.uuid}']").click()
    expect(panel.locator(".annotation-readonly")).to_have_text("Only admin or staff may change this annotation.")
    expect(panel.locator("button.save-annotation")).to_be_hidden()
    expect(panel.locator("button.delete-annotation")).to_be_hidden()
    expect(panel.locator("input[name=start_time]")).to_be_disabled()
    expect(panel.locator("a.find-similar")).to_be_visible()
    save_screenshot(page, "annotate-read-only")

    # Their own opens from the list (keyboard-reachable buttons), and Delete asks first: no, then yes.
    page.locator(f".annotations-table button.open-annotation[data-annotation='{mine.uuid}']").click()
    expect(panel.locator("button.delete-annotation")).to_be_visible()
    answers = iter([False, True])
    asked = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.accept() if next(answers) else dialog.dismiss()

    page.on("dialog", answer)
    panel.locator("button.delete-annotation").click()
    expect(panel).to_be_visible()
    assert len(off_the_browser_thread(saved_annotations, recording_id)) == 2
    panel.locator("button.delete-annotation").click()
    expect(page.locator(".annotations-table tbody tr")).to_have_count(1)
    assert asked[0].startswith("Delete the annotation this box (5–7 s)?")
    assert [row["uuid"] for row in off_the_browser_thread(saved_annotations, recording_id)] == [str(theirs.uuid)]

    # A box can be typed in as well as drawn (keyboard users): "add a box by its numbers", times only.
    page.locator("button.annotate-by-numbers").click()
    expect(panel.locator("h3")).to_have_text("New annotation")
    panel.locator("input[name=start_time]").fill("40")
    panel.locator("input[name=end_time]").fill("41.5")
    panel.locator("#annotation-notes-input").fill("typed in")
    panel.locator("button.save-annotation").click()
    expect(page.locator(".annotations-table tbody tr")).to_have_count(2)
    expect(page.locator(".annotations-table")).to_contain_text("whole band")
    typed = [row for row in off_the_browser_thread(saved_annotations, recording_id) if row["uuid"] != str(theirs.uuid)]
    assert typed[0]["box"] == {"start_time": 40.0, "end_time": 41.5, "low_freq": None, "high_freq": None}
