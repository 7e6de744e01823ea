"""Training a label set's classifier: logistic regression on embeddings, checked on a held-out split.

Plain numpy and scikit-learn, no Django: embeddings and 0/1 labels in, weights and metrics out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# scikit-learn is imported by the two functions that fit: importing it (with scipy) took 0.7 s and ~80 MB in
# every web and worker process, which apply classifiers with numpy alone.

# Fewer examples of either kind than this and the held-out figures mean nothing.
MIN_EXAMPLES = 5
TEST_FRACTION = 0.25
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
    *,
    minimum: int = MIN_EXAMPLES,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
    where: str = "",
) -> TrainedClassifier:
    """Fit on a stratified split, measure on the held-out part, then refit on every example.

    The metrics describe the model fitted on the training part; the weights returned are those
    of the same model refitted on all examples, as a few dozen labels are too precious to leave out.
    """
    X = np.asarray(embeddings, dtype=np.float32)
    y = np.asarray(positive, dtype=bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives < minimum or negatives < minimum:
        raise NotEnoughExamples(positives, negatives, minimum, where=where)
    if not np.isfinite(X).all():
        raise ValueError("embeddings must be finite")

    from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(len(y)), test_size=test_fraction, stratify=y, random_state=seed)
    coef, intercept = _fit(X[train], y[train])
    held_out = sigmoid_scores(X[test], coef, intercept)
    predicted = held_out >= THRESHOLD
    metrics = {
        "precision": float(precision_score(y[test], predicted, zero_division=0)),
        "recall": float(recall_score(y[test], predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(y[test], held_out)),
        "average_precision": float(average_precision_score(y[test], held_out)),
        "threshold": THRESHOLD,
        "n_positive": positives,
        "n_negative": negatives,
        "n_train": len(train),
        "n_test": len(test),
        "n_test_positive": int(y[test].sum()),
        "n_test_negative": int((~y[test]).sum()),
        "test_fraction": test_fraction,
        "refit_on_all_examples": True,
        "model": f"logistic regression, class_weight balanced, C={C}, standardised",
    }
    coef, intercept = _fit(X, y)
    return TrainedClassifier(coef=coef, intercept=intercept, metrics=metrics)


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
