"""The review page and the calibration view on a real BirdNET job: the species picker, the sample in order,
blind review, verdicts stored, replaced and undone through the page's own views, similar detections with
their bulk verdict, the calibration with too few and with enough verdicts, and who may do what."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from PIL import Image

from echoroo.models import SPECIES, Clip, ClipPredictionTag, Tag
from validation import services
from validation.calibration import MIN_EACH
from validation.models import Verdict
from validation.sampling import review_sample

pytestmark = pytest.mark.django_db
THRUSH = "Hylocichla mustelina"
THRUSH_LABEL = "Hylocichla mustelina_Wood Thrush"


@pytest.fixture
def thrush(job):
    return services.species_tag(THRUSH, job=job)


@pytest.fixture
def reviewer(client, user):
    """Any logged-in user reviews: not staff."""
    client.force_login(user)
    return user


def review(client, job, **query):
    return client.get(reverse("validation-review", args=[job.uuid]), {"species": THRUSH, **query})


def post(client, name, job, **fields):
    return client.post(reverse(name, args=[job.uuid]), {"species": THRUSH_LABEL, **fields})


def thrush_detections(job, thrush) -> list[tuple[Clip, float]]:
    """The job's Wood Thrush detections, lowest score first."""
    rows = ClipPredictionTag.objects.filter(clip_prediction__job=job, tag=thrush).select_related(
        "clip_prediction__clip"
    )
    return sorted(((row.clip_prediction.clip, row.score) for row in rows), key=lambda pair: pair[1])


def test_pages_and_what_they_fetch_need_a_login(client, job):
    page = review(client, job)
    assert page.status_code == 302 and page.url.startswith(reverse("login"))
    calibration = client.get(reverse("validation-calibration", args=[job.uuid]), {"species": THRUSH})
    assert calibration.status_code == 302
    assert post(client, "validation-review-verdict", job, clip="x", verdict="correct").status_code == 401
    similar = client.get(reverse("validation-review-similar", args=[job.uuid]), {"species": THRUSH})
    assert similar.status_code == 401
    assert client.get(reverse("validation-labels", args=[job.model_run.uuid])).status_code == 401
    assert not Verdict.objects.exists()


def test_the_species_picker_lists_the_jobs_species_with_their_detections(client, reviewer, job):
    page = client.get(reverse("validation-review", args=[job.uuid]))
    assert page.status_code == 200
    choices = page.context["choices"]
    assert choices[0]["value"] == THRUSH_LABEL and choices[0]["detections"] == 20
    assert [c["detections"] for c in choices] == sorted((c["detections"] for c in choices), reverse=True)
    assert "Wood Thrush (Hylocichla mustelina) · 20 detections" in page.content.decode()
    assert "review-data" not in page.content.decode()  # nothing drawn before a species is picked


def test_the_sample_is_shown_in_its_order_with_the_window_marked(client, reviewer, job, thrush):
    page = review(client, job, per_bin=5, seed=3)
    assert page.status_code == 200
    data = page.context["review_data"]
    sample = review_sample(job, thrush, per_bin=5, seed=3)
    assert [item["clip"] for item in data["items"]] == [item.clip_uuid for item in sample]
    assert [item["score"] for item in data["items"]] == [round(item.score, 3) for item in sample]
    assert data["start"] == 0 and data["species"] == THRUSH_LABEL
    first = data["items"][0]
    # A 3 s window with a second each side: the window is the middle 60 % of the image.
    assert (first["window_left"], first["window_width"]) == (20.0, 60.0) or first["window_left"] < 20
    assert f"{first['score']:.3f}" in page.content.decode()
    assert page.context["judged"] == 0
    assert sum(b["sampled"] for b in page.context["bins"]) == len(sample)
    assert [b["detections"] for b in page.context["bins"]] == [0, 0, 0, 1, 0, 0, 0, 2, 1, 16]


