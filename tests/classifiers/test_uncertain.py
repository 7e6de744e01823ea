"""Active learning: the unlabelled clips whose scores are nearest 0.5, from stored predictions or a sample."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers import labels, services, training
from classifiers.errors import ClassifierError
from tests.classifiers.conftest import LABEL

pytestmark = pytest.mark.django_db


def nearest_half_unlabelled(classifier, planted, limit: int) -> list[int]:
    """The answer worked out here: every clip scored with numpy, the labelled left out, nearest 0.5 first."""
    scores = training.sigmoid_scores(planted.vectors, classifier.weights, classifier.intercept)
    labelled = set(labels.labelled_clips(LABEL))
    candidates = [(abs(s - 0.5), int(c)) for c, s in zip(planted.clip_ids, scores, strict=True) if c not in labelled]
    return [clip_id for _, clip_id in sorted(candidates)[:limit]]


def test_before_applying_every_embedding_of_a_small_run_is_scored(classifier, planted):
    found = services.uncertain_clips(classifier, limit=10)
    assert found.scored_from == "sample" and found.scored == len(planted.clip_ids)
    assert [item.clip.pk for item in found.clips] == nearest_half_unlabelled(classifier, planted, 10)


def test_after_applying_the_stored_predictions_are_used(classifier, planted, user):
    services.start_apply(classifier, by=user, sync=True)
    found = services.uncertain_clips(classifier, limit=10)
    assert found.scored_from == "predictions"
    assert [item.clip.pk for item in found.clips] == nearest_half_unlabelled(classifier, planted, 10)
    # Each offered score is the classifier's own score of that clip, and they come nearest 0.5 first.
    scores = training.sigmoid_scores(planted.vectors, classifier.weights, classifier.intercept)
    score_of = dict(zip(planted.clip_ids, scores, strict=True))
    assert [item.score for item in found.clips] == pytest.approx([score_of[item.clip.pk] for item in found.clips])
    distances = [abs(item.score - 0.5) for item in found.clips]
    assert distances == sorted(distances) and distances[-1] < 0.5


def test_a_clip_labelled_since_is_no_longer_offered(classifier, planted, user):
    first = services.uncertain_clips(classifier, limit=3).clips
    services.label_clips([first[0].clip.uuid], label=LABEL, polarity="negative", by=user)
    again = [item.clip.pk for item in services.uncertain_clips(classifier, limit=3).clips]
    assert first[0].clip.pk not in again and again[:2] == [item.clip.pk for item in first[1:]]


def test_a_large_run_is_sampled_in_stretches_not_read_whole(classifier, planted, monkeypatch):
    monkeypatch.setattr(services, "UNCERTAIN_SAMPLE", 400)
    monkeypatch.setattr(services, "SAMPLE_STRETCHES", 4)
    found = services.uncertain_clips(classifier, limit=5, seed=1)
    assert found.scored_from == "sample" and 100 <= found.scored <= 400
    labelled = set(labels.labelled_clips(LABEL))
    assert len(found.clips) == 5 and not {item.clip.pk for item in found.clips} & labelled
    scores = [abs(item.score - 0.5) for item in found.clips]
    assert scores == sorted(scores)


def test_the_limit_is_bounded(classifier):
    with pytest.raises(ClassifierError, match="from 1 to 200"):
        services.uncertain_clips(classifier, limit=0)
    assert np.isfinite([item.score for item in services.uncertain_clips(classifier, limit=200).clips]).all()
