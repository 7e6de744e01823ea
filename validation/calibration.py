"""Calibration of a detector's scores from reviewed detections (no database).

Wood & Kahl (2024, J. Ornithology, "Guidelines for appropriate use of BirdNET scores and other
detector outputs"): an unpenalised logistic regression of correct (1) / wrong (0) on the logit of
the score, fitted by maximum likelihood as R's glm(family = binomial) does; the threshold for a
target probability p is the score where the fitted P(correct) reaches p.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

TARGETS = (0.90, 0.95, 0.99)
# Fewest verdicts of each kind to fit: below this the slope is noise.
MIN_EACH = 10
BOOTSTRAP_ROUNDS = 200
# Scores of exactly 0 or 1 have no logit: clipped to BirdNET's own range (logit +-15).
SCORE_EPSILON = 3.059e-7


class TooFewVerdicts(ValueError):
    """Not enough correct and wrong verdicts to fit; `needed` says how many more of each."""

    def __init__(self, n_correct: int, n_wrong: int):
        self.n_correct, self.n_wrong = n_correct, n_wrong
        self.needed = {"correct": max(0, MIN_EACH - n_correct), "wrong": max(0, MIN_EACH - n_wrong)}
        more = " and ".join(f"{count} more {kind}" for kind, count in self.needed.items() if count)
        super().__init__(
            f"calibration needs at least {MIN_EACH} correct and {MIN_EACH} wrong verdicts "
            f"(unsure ones left out); there are {n_correct} correct and {n_wrong} wrong: review {more}"
        )


class NoFit(ValueError):
    """The maximum likelihood does not exist (the verdicts are separated by score) or did not converge."""


def judged(verdicts: Iterable[tuple[float, str]]) -> tuple[np.ndarray, np.ndarray]:
    """(scores, correct) to fit from (score, verdict) pairs: "unsure" left out, "other" (another species) wrong."""
    kept = [(score, verdict == "correct") for score, verdict in verdicts if verdict != "unsure"]
    return (
        np.array([score for score, _ in kept], dtype=np.float64),
        np.array([correct for _, correct in kept], dtype=bool),
    )


def score_logit(scores: np.ndarray) -> np.ndarray:
    scores = np.clip(np.asarray(scores, dtype=np.float64), SCORE_EPSILON, 1 - SCORE_EPSILON)
    return np.log(scores / (1 - scores))


def fit_logistic(x: np.ndarray, y: np.ndarray, *, max_iterations: int = 100, tolerance: float = 1e-10) -> np.ndarray:
    """[intercept, slope] maximising the likelihood of y (0/1) given x, by Newton-Raphson (IRLS), as glm does."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    design = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    deviance = math.inf
    for _ in range(max_iterations):
        eta = np.clip(design @ beta, -700, 700)  # exp() stays finite: separated data is caught below
        p = 1 / (1 + np.exp(-eta))
        weights = np.clip(p * (1 - p), 1e-12, None)
        gradient = design.T @ (y - p)
        hessian = design.T @ (design * weights[:, None])
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError as error:
            raise NoFit("the verdicts' scores do not vary enough to fit a curve") from error
        beta = beta + step
        p = np.clip(1 / (1 + np.exp(-np.clip(design @ beta, -700, 700))), 1e-300, 1 - 1e-16)
        new_deviance = -2 * float(np.sum(y * np.log(p) + (1 - y) * np.log1p(-p)))
        if abs(deviance - new_deviance) < tolerance * (abs(new_deviance) + 0.1):
            break
        deviance = new_deviance
    else:
        raise NoFit("the fit did not converge")
    if not np.all(np.isfinite(beta)) or abs(beta[1]) > 50:
        raise NoFit("correct and wrong verdicts are separated by score: no finite curve fits them")
    return beta


def threshold_for(beta: np.ndarray, target: float) -> float | None:
    """The score where P(correct) reaches `target` on the fitted curve; None when it never does (slope <= 0)."""
    intercept, slope = float(beta[0]), float(beta[1])
    if slope <= 0:
        return None
    x = (math.log(target / (1 - target)) - intercept) / slope
    if x > 15:  # beyond the highest score a model gives
        return None
    return 1 / (1 + math.exp(-x))


def probability(beta: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The fitted P(correct) at these scores."""
    return 1 / (1 + np.exp(-(beta[0] + beta[1] * score_logit(scores))))


@dataclass(frozen=True)
class Calibration:
    n_correct: int
    n_wrong: int
    coefficients: tuple[float, float]  # [intercept, slope] on logit(score)
    thresholds: dict[str, float | None]  # "0.9" -> score
    intervals: dict[str, tuple[float | None, float | None]]  # "0.9" -> 95 % bootstrap interval
    # Estimated share of correct detections among the job's detections at or above each threshold.
    precision_above: dict[str, float | None]


def calibrate(
    scores: np.ndarray,
    correct: np.ndarray,
    *,
    detection_scores: np.ndarray | None = None,
    rounds: int = BOOTSTRAP_ROUNDS,
    seed: int = 0,
) -> Calibration:
    """Fit P(correct | score) from verdicts (`correct` true/false) and derive the thresholds for TARGETS.

    `detection_scores`, all the detections' scores, give the estimated share correct above each
    threshold: the mean fitted probability over the detections that pass it.
    """
    scores, correct = np.asarray(scores, dtype=np.float64), np.asarray(correct, dtype=bool)
    n_correct, n_wrong = int(correct.sum()), int((~correct).sum())
    if n_correct < MIN_EACH or n_wrong < MIN_EACH:
        raise TooFewVerdicts(n_correct, n_wrong)
    x, y = score_logit(scores), correct.astype(np.float64)
    beta = fit_logistic(x, y)
    thresholds = {_key(target): threshold_for(beta, target) for target in TARGETS}

    rng = np.random.default_rng(seed)
    boot: dict[str, list[float]] = {_key(target): [] for target in TARGETS}
    for _ in range(rounds):
        pick = rng.integers(0, len(x), len(x))
        try:
            sample_beta = fit_logistic(x[pick], y[pick])
        except NoFit:
            continue
        for target in TARGETS:
            found = threshold_for(sample_beta, target)
            if found is not None:
                boot[_key(target)].append(found)
    intervals = {
        key: (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))) if values else (None, None)
        for key, values in boot.items()
    }

    precision_above: dict[str, float | None] = {}
    for key, threshold in thresholds.items():
        if detection_scores is None or threshold is None:
            precision_above[key] = None
            continue
        passing = np.asarray(detection_scores, dtype=np.float64)
        passing = passing[passing >= threshold]
        precision_above[key] = float(probability(beta, passing).mean()) if len(passing) else None
    return Calibration(
        n_correct=n_correct,
        n_wrong=n_wrong,
        coefficients=(float(beta[0]), float(beta[1])),
        thresholds=thresholds,
        intervals=intervals,
        precision_above=precision_above,
    )


def _key(target: float) -> str:
    return f"{target:g}"