def test_blind_review_hides_the_scores_and_shuffles_the_same_sample(client, reviewer, job, thrush):
    page = review(client, job, per_bin=5, seed=3, blind=1)
    items = page.context["review_data"]["items"]
    sample = review_sample(job, thrush, per_bin=5, seed=3)
    assert sorted(item["clip"] for item in items) == sorted(item.clip_uuid for item in sample)
    assert [item["clip"] for item in items] != [item.clip_uuid for item in sample]
    assert all(item["score"] is None for item in items)
    html = page.content.decode()
    assert "item-score" not in html
    assert not [item.score for item in sample if f"{item.score:.3f}" in html]
    assert [
        item["clip"] for item in review(client, job, per_bin=5, seed=3, blind=1).context["review_data"]["items"]
    ] == [item["clip"] for item in items]


def test_a_verdict_is_stored_replaced_undone_and_shown_when_coming_back(client, reviewer, job, thrush):
    items = review(client, job, per_bin=5).context["review_data"]["items"]
    first, second = items[0]["clip"], items[1]["clip"]
    assert post(client, "validation-review-verdict", job, clip=first, verdict="wrong").json()["verdict"] == "wrong"
    answer = post(client, "validation-review-verdict", job, clip=first, verdict="correct")
    assert answer.status_code == 200 and answer.json() == {"clip": first, "verdict": "correct", "other": None}
    assert list(Verdict.objects.values_list("clip__uuid", "verdict", "reviewer")) == [
        (Clip.objects.get(uuid=first).uuid, "correct", reviewer.pk)
    ]
    post(client, "validation-review-verdict", job, clip=second, verdict="unsure")
    # Another reviewer's verdict is theirs: this reviewer still has the detection to judge.
    colleague = get_user_model().objects.create_user(username="colleague")
    services.record_verdict(clip=Clip.objects.get(uuid=items[2]["clip"]), species=thrush, verdict="wrong", by=colleague)

    again = review(client, job, per_bin=5).context["review_data"]
    assert [(item["verdict"]) for item in again["items"][:3]] == ["correct", "unsure", None]
    assert again["start"] == 2  # resumes at the first detection not judged

    # ← on a verdict that replaced another puts the earlier one back; on a first verdict, takes it back.
    assert post(client, "validation-review-undo", job, clip=first, restore_verdict="wrong").json() == {"restored": 1}
    assert Verdict.objects.get(clip__uuid=first).verdict == "wrong"
    assert post(client, "validation-review-undo", job, clip=second).json() == {"withdrawn": 1}
    assert sorted(Verdict.objects.values_list("reviewer__username", "verdict")) == [
        ("colleague", "wrong"),
        ("ecologist", "wrong"),
    ]


def test_another_species_is_one_of_the_models_labels(client, reviewer, job):
    clip = review(client, job).context["review_data"]["items"][0]["clip"]
    robin = post(
        client, "validation-review-verdict", job, clip=clip, verdict="other", other_species="Turdus migratorius"
    )
    assert robin.json()["other"] == "Turdus migratorius_American Robin"
    # A label the job never detected becomes a species tag when first named.
    assert not Tag.objects.filter(key=SPECIES, value="Strix varia_Barred Owl").exists()
    owl = post(
        client, "validation-review-verdict", job, clip=clip, verdict="other", other_species="Strix varia_Barred Owl"
    )
    assert owl.status_code == 200
    assert Verdict.objects.get().other_species.value == "Strix varia_Barred Owl"

    unknown = post(client, "validation-review-verdict", job, clip=clip, verdict="other", other_species="Dodo bird")
    assert unknown.status_code == 400 and "not one of birdnet's labels" in unknown.json()["detail"]
    missing = post(client, "validation-review-verdict", job, clip=clip, verdict="other")
    assert missing.status_code == 400 and "other_species" in missing.json()["errors"]
    itself = post(client, "validation-review-verdict", job, clip=clip, verdict="other", other_species=THRUSH_LABEL)
    assert itself.status_code == 400
    assert post(client, "validation-review-verdict", job, clip=clip, verdict="maybe").status_code == 400
    assert Verdict.objects.get().other_species.value == "Strix varia_Barred Owl"


