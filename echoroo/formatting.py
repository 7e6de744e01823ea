"""How lengths of time, times in a recording and counts read to people: one way for the admin, pages and commands."""

from __future__ import annotations

import math


def duration_text(seconds: float | None) -> str:
    """A length of time as people say it: "0.142 s", "3 s", "12.5 s", "4 min 05 s", "30 min", "2 h 05 min"; "–" for
    none. Short lengths keep their decimals (a clip, a short file); long ones are rounded to the second or minute."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 59.95:
        digits = 3 if seconds < 1 else 2 if seconds < 10 else 1
        return f"{round(seconds, digits):g} s"
    whole = round(seconds)
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest:02} s" if rest else f"{minutes} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours:,} h {minutes:02} min" if minutes else f"{hours:,} h"


def clock(seconds: float) -> str:
    """Seconds into a recording as h:mm:ss.s or m:ss.s."""
    # In tenths first, so that 59.96 s reads 1:00.0, not 0:60.0.
    minutes, tenths = divmod(round(max(seconds, 0.0) * 10), 600)
    hours, minutes = divmod(minutes, 60)
    rest = f"{tenths // 10:02}.{tenths % 10}"
    return f"{hours}:{minutes:02}:{rest}" if hours else f"{minutes}:{rest}"


def span_text(start_s: float, end_s: float) -> str:
    """A stretch of a recording by its clock times: "0:06.0–0:09.0"."""
    return f"{clock(start_s)}–{clock(end_s)}"


def count_text(count: int, singular: str, plural: str | None = None) -> str:
    """ "1 recording", "2 recordings", "12,000 windows": a count with its noun in the right number."""
    return f"{count:,} {singular if count == 1 else plural or singular + 's'}"


def band_text(low_hz: float | None, high_hz: float | None) -> str:
    """A frequency band in kHz: "1.2–5 kHz", "from 1.2 kHz", "up to 5 kHz", or "whole band" when neither is set."""
    if low_hz is None and high_hz is None:
        return "whole band"
    if high_hz is None:
        return f"from {low_hz / 1000:g} kHz"
    if low_hz is None:
        return f"up to {high_hz / 1000:g} kHz"
    return f"{low_hz / 1000:g}–{high_hz / 1000:g} kHz"
