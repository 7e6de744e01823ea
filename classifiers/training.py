"""Training a label set's classifier: logistic regression on embeddings, checked on held-out recordings.

Plain numpy and scikit-learn, no Django: embeddings, 0/1 labels and each example's recording in,
weights and metrics out.

The held-out part is whole recordings: the windows of one recording share its background, its
microphone and often one calling animal, so a split of clips at random puts near-copies on both
sides and measures memory, not generalisation (a toad chorus labelled in one recording scored
ROC AUC 1.000 on its own held-out windows). With the labels in too few recordings there is no
honest held-out figure, and none is given: the metrics say so instead.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

# scikit-learn is imported by the two functions that fit: importing it (with scipy) took 0.7 s and ~80 MB in
# every web and worker process, which apply classifiers with numpy alone.

# Fewer examples of either kind than this and the held-out figures mean nothing.
MIN_EXAMPLES = 5
# Held-out figures need positives and negatives each from at least this many recordings: a few
# recordings to learn each kind from, and at least one other to check it on.
MIN_RECORDINGS = 3
# About this share of the examples is held out (whole recordings, so only about).
TEST_FRACTION = 0.25
# Grouped splits tried (shuffled folds of several seeds) for one with both kinds on both sides.
SPLIT_TRIES = 10
# The score at and above which a clip counts as positive, for precision and recall.
THRESHOLD = 0.5
# Inverse regularisation strength, on standardised embeddings.
C = 1.0


class NotEnoughExamples(ValueError):
    """Too few positives or negatives; the message says how many more of each are needed."""

    def __init__(self, positives: int, negatives: int, minimum: int = MIN_EXAMPLES, *, where: str = ""):
        self.positives, self.negatives, self.minimum = positives, negatives, minimum
        self.missing_positives = max(0, minimum - positives)
        self.missing_negatives = max(0, minimum - negatives)
        needed = [
            f"{count} more {kind}{'' if count == 1 else 's'}"
            for count, kind in ((self.missing_positives, "positive"), (self.missing_negatives, "negative"))
            if count
        ]
        super().__init__(
            f"training needs at least {minimum} positive and {minimum} negative examples{where}; "
            f"there are {positives} positive and {negatives} negative: label {' and '.join(needed)}"
        )


def held_out_split(
    positive: np.ndarray, recordings: np.ndarray, *, test_fraction: float = TEST_FRACTION, seed: int = 0
) -> tuple[np.ndarray, np.ndarray] | str:
    """(train, held-out) example indices, each recording wholly on one side, both sides with positives and
    negatives, class shares kept as far as the recordings allow; or, if there can be none, why not."""
    from sklearn.model_selection import StratifiedGroupKFold

    kinds = {"positives": positive, "negatives": ~positive}
    spread = {kind: len(np.unique(recordings[mask])) for kind, mask in kinds.items()}
    short = [
        f"{kind} in {MIN_RECORDINGS - count} more recording{'s' if MIN_RECORDINGS - count > 1 else ''}"
        for kind, count in spread.items()
        if count < MIN_RECORDINGS
    ]
    if short:
        return (
            f"held-out figures need positives and negatives each from at least {MIN_RECORDINGS} "
            f"recordings (a recording's windows are too alike to check on each other); these labels have "
            f"positives from {spread['positives']} and negatives from {spread['negatives']}: label "
            f"{' and '.join(short)}"
        )
    folds = max(2, min(round(1 / test_fraction), len(np.unique(recordings))))
    for attempt in range(SPLIT_TRIES):
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + attempt)
        with warnings.catch_warnings():  # "the least populated class has only N members": checked below
            warnings.simplefilter("ignore", UserWarning)
            splits = list(splitter.split(np.zeros(len(positive)), positive, recordings))
        for train, test in splits:
            if all(side.any() and (~side).any() for side in (positive[train], positive[test])):
                return train, test
    return "no split of these labels by recording leaves positives and negatives on both sides"


@dataclass(frozen=True)
class TrainedClassifier:
    coef: np.ndarray  # [D] float32, on raw embeddings
    intercept: float
    metrics: dict


def sigmoid_scores(embeddings: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    """P(positive) of each embedding: sigmoid(x·coef + intercept), float64 in [0, 1]."""
    logits = np.asarray(embeddings, dtype=np.float32) @ np.asarray(coef, dtype=np.float32) + np.float32(intercept)
    # exp of a large negative logit overflows to inf, and 1 / (1 + inf) is exactly 0: no warning needed.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def fit(
    embeddings: np.ndarray,
    positive: np.ndarray,
    recordings: np.ndarray,
    *,
    minimum: int = MIN_EXAMPLES,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
    where: str = "",
) -> TrainedClassifier:
    """Fit on some recordings' examples, measure on the others' (held_out_split), then refit on every example.

    `recordings` names each example's recording. The metrics describe the model fitted on the
    training part (or, with the labels in too few recordings, say in "not_measured" why there are
    none); the weights returned are those of the same model refitted on all examples, as a few
    dozen labels are too precious to leave out.
    """
    X = np.asarray(embeddings, dtype=np.float32)
    y = np.asarray(positive, dtype=bool)
    groups = np.asarray(recordings)
    if len(groups) != len(y):
        raise ValueError(f"one recording per example: {len(groups)} recordings for {len(y)} examples")
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives < minimum or negatives < minimum:
        raise NotEnoughExamples(positives, negatives, minimum, where=where)
    if not np.isfinite(X).all():
        raise ValueError("embeddings must be finite")

    metrics: dict = {
        "n_positive": positives,
        "n_negative": negatives,
        "split": "by recording",
        "n_recordings": len(np.unique(groups)),
        "n_positive_recordings": len(np.unique(groups[y])),
        "n_negative_recordings": len(np.unique(groups[~y])),
        "refit_on_all_examples": True,
        "model": f"logistic regression, class_weight balanced, C={C}, standardised",
    }
    split = held_out_split(y, groups, test_fraction=test_fraction, seed=seed)
    if isinstance(split, str):
        metrics["not_measured"] = split
    else:
        metrics.update(_held_out_metrics(X, y, groups, *split))
        metrics["test_fraction"] = test_fraction
    coef, intercept = _fit(X, y)
    return TrainedClassifier(coef=coef, intercept=intercept, metrics=metrics)


def _held_out_metrics(X: np.ndarray, y: np.ndarray, groups: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict:
    """Precision, recall, ROC AUC and average precision on the held-out examples of a model fitted on the others."""
    from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score

    coef, intercept = _fit(X[train], y[train])
    held_out = sigmoid_scores(X[test], coef, intercept)
    predicted = held_out >= THRESHOLD
    return {
        "precision": float(precision_score(y[test], predicted, zero_division=0)),
        "recall": float(recall_score(y[test], predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(y[test], held_out)),
        "average_precision": float(average_precision_score(y[test], held_out)),
        "threshold": THRESHOLD,
        "n_train": len(train),
        "n_test": len(test),
        "n_test_positive": int(y[test].sum()),
        "n_test_negative": int((~y[test]).sum()),
        "n_train_recordings": len(np.unique(groups[train])),
        "n_test_recordings": len(np.unique(groups[test])),
    }


def _fit(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Logistic regression on standardised embeddings, returned as weights on the raw embeddings."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X)
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
    model.fit(scaler.transform(X), y)
    # sigmoid(((x - mean) / scale)·w + b) = sigmoid(x·(w / scale) + (b - mean·(w / scale)))
    coef = model.coef_[0] / scaler.scale_
    intercept = float(model.intercept_[0] - scaler.mean_ @ coef)
    return coef.astype(np.float32), intercept