def test_verdicts_are_given_only_on_the_jobs_detections_of_the_species(client, reviewer, job, thrush):
    detected = ClipPredictionTag.objects.filter(clip_prediction__job=job).values("clip_prediction__clip_id")
    thrush_clips = ClipPredictionTag.objects.filter(clip_prediction__job=job, tag=thrush).values(
        "clip_prediction__clip_id"
    )
    elsewhere = Clip.objects.filter(pk__in=detected).exclude(pk__in=thrush_clips).first()
    answer = post(client, "validation-review-verdict", job, clip=elsewhere.uuid, verdict="correct")
    assert answer.status_code == 400 and "not one of this job's detections" in answer.json()["detail"]
    assert post(client, "validation-review-verdict", job, clip="not-a-uuid", verdict="correct").status_code == 400
    assert not Verdict.objects.exists()


def test_similar_detections_take_the_same_verdict_when_checked(client, reviewer, job, thrush):
    clip = review(client, job).context["review_data"]["items"][-1]["clip"]
    post(client, "validation-review-verdict", job, clip=clip, verdict="correct")
    found = client.get(reverse("validation-review-similar", args=[job.uuid]), {"clip": clip, "species": THRUSH})
    similar = found.json()["similar"]
    assert len(similar) == 8 and clip not in {row["clip"] for row in similar}
    assert [row["similarity"] for row in similar] == sorted((row["similarity"] for row in similar), reverse=True)
    assert similar[0]["audio"] == reverse("clip-audio", args=[similar[0]["clip"]])

    checked = [row["clip"] for row in similar[:3]]
    answer = post(client, "validation-review-bulk", job, like_clip=clip, clip=checked, verdict="correct")
    assert answer.status_code == 200 and answer.json()["count"] == 3
    given = Verdict.objects.filter(clip__uuid__in=checked)
    assert given.count() == 3 and all(v.bulk and v.like_clip.uuid.hex == clip.replace("-", "") for v in given)
    again = client.get(reverse("validation-review-similar", args=[job.uuid]), {"clip": clip, "species": THRUSH})
    assert not {row["clip"] for row in again.json()["similar"]} & set(checked)

    # ← after a bulk verdict takes back all of it.
    assert post(client, "validation-review-undo", job, clip=checked).json() == {"withdrawn": 3}
    assert list(Verdict.objects.values_list("clip__uuid", flat=True)) == [Clip.objects.get(uuid=clip).uuid]
    nothing = post(client, "validation-review-bulk", job, like_clip=clip, verdict="correct")
    assert nothing.status_code == 400


def test_the_labels_are_birdnets_and_the_window_is_drawn_with_a_second_each_side(client, reviewer, job, thrush):
    labels = client.get(reverse("validation-labels", args=[job.model_run.uuid]))
    assert len(labels.json()["labels"]) == 6522 and THRUSH_LABEL in labels.json()["labels"]
    assert "max-age" in labels["Cache-Control"]
    for clip, _ in thrush_detections(job, thrush)[:3]:
        image = client.get(reverse("validation-clip-context", args=[clip.uuid]))
        assert image.status_code == 200 and image["Content-Type"] == "image/png"
        seconds = min(clip.end_time + 1, clip.recording.duration) - max(clip.start_time - 1, 0)
        assert Image.open(io.BytesIO(b"".join(image.streaming_content))).size == (round(seconds * 160), 256)


def test_the_review_page_reads_in_the_same_few_queries_whatever_the_sample(client, reviewer, job, thrush):
    for clip, _ in thrush_detections(job, thrush)[:4]:
        services.record_verdict(clip=clip, species=thrush, verdict="correct", by=reviewer)
    review(client, job)  # a finished job's species and bins are counted once, then kept
    counts = []
    for per_bin in (1, 10):
        with CaptureQueriesContext(connection) as queries:
            assert review(client, job, per_bin=per_bin).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 10, counts


def test_the_panel_follows_the_verdicts(client, reviewer, job, thrush):
    url = reverse("validation-calibration-summary", args=[job.uuid])
    assert client.get(url, {"species": THRUSH}).json()["needed"] == f"review {MIN_EACH} more correct and 10 more wrong"
    clip = thrush_detections(job, thrush)[0][0]
    post(client, "validation-review-verdict", job, clip=clip.uuid, verdict="other", other_species="Turdus migratorius")
    summary = client.get(url, {"species": THRUSH}).json()
    assert summary["counts"] == {"correct": 0, "wrong": 0, "unsure": 0, "other": 1}
    assert summary["needed"] == f"review {MIN_EACH} more correct and {MIN_EACH - 1} more wrong"
    assert summary["thresholds"] is None


