"""The classifier pages: behind login; label clips, train, see the metrics, apply, label the uncertain clips."""

from __future__ import annotations

import pytest

from classifiers import labels, services
from classifiers.models import Classifier, ClassifierJob
from tests.classifiers.conftest import LABEL

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", ["/classifiers/", "/classifiers/label/?label=x", "/classifiers/{uuid}/"])
def test_the_pages_send_anyone_not_logged_in_to_the_login_page(client, classifier, path):
    response = client.get(path.format(uuid=classifier.uuid))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_list_shows_label_sets_and_classifiers(browser, classifier):
    page = browser.get("/classifiers/").content.decode()
    assert LABEL in page and "40" in page and "120" in page
    assert f"/classifiers/{classifier.uuid}/" in page and f"{classifier.metrics['roc_auc']:.3f}" in page


def test_clips_passed_as_uuids_are_shown_to_label_and_the_marks_saved(browser, planted, user):
    clips = planted.clip_uuids[:3]
    page = browser.get("/classifiers/label/", {"label": LABEL, "clips": ",".join(clips)}).content.decode()
    assert all(f'name="mark-{uuid}"' in page for uuid in clips)
    response = browser.post(
        "/classifiers/label/",
        {"label": LABEL, f"mark-{clips[0]}": "positive", f"mark-{clips[1]}": "negative", f"mark-{clips[2]}": ""},
    )
    assert response.status_code == 302
    assert labels.labelled_clips(LABEL) == {planted.clip_ids[0]: "positive", planted.clip_ids[1]: "negative"}
    example = labels.label_examples(LABEL, "positive").get()
    assert example.created_by == user


def test_saving_the_examples_form_unchanged_keeps_who_labelled_them(client, planted, user, staff):
    services.label_clips(planted.clip_uuids[:2], label=LABEL, polarity="positive", by=user)
    client.force_login(staff)  # (staff may change anyone's labels)
    browser = client
    page = browser.get("/classifiers/label/", {"label": LABEL}).content.decode()
    assert page.count('value="positive" checked') == 2
    first, second = planted.clip_uuids[:2]
    browser.post(
        "/classifiers/label/",
        {
            "label": LABEL,
            f"mark-{first}": "positive",
            f"was-{first}": "positive",
            f"mark-{second}": "negative",
            f"was-{second}": "positive",
        },
    )
    by_clip = {e.clip_annotation.clip.uuid.hex: e for e in labels.label_examples(LABEL)}
    assert by_clip[first.replace("-", "")].created_by == user
    assert labels.parse_tag_value(by_clip[second.replace("-", "")].tag.value)[1] == "negative"
    assert by_clip[second.replace("-", "")].created_by == staff


def test_training_from_the_page_shows_the_metrics_and_the_uncertain_clips(browser, labelled):
    response = browser.post("/classifiers/train/", {"label": LABEL, "source": str(labelled.run.uuid)})
    classifier = Classifier.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/classifiers/{classifier.uuid}/"
    page = browser.get(response["Location"]).content.decode()
    assert "ROC AUC" in page and f"{classifier.metrics['roc_auc']:.3f}" in page
    assert "whole recordings: the figures below come from recordings the model was not trained on" in page
    assert f"{classifier.metrics['n_test_recordings']} other recordings held out" in page
    assert page.count('class="mark radios"') == 24


def test_labels_from_one_recording_train_but_the_pages_say_why_there_are_no_figures(browser, planted, user):
    from tests.classifiers.test_training import recordings_of

    in_first = recordings_of(planted.clip_ids) == recordings_of(planted.clip_ids[:1])[0]
    services.label_clips(planted.uuids(planted.positive & in_first, 6), label=LABEL, polarity="positive", by=user)
    services.label_clips(planted.uuids(~planted.positive & in_first, 20), label=LABEL, polarity="negative", by=user)
    response = browser.post("/classifiers/train/", {"label": LABEL, "source": str(planted.run.uuid)}, follow=True)
    page = response.content.decode()
    classifier = Classifier.objects.get()
    assert "without held-out figures" in page and "label positives in 2 more recordings and negatives" in page
    assert "Not measured: held-out figures need positives and negatives each from at least 3 recordings" in page
    assert "ROC AUC</th>" not in page
    listing = browser.get("/classifiers/").content.decode()
    assert "not measured: too few recordings" in listing and str(classifier.uuid) in listing


