"""The validation core on real BirdNET output: the review sample, verdicts, similar detections, calibration, sets."""

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from sklearn.linear_model import LogisticRegression

from echoroo.models import ClipPredictionTag
from validation import services
from validation.calibration import MIN_EACH, TooFewVerdicts, calibrate, fit_logistic, score_logit
from validation.models import ThresholdSet, Verdict
from validation.sampling import _sample, bin_counts, review_sample

pytestmark = pytest.mark.django_db
THRUSH = "Hylocichla mustelina"


@pytest.fixture
def reviewer():
    return get_user_model().objects.create_user(username="reviewer", password="pw-reviewer-1")


def test_the_sample_is_stratified_seeded_and_without_repeats(job):
    species = services.species_tag(THRUSH, job=job)
    counts = bin_counts(job, species)
    sample = review_sample(job, species, per_bin=2, seed=7)
    per_bin = [sum(item.bin == b for item in sample) for b in range(10)]
    assert per_bin == [min(2, n) for n in counts]
    assert len({item.clip_uuid for item in sample}) == len(sample)
    assert all(item.bin_low <= item.score < item.bin_high + 1e-9 for item in sample)
    _sample.cache_clear()  # drawn again, not the kept sample
    assert review_sample(job, species, per_bin=2, seed=7) == sample
    other = review_sample(job, species, per_bin=2, seed=8)
    assert {i.clip_uuid for i in other} != {i.clip_uuid for i in sample} or sum(counts) <= len(sample)
    bigger = review_sample(job, species, per_bin=3, seed=7)
    assert {i.clip_uuid for i in sample} <= {i.clip_uuid for i in bigger}


def test_a_reviewers_verdict_is_replaced_and_similar_detections_take_it_in_bulk(job, reviewer):
    species = services.species_tag(THRUSH, job=job)
    first, *_ = review_sample(job, species, per_bin=5, seed=1)
    clip = ClipPredictionTag.objects.filter(clip_prediction__clip_id=first.clip_id).first().clip_prediction.clip
    services.record_verdict(clip=clip, species=species, verdict="wrong", by=reviewer)
    services.record_verdict(clip=clip, species=species, verdict="correct", by=reviewer)
    assert list(Verdict.objects.values_list("verdict", flat=True)) == ["correct"]
    similar = services.similar_detections(job, clip, species, limit=5, by=reviewer)
    assert len(similar) == 5 and similar == sorted(similar, key=lambda s: -s["similarity"])
    assert first.clip_uuid not in {s["clip"] for s in similar}
    from echoroo.models import Clip

    clips = list(Clip.objects.filter(pk__in=[s["clip_id"] for s in similar[:3]]))
    given = services.record_verdicts_like(like_clip=clip, clips=clips, species=species, verdict="correct", by=reviewer)
    assert len(given) == 3 and all(v.bulk and v.like_clip_id == clip.pk for v in given)
    again = services.similar_detections(job, clip, species, limit=5, by=reviewer)
    assert not {s["clip_id"] for s in again} & {c.pk for c in clips}


def test_the_fit_equals_scikit_learns_maximum_likelihood():
    rng = np.random.default_rng(3)
    scores = rng.uniform(0.1, 0.999, 400)
    correct = rng.random(400) < 1 / (1 + np.exp(-(0.5 + 1.5 * score_logit(scores))))
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(score_logit(scores)[:, None], correct)
    ours = fit_logistic(score_logit(scores), correct)
    np.testing.assert_allclose(ours, [reference.intercept_[0], reference.coef_[0, 0]], atol=1e-3)


def test_calibration_recovers_a_known_curves_threshold():
    rng = np.random.default_rng(11)
    intercept, slope = -2.0, 1.2
    scores = 1 / (1 + np.exp(-rng.uniform(-3, 8, 20_000)))
    correct = rng.random(len(scores)) < 1 / (1 + np.exp(-(intercept + slope * score_logit(scores))))
    found = calibrate(scores, correct, rounds=50)
    true_95 = 1 / (1 + np.exp(-((np.log(0.95 / 0.05) - intercept) / slope)))
    assert found.thresholds["0.95"] == pytest.approx(true_95, abs=0.01)
    low, high = found.intervals["0.95"]
    assert low <= true_95 <= high


def test_too_few_verdicts_says_how_many_more_of_each():
    with pytest.raises(TooFewVerdicts) as error:
        calibrate(np.full(MIN_EACH + 3, 0.5), np.array([True] * (MIN_EACH + 1) + [False] * 2))
    assert error.value.needed == {"correct": 0, "wrong": MIN_EACH - 2}
    assert f"{MIN_EACH - 2} more wrong" in str(error.value)


def test_a_threshold_set_keeps_each_species_above_its_own_threshold(job, reviewer):
    rows = ClipPredictionTag.objects.filter(clip_prediction__job=job)
    thrush = services.species_tag(THRUSH, job=job)
    chosen = services.save_threshold_set(
        name="strict thrush", default_threshold=0.5, thresholds={THRUSH: 0.9}, by=reviewer
    )
    kept = services.passing(rows, chosen)
    expected = [r.pk for r in rows if r.score >= (0.9 if r.tag_id == thrush.pk else 0.5)]
    assert sorted(kept.values_list("pk", flat=True)) == sorted(expected)
    assert services.thresholds_from_csv(services.thresholds_as_csv(chosen)) == {thrush.value: 0.9}
    assert ThresholdSet.objects.get().species.count() == 1


def test_a_scientific_name_means_the_label_the_job_detected(job):
    from echoroo.models import Tag

    perch_label = Tag.objects.create(key="species", value=THRUSH)  # a bare class name, as Perch's labels are
    assert services.species_tag(THRUSH, job=job).value == "Hylocichla mustelina_Wood Thrush"
    assert services.species_tag(THRUSH) == perch_label
    assert services.species_tag("Hylocichla mustelina_Wood Thrush").value.endswith("Wood Thrush")
    with pytest.raises(services.ValidationError) as error:
        services.species_tag("Nonexistent bird")
    assert "species" in error.value.errors