def give_verdicts(job, thrush) -> None:
    """Two reviewers on all 20 Wood Thrush detections, disagreeing in the middle: 24 correct, 16 wrong."""
    detections = thrush_detections(job, thrush)
    first, second = (get_user_model().objects.create_user(username=name) for name in ("ann", "bo"))
    for rank, (clip, _) in enumerate(detections):
        services.record_verdict(clip=clip, species=thrush, verdict="wrong" if rank < 8 else "correct", by=first)
        services.record_verdict(
            clip=clip, species=thrush, verdict="wrong" if rank < 4 or 8 <= rank < 12 else "correct", by=second
        )


def calibration(client, job):
    return client.get(reverse("validation-calibration", args=[job.uuid]), {"species": THRUSH})


def test_the_calibration_says_how_many_more_verdicts_it_needs(client, reviewer, job, thrush):
    detections = thrush_detections(job, thrush)
    for clip, _ in detections[:3]:
        services.record_verdict(clip=clip, species=thrush, verdict="wrong", by=reviewer)
    services.record_verdict(clip=detections[-1][0], species=thrush, verdict="correct", by=reviewer)
    services.record_verdict(clip=detections[-2][0], species=thrush, verdict="unsure", by=reviewer)
    page = calibration(client, job)
    html = page.content.decode()
    assert page.status_code == 200 and page.context["calibration"] is None
    assert f"review {MIN_EACH - 1} more correct and {MIN_EACH - 3} more wrong" in html
    assert 'class="curve"' not in html
    assert html.count('<circle class="point') == 4  # the unsure one is left out


def test_the_calibration_draws_the_fit_and_its_thresholds(client, reviewer, job, thrush):
    give_verdicts(job, thrush)
    page = calibration(client, job)
    html = page.content.decode()
    fitted = page.context["calibration"]
    reference = services.calibrate_species(job, thrush)
    assert (fitted.n_correct, fitted.n_wrong) == (24, 16) == (reference.n_correct, reference.n_wrong)
    assert fitted.coefficients == pytest.approx(reference.coefficients, abs=1e-9)
    assert fitted.thresholds == pytest.approx(reference.thresholds)
    assert html.count('<circle class="point correct') == 24 and html.count('<circle class="point wrong') == 16
    assert '<polyline class="curve"' in html and "Too few verdicts" not in html
    rows = page.context["rows"]
    assert [row["target"] for row in rows] == ["0.9", "0.95", "0.99"]
    for row in rows:
        if row["threshold"] is not None:
            low, high = row["interval"]
            assert row["threshold"] > 0 and (low is None or low <= high)
            assert row["threshold_text"] in html and row["threshold_text"].startswith(f"{row['threshold']:.3f}"[:4])


def test_a_curve_that_cannot_be_fitted_says_why(client, reviewer, job, thrush):
    # One reviewer, wrong below and correct above: separated by score, no finite curve.
    for rank, (clip, _) in enumerate(thrush_detections(job, thrush)):
        services.record_verdict(clip=clip, species=thrush, verdict="wrong" if rank < 10 else "correct", by=reviewer)
    page = calibration(client, job)
    assert page.status_code == 200 and page.context["calibration"] is None
    assert "No curve fits these verdicts" in page.content.decode()


def test_a_dataset_and_model_open_the_newest_completed_job(client, reviewer, job, field_dataset):
    url = reverse("validation-dataset-review", args=[field_dataset.uuid])
    opened = client.get(url, {"model": "birdnet", "species": THRUSH, "per_bin": 3})
    assert opened.status_code == 302
    assert (
        opened.url == reverse("validation-review", args=[job.uuid]) + f"?species={THRUSH.replace(' ', '+')}&per_bin=3"
    )
    none = client.get(url, {"model": "perch"})
    assert none.status_code == 404 and "No perch job has completed" in none.content.decode()


def test_an_unknown_species_is_named(client, reviewer, job):
    page = review(client, job, species="Dodo bird")
    assert page.status_code == 200 and page.context["problem"] == "no species 'Dodo bird' has been detected yet"
    assert "no species &#x27;Dodo bird&#x27; has been detected yet" in page.content.decode()