def test_a_classifier_trained_on_clips_split_at_random_says_its_figures_flatter_it(browser, classifier):
    old = {k: v for k, v in classifier.metrics.items() if not k.endswith("recordings") and k != "split"}
    Classifier.objects.filter(pk=classifier.pk).update(metrics=old)
    page = browser.get(f"/classifiers/{classifier.uuid}/").content.decode()
    assert "clips at random, windows of one recording on both sides" in page and "ROC AUC" in page


def test_training_with_too_few_labels_says_what_is_missing(browser, planted):
    services.label_clips(planted.clip_uuids[:2], label=LABEL, polarity="positive", by=None)
    response = browser.post("/classifiers/train/", {"label": LABEL}, follow=True)
    assert "label 3 more positives and 5 more negatives" in response.content.decode()


def test_apply_from_the_page_starts_a_job_and_cancel_stops_it(browser, classifier, monkeypatch):
    monkeypatch.setattr(services, "enqueue_apply", lambda *args: None)
    browser.post(f"/classifiers/{classifier.uuid}/apply/")
    job = ClassifierJob.objects.get()
    assert job.status == "pending"
    assert "Cancel" in browser.get(f"/classifiers/{classifier.uuid}/").content.decode()
    browser.post(f"/classifiers/jobs/{job.uuid}/cancel/")
    job.refresh_from_db()
    assert job.status == "cancelled"


def test_a_malformed_uuid_is_reported_not_a_server_error(browser, planted):
    page = browser.get("/classifiers/label/", {"label": LABEL, "clips": f"{planted.clip_uuids[0]},not-a-uuid"})
    assert page.status_code == 200 and "&#x27;not-a-uuid&#x27; is not a clip uuid" in page.content.decode()
    page = browser.get("/classifiers/label/", {"label": "a\x01b"})
    assert page.status_code == 200 and "no control characters" in page.content.decode()
    response = browser.post("/classifiers/train/", {"label": LABEL, "source": "nope"}, follow=True)
    assert response.status_code == 200 and "&#x27;nope&#x27; is not a model run uuid" in response.content.decode()


def test_the_pages_take_a_few_queries_however_many_clips(browser, classifier, labelled, django_assert_max_num_queries):
    with django_assert_max_num_queries(16):
        browser.get("/classifiers/label/", {"label": LABEL, "clips": ",".join(labelled.clip_uuids[:50])})
    with django_assert_max_num_queries(16):
        browser.get(f"/classifiers/{classifier.uuid}/")
    with django_assert_max_num_queries(12):
        browser.get("/classifiers/")


def test_someone_elses_labels_are_shown_locked_and_a_forged_change_saves_nothing(browser, planted, staff):
    clips = planted.clip_uuids[:2]
    services.label_clips(clips[:1], label=LABEL, polarity="positive", by=staff)
    page = browser.get("/classifiers/label/", {"label": LABEL, "clips": ",".join(clips)}).content.decode()
    locked, free = (page.index(f'name="mark-{clip}"') for clip in clips)
    assert page[locked : page.index("</div>", locked)].count(" disabled") == 3  # yes, no, skip
    assert 'by curator · <span class="locked">theirs to change (or staff\'s)</span>' in page
    assert f'name="mark-{clips[0]}" value="clear"' not in page
    assert " disabled" not in page[free : page.index("</div>", free)]
    form = {
        "label": LABEL,
        f"mark-{clips[0]}": "negative",
        f"was-{clips[0]}": "positive",
        f"mark-{clips[1]}": "negative",
    }
    response = browser.post("/classifiers/label/", form, follow=True)
    assert "Nothing saved: nothing labelled: 1 of these clips is labelled" in response.content.decode()
    assert labels.labelled_clips(LABEL) == {planted.clip_ids[0]: "positive"}
