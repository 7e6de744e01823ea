"""The calibration plot's geometry: P(correct) against the score, for the template to draw as inline SVG (no Django).

The score axis is on the logit scale, labelled in scores: the model's scores pile up near 1 (BirdNET's
thresholds for 0.95 are often 0.99 and above), where a linear axis would squeeze them into a line.
On this axis the fitted curve, logistic in logit(score), is the familiar S.
"""

from __future__ import annotations

import math

import numpy as np

from validation.calibration import TARGETS, Calibration, score_logit

WIDTH, HEIGHT = 820, 380
LEFT, RIGHT, TOP, BOTTOM = 58, 18, 14, 46
CURVE_POINTS = 240
# Verdicts sit on 0 (wrong) or 1 (correct), spread inwards by up to this much so that they stay apart.
JITTER = 0.06
# Height of a threshold's label line, in pixels.
LABEL_LINE_PX = 14
# Scores the axis may be labelled at, and the fewest pixels between two labels.
TICKS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999, 0.99999)
TICK_SPACING_PX = 38
# The axis ends where scores no longer differ: BirdNET clips its logits to +-15.
MAX_LOGIT = 15.0


def logit(score: float) -> float:
    return float(score_logit(np.array([score]))[0])


def score_text(score: float | None) -> str:
    """A score with as many decimals as it takes to tell it from 1 (0.950, 0.9996, 0.99996), at least three."""
    if score is None:
        return "–"
    decimals = 3 if score >= 1 else min(7, max(3, math.ceil(-math.log10(1 - score) - 1e-9)))
    return f"{score:.{decimals}f}"


def calibration_plot(scores: np.ndarray, correct: np.ndarray, fitted: Calibration | None, *, low: float) -> dict:
    """Coordinates (in px of a WIDTH x HEIGHT box) of the axes, the verdicts, the fitted curve and the thresholds.

    The axis runs from the job's threshold (or the lowest score judged) to past the highest score
    judged, 0.999 and every threshold.
    """
    scores = np.asarray(scores, dtype=np.float64)
    found = [t for t in (fitted.thresholds.values() if fitted else ()) if t is not None]
    x_min = logit(max(low, 0.001)) if low > 0 else logit(max(float(scores.min(initial=0.01)), 0.001))
    x_max = min(MAX_LOGIT, max([logit(0.999), *score_logit(scores), *(logit(t) for t in found)]) + 0.4)
    if fitted is not None:
        for key in fitted.intervals:
            high = fitted.intervals[key][1]
            if high is not None:
                x_max = min(MAX_LOGIT, max(x_max, logit(high) + 0.2))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of_logit(value: float) -> float:
        return round(LEFT + (min(max(value, x_min), x_max) - x_min) / (x_max - x_min) * plot_w, 1)

    def x(score: float) -> float:
        return x_of_logit(logit(score))

    def y(p: float) -> float:
        return round(TOP + (1.0 - p) * plot_h, 1)

    spread = np.random.default_rng(0).uniform(0, JITTER, len(scores))
    points = [
        {
            "x": x(float(score)),
            "y": y(1 - lift if ok else lift),
            "correct": bool(ok),
            "title": f"score {score_text(float(score))}: {'correct' if ok else 'wrong'}",
        }
        for score, ok, lift in zip(scores, correct, spread, strict=True)
    ]
    curve, marks = "", []
    if fitted is not None:
        intercept, slope = fitted.coefficients
        grid = np.linspace(x_min, x_max, CURVE_POINTS)
        fitted_p = 1 / (1 + np.exp(-(intercept + slope * grid)))
        curve = " ".join(f"{x_of_logit(v)},{y(p)}" for v, p in zip(grid, fitted_p, strict=True))
        for target in TARGETS:
            key = f"{target:g}"
            threshold = fitted.thresholds[key]
            if threshold is None:
                continue
            low_t, high_t = fitted.intervals[key]
            marks.append(
                {
                    "target": key,
                    "threshold": score_text(threshold),
                    "x": x(threshold),
                    "y": y(target),
                    "interval": (x(low_t), x(high_t)) if low_t is not None else None,
                }
            )
    # Thresholds close together would print their labels over one another: each at least a line below the last.
    last_label_y = -LABEL_LINE_PX
    for mark in sorted(marks, key=lambda mark: mark["y"]):
        mark["label_y"] = last_label_y = max(mark["y"], last_label_y + LABEL_LINE_PX)
    ticks: list[dict] = []
    for tick in TICKS:
        position = x(tick)
        if x_min - 1e-9 <= logit(tick) <= x_max + 1e-9 and (not ticks or position - ticks[-1]["x"] >= TICK_SPACING_PX):
            ticks.append({"x": position, "label": f"{tick:g}"})
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": HEIGHT - BOTTOM,
        "x_ticks": ticks,
        "y_ticks": [{"y": y(p), "label": f"{p:g}"} for p in (0, 0.25, 0.5, 0.75, 1)],
        "x_label": ((LEFT + WIDTH - RIGHT) / 2, HEIGHT - 8),
        "y_label": (16, (TOP + HEIGHT - BOTTOM) / 2),
        "points": points,
        "curve": curve,
        "marks": marks,
    }
