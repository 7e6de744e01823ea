"""What the recording page shows of a recording and how: the span of time in view (its length chosen from 1 s to a
minute), the band of frequencies drawn, the spectrogram image to ask for, and the ticks under it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.http import QueryDict
from django.urls import reverse

from echoroo.media import default_top_hz
from echoroo.models import Recording

# How much of the recording the view holds at a time (?view=, seconds); prev/next step by it. By default, the
# shortest that holds the whole recording, at most a minute.
VIEW_LENGTHS_S = (1.0, 3.0, 10.0, 30.0, 60.0)
# A whole view is drawn this wide (the spectrogram's column of the page at 1,366 px) and this high; a shorter span
# (the end of a recording) is drawn as wide as its share of the view, so a second is as wide in every view of one
# length, and a short recording is never stretched.
VIEW_WIDTH_PX = 1200
VIEW_HEIGHT_PX = 256
# A tick under the image every so many seconds, for each view length.
TICK_STEP_S = {1.0: 0.1, 3.0: 0.5, 10.0: 1.0, 30.0: 5.0, 60.0: 10.0}
# The band's choices (?min_freq=, ?max_freq=, Hz); those above the recording's highest frequency are not offered.
MIN_FREQ_CHOICES_HZ = (0.0, 500.0, 1000.0, 2000.0, 4000.0)
MAX_FREQ_CHOICES_HZ = (2000.0, 4000.0, 8000.0, 12000.0, 16000.0, 24000.0, 48000.0)


def khz_text(hz: float) -> str:
    return f"{hz / 1000:g} kHz" if hz else "0"


def length_text(seconds: float) -> str:
    return "1 min" if seconds == 60 else f"{seconds:g} s"


@dataclass
class RecordingView:
    """The view's time span and band, and what the page draws from them."""

    recording: Recording
    length_s: float
    from_s: float
    to_s: float
    min_freq_hz: float
    max_freq_hz: float
    # The display parameters asked for and accepted, kept in every link of the page.
    params: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def span_s(self) -> float:
        return self.to_s - self.from_s

    @property
    def width_px(self) -> int:
        """The image's width: the view's share of VIEW_WIDTH_PX (0.14 s of a 1-s view: 170 px)."""
        return max(1, round(self.span_s / self.length_s * VIEW_WIDTH_PX))

    @property
    def width_pct(self) -> str:
        """How much of the page's spectrogram column the image takes: all of it unless the recording ends first."""
        return f"{min(100.0, 100 * self.span_s / self.length_s):.3f}"

    @property
    def ends_early(self) -> bool:
        return self.span_s < self.length_s - 1e-9

    @property
    def previous_from(self) -> float | None:
        return max(self.from_s - self.length_s, 0.0) if self.from_s > 0 else None

    @property
    def next_from(self) -> float | None:
        return self.to_s if self.to_s < self.recording.duration else None

    def zoomed(self, step: int) -> dict[str, str] | None:
        """The parameters of the next shorter (step -1) or longer (+1) view, or None past either end."""
        at = VIEW_LENGTHS_S.index(self.length_s) + step
        if not 0 <= at < len(VIEW_LENGTHS_S):
            return None
        return {**self.params, "view": f"{VIEW_LENGTHS_S[at]:g}"}

    def spectrogram_url(self) -> str:
        query = {
            "start": f"{self.from_s:g}",
            "end": f"{self.to_s:g}",
            "width": str(self.width_px),
            "min_freq": f"{self.min_freq_hz:g}",
            "max_freq": f"{self.max_freq_hz:g}",
        }
        return reverse("recording-spectrogram", args=[self.recording.uuid]) + "?" + urlencode(query)

    def ticks(self, clock) -> list[dict]:
        """A tick every TICK_STEP_S of the view, placed in percent of the image; `clock` formats seconds."""
        step = TICK_STEP_S[self.length_s]
        first = math.ceil(self.from_s / step - 1e-9)
        ticks = []
        for n in range(first, first + int(self.length_s / step) + 1):
            at = n * step
            if at >= self.to_s - 1e-9:
                break
            ticks.append({"left_pct": f"{100 * (at - self.from_s) / self.span_s:.3f}", "label": tick_label(at, clock)})
        return ticks

    def freq_labels(self) -> list[str]:
        """The band's top, middle and bottom, as the axis beside the image writes them."""
        middle = (self.min_freq_hz + self.max_freq_hz) / 2
        return [khz_text(self.max_freq_hz), khz_text(middle), khz_text(self.min_freq_hz)]

    def length_choices(self) -> list[tuple[str, str]]:
        return [(f"{length:g}", length_text(length)) for length in VIEW_LENGTHS_S]

    def band_choices(self) -> dict[str, list[tuple[str, str]]]:
        """The band's choices as (value, text): those within the recording, its top, and the band shown."""
        nyquist = self.recording.samplerate / 2
        tops = {hz for hz in MAX_FREQ_CHOICES_HZ if hz < nyquist} | {nyquist, self.max_freq_hz}
        bottoms = {hz for hz in MIN_FREQ_CHOICES_HZ if hz < nyquist} | {self.min_freq_hz}
        return {
            "min": [(f"{hz:g}", khz_text(hz)) for hz in sorted(bottoms)],
            "max": [(f"{hz:g}", khz_text(hz)) for hz in sorted(tops)],
        }


