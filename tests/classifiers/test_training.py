"""Training: a planted cluster is found on held-out clips, too few labels are refused with the counts missing."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from classifiers import services, training
from classifiers.errors import ClassifierError
from classifiers.models import Classifier
from echoroo.models import Clip, ModelRun
from tests.classifiers.conftest import LABEL, make_clips

pytestmark = pytest.mark.django_db


def recordings_of(clip_ids) -> np.ndarray:
    recording_of = dict(Clip.objects.filter(id__in=list(clip_ids)).values_list("id", "recording_id"))
    return np.array([recording_of[int(clip_id)] for clip_id in clip_ids])


def test_a_planted_cluster_is_separated_on_held_out_recordings(labelled, user):
    classifier = services.train_classifier(label=LABEL, source=labelled.run, by=user)
    metrics = classifier.metrics
    assert metrics["roc_auc"] >= 0.95
    assert metrics["split"] == "by recording" and "not_measured" not in metrics
    assert metrics["n_positive"] == 40 and metrics["n_negative"] == 120
    assert metrics["n_train"] + metrics["n_test"] == 160 and 20 <= metrics["n_test"] <= 60
    assert metrics["n_test_positive"] > 0 and metrics["n_test_negative"] > 0
    assert metrics["n_train_recordings"] + metrics["n_test_recordings"] == metrics["n_recordings"] == 20
    assert {"precision", "recall", "roc_auc", "average_precision"} <= metrics.keys()


def test_no_recording_is_on_both_sides_of_the_held_out_split():
    rng = np.random.default_rng(1)
    for seed in range(20):
        recordings = rng.integers(0, 9, size=200)
        positive = rng.random(200) < 0.3
        train, test = training.held_out_split(positive, recordings, seed=seed)
        assert not set(recordings[train]) & set(recordings[test])
        assert sorted([*train, *test]) == list(range(200))
        assert positive[test].any() and (~positive[test]).any() and positive[train].any() and (~positive[train]).any()


def test_held_out_recordings_do_not_reward_learning_each_recordings_sound():
    # Each recording has its own sound (an offset of its windows); which recordings hold the positives is
    # all there is to learn. Clips split at random score that near 1; held-out recordings see through it.
    rng = np.random.default_rng(7)
    recordings = np.repeat(np.arange(60), 8)
    positive = recordings < 30
    X = (rng.normal(size=(60, 64)) * 3)[recordings] + rng.normal(size=(len(recordings), 64)) * 0.3
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(len(positive)), test_size=0.25, stratify=positive, random_state=0)
    coef, intercept = training._fit(X[train], positive[train])
    assert roc_auc_score(positive[test], training.sigmoid_scores(X[test], coef, intercept)) > 0.99
    grouped = [training.fit(X, positive, recordings, seed=seed).metrics["roc_auc"] for seed in range(5)]
    assert np.mean(grouped) < 0.7, grouped


def test_labels_from_too_few_recordings_train_a_classifier_with_no_figures_but_why(planted, user):
    # A chorus labelled in one recording: its positives all in recording 0, negatives everywhere.
    in_first = recordings_of(planted.clip_ids) == recordings_of(planted.clip_ids[:1])[0]
    services.label_clips(planted.uuids(planted.positive & in_first, 8), label=LABEL, polarity="positive", by=user)
    services.label_clips(planted.uuids(~planted.positive, 60), label=LABEL, polarity="negative", by=user)
    classifier = services.train_classifier(label=LABEL, source=planted.run, by=user)
    metrics = classifier.metrics
    assert not {"roc_auc", "precision", "recall", "average_precision", "n_test"} & metrics.keys()
    assert metrics["n_positive_recordings"] == 1 and metrics["n_negative_recordings"] == 20
    assert metrics["not_measured"] == (
        "held-out figures need positives and negatives each from at least 3 recordings (a recording's windows "
        "are too alike to check on each other); these labels have positives from 1 and negatives from 20: "
        "label positives in 2 more recordings"
    )
    assert classifier.dimension == 1024  # trained all the same, on every example


def test_the_trained_weights_score_every_clip_well_not_only_the_labelled_ones(classifier, planted):
    from sklearn.metrics import roc_auc_score

    scores = training.sigmoid_scores(planted.vectors, classifier.weights, classifier.intercept)
    assert roc_auc_score(planted.positive, scores) >= 0.95


def test_a_classifier_gets_its_own_run_named_after_the_label_and_numbered(labelled, user):
    first = services.train_classifier(label=LABEL, source=labelled.run, by=user)
    second = services.train_classifier(label=LABEL, by=user)  # the source found from the labelled clips
    assert (first.version, second.version) == (1, 2)
    run = second.model_run
    assert (run.name, run.version, run.kind, run.source) == (LABEL, "v2", ModelRun.Kind.CLASSIFIER, labelled.run)
    assert second.created_by == user and second.dimension == 1024


def test_too_few_labels_give_an_error_naming_how_many_are_missing(planted, user):
    services.label_clips(planted.uuids(planted.positive, 3), label=LABEL, polarity="positive", by=user)
    services.label_clips(planted.uuids(~planted.positive, 1), label=LABEL, polarity="negative", by=user)
    with pytest.raises(ClassifierError) as error:
        services.train_classifier(label=LABEL, source=planted.run, by=user)
    message = error.value.errors["label"]
    assert "at least 5 positive and 5 negative" in message
    assert "there are 3 positive and 1 negative" in message
    assert "label 2 more positives and 4 more negatives" in message
    assert not Classifier.objects.exists() and not ModelRun.objects.filter(kind="classifier").exists()


def test_labelled_clips_without_embeddings_do_not_count_and_are_named(planted, user):
    services.label_clips(planted.uuids(planted.positive, 5), label=LABEL, polarity="positive", by=user)
    services.label_clips(planted.uuids(~planted.positive, 5), label=LABEL, polarity="negative", by=user)
    _, other_uuids = make_clips(2, name="not embedded")
    services.label_clips(other_uuids, label=LABEL, polarity="negative", by=user)
    services.label_clips(planted.uuids(~planted.positive, 1), label=LABEL, polarity="clear", by=user)
    with pytest.raises(ClassifierError, match=r"\(2 labelled clips have none\).*label 1 more negative$"):
        services.train_classifier(label=LABEL, source=planted.run, by=user)


def test_a_label_with_no_labels_or_a_classifier_run_as_source_is_refused(classifier, user):
    with pytest.raises(ClassifierError, match="no clip is labelled 'Nothing yet'"):
        services.train_classifier(label="Nothing yet", by=user)
    with pytest.raises(ClassifierError, match="classifier's run"):
        services.train_classifier(label=LABEL, source=classifier.model_run, by=user)


def test_the_folded_weights_score_exactly_as_the_standardised_model():
    rng = np.random.default_rng(0)
    X = rng.normal(loc=2.0, scale=[0.5, 3.0, 1.0, 10.0], size=(200, 4)).astype(np.float32)
    y = X[:, 0] + 0.1 * X[:, 3] + rng.normal(size=200) > 3.0
    coef, intercept = training._fit(X, y)
    reference = make_pipeline(
        StandardScaler(), LogisticRegression(C=training.C, class_weight="balanced", max_iter=2000)
    )
    expected = reference.fit(X, y).predict_proba(X)[:, 1]
    np.testing.assert_allclose(training.sigmoid_scores(X, coef, intercept), expected, atol=1e-5)


def test_fit_needs_five_of_each_and_reports_them():
    with pytest.raises(training.NotEnoughExamples) as error:
        training.fit(np.zeros((9, 3)), np.array([True] * 5 + [False] * 4), np.arange(9))
    assert (error.value.missing_positives, error.value.missing_negatives) == (0, 1)
    assert str(error.value).endswith("label 1 more negative")