def tick_label(seconds: float, clock) -> str:
    text = clock(seconds)
    return text.removesuffix(".0")


def view_length(duration_s: float) -> float:
    """The default view: the shortest that holds the whole recording, at most a minute."""
    return next((length for length in VIEW_LENGTHS_S if length >= duration_s - 1e-9), VIEW_LENGTHS_S[-1])


def number(query: QueryDict, name: str) -> float | None:
    """A finite number from the query string, None when absent; ValueError when it is something else."""
    text = query.get(name, "").strip()
    if not text:
        return None
    value = float(text)  # ValueError for words
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def recording_view(recording: Recording, query: QueryDict) -> RecordingView:
    """The view ?t=, ?view=, ?min_freq= and ?max_freq= ask for; what cannot be shown is said and left at its default.

    The view is the page of its length that holds ?t= (views of one length tile the recording from 0 s); a band
    reaching above the recording's highest frequency stops there (links from another recording may carry one).
    """
    duration = recording.duration
    params: dict[str, str] = {}
    problems: list[str] = []
    length = view_length(duration)
    try:
        asked = number(query, "view")
    except ValueError:
        asked, problems = None, [f"“{query.get('view')}” is not a view length: pick one of the list."]
    if asked is not None:
        if asked in VIEW_LENGTHS_S:
            length = asked
            params["view"] = f"{asked:g}"
        else:
            choices = ", ".join(f"{choice:g}" for choice in VIEW_LENGTHS_S)
            problems.append(f"No view of {asked:g} s: the views are {choices} s long.")

    try:
        wanted = number(query, "t") or 0.0
    except ValueError:
        wanted = 0.0
    wanted = min(max(wanted, 0.0), duration)
    start = math.floor(wanted / length) * length
    # A time at the very end belongs to the last view, not to an empty one after it.
    if start >= duration and start > 0:
        start -= length

    nyquist = recording.samplerate / 2
    low, high = 0.0, default_top_hz(recording)
    try:
        asked_low, asked_high = number(query, "min_freq"), number(query, "max_freq")
    except ValueError:
        asked_low = asked_high = None
        problems.append("The band's frequencies must be numbers of Hz: showing the default band.")
    if asked_low is not None or asked_high is not None:
        new_low = asked_low if asked_low is not None else low
        new_high = min(asked_high, nyquist) if asked_high is not None else high
        if 0 <= new_low < new_high:
            low, high = new_low, new_high
            if asked_low is not None:
                params["min_freq"] = f"{new_low:g}"
            if asked_high is not None:
                params["max_freq"] = f"{new_high:g}"
        else:
            problems.append(
                f"No band from {khz_text(new_low)} to {khz_text(new_high)}: the lowest frequency must be at least 0 "
                f"and below the highest. Showing {khz_text(low)} to {khz_text(high)}."
            )
    return RecordingView(
        recording=recording,
        length_s=length,
        from_s=start,
        to_s=min(start + length, duration),
        min_freq_hz=low,
        max_freq_hz=high,
        params=params,
        problems=problems,
    )
