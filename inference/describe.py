"""How a job reads to people, the same on its page, in the admin and in the commands: its state, its windows counted
as they were kept, its settings, and the place and week each recording's species filter used."""

from __future__ import annotations

import calendar
from dataclasses import dataclass

from echoroo.formatting import count_text, duration_text
from inference.config import MODEL_SETTINGS, InferenceConfig
from inference.models import InferenceJob, JobRecording
from inference.runner import recording_location, recording_week
from inference.runtimes import runtime_class
from inference.runtimes.week import ALL_YEAR

# Settings in words list at most this many names of a custom species list.
SHOWN_SPECIES = 5
# BirdNET's four weeks of a month begin on these days (inference.runtimes.week).
WEEK_FIRST_DAYS = (1, 8, 15, 22)


@dataclass(frozen=True)
class JobState:
    """A job's state as its badge shows it: the words, and the tone (a `status-<tone>` CSS class)."""

    text: str
    tone: str


def job_state(job: InferenceJob, failed: int = 0, cancelled: int = 0) -> JobState:
    """A completed job that left recordings failed or cancelled says so, in a warning tone, rather than a plain
    green "completed"; `failed` and `cancelled` are its recordings in those states."""
    if job.status != InferenceJob.Status.COMPLETED or not (failed or cancelled):
        return JobState(job.status, job.status)
    parts = [f"{n} {state}" for n, state in ((failed, "failed"), (cancelled, "cancelled")) if n]
    noun = "recording" if failed + cancelled == 1 else "recordings"
    return JobState(f"completed with {' and '.join(parts)} {noun}", "partial")


def windows_text(status: str, processed: int, total: int) -> tuple[str, str]:
    """A recording's (or a state's) windows, and a note for its title: those of a failed or cancelled recording
    are not "20 / 20" however far it got, since nothing of it is kept."""
    if status in (JobRecording.Status.FAILED, JobRecording.Status.CANCELLED):
        reached = f"it stopped after {count_text(processed, 'window')}" if processed else "it stopped before any window"
        return (
            f"none of {total:,} kept",
            f"{reached}; nothing of a {status} recording is kept: retrying runs it again",
        )
    return f"{processed:,} / {total:,}", ""


def reads(job: InferenceJob, setting: str) -> bool:
    """Whether the job's model reads this setting (inference.config.MODEL_SETTINGS; every model reads the rest)."""
    try:
        runtime = runtime_class(job.model_run.name)
    except ValueError:  # a model no longer installed: show everything it was given
        return True
    if setting == "use_gpu":
        return runtime.can_use_gpu
    return setting not in MODEL_SETTINGS or setting in runtime.job_settings


def uses_species_filter(job: InferenceJob, config: InferenceConfig) -> bool:
    """Whether the model's species filter by place and week decides which species each recording may get."""
    return reads(job, "use_metadata_filter") and config.use_metadata_filter and not config.custom_species_list


def settings_in_words(job: InferenceJob) -> list[str]:
    """The job's settings as sentences' pieces ("scores of at least 0.1", "CPU only"), only those its model reads."""
    config = job.settings
    words = [f"scores of at least {config.confidence_threshold:g}"]
    if reads(job, "sensitivity"):
        words.append(f"sensitivity {config.sensitivity:g}")
    if config.custom_species_list:
        names = ", ".join(config.custom_species_list[:SHOWN_SPECIES])
        more = len(config.custom_species_list) - SHOWN_SPECIES
        words.append(f"only {count_text(len(config.custom_species_list), 'species', 'species')}: {names}")
        if more > 0:
            words[-1] += f" and {more:,} more"
    elif uses_species_filter(job, config):
        place = (
            f"at {config.latitude:g}, {config.longitude:g}"
            if config.latitude is not None
            else "at each recording's place"
        )
        week = f"in {week_text(config.week)}" if config.week is not None else "and week"
        words.append(f"species likely {place} {week} (at least {config.species_filter_threshold:g})")
    elif reads(job, "use_metadata_filter"):
        words.append("every species, wherever and whenever recorded")
    words.append(f"windows overlap {duration_text(config.overlap)}" if config.overlap else "windows side by side")
    words.append(f"{count_text(config.batch_size, 'window')} a batch")
    if reads(job, "use_gpu"):
        words.append("a GPU where the worker has one" if config.use_gpu else "CPU only")
    stores = (("detections", config.store_predictions), ("embeddings", config.store_embeddings))
    kept = [what for what, on in stores if on]
    left_out = [what for what, on in stores if not on]
    words.append(f"stores {' and '.join(kept)}" + (f", no {left_out[0]}" if left_out else ""))
    return words


def week_text(week: int) -> str:
    """BirdNET's week as dates: 14 -> "week 14 (8–14 Apr)"; -1 -> "the whole year"."""
    if week == ALL_YEAR:
        return "the whole year"
    month, quarter = divmod(week - 1, 4)
    first = WEEK_FIRST_DAYS[quarter]
    last = WEEK_FIRST_DAYS[quarter + 1] - 1 if quarter < 3 else "end"
    return f"week {week} ({first}–{last} {calendar.month_abbr[month + 1]})"


@dataclass(frozen=True)
class Place:
    """Where and when a recording's species filter looked: what the job page shows beside it. Without a filter,
    `where` says why and the rest is None."""

    where: str
    when: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    week: int | None = None


def species_filter_place(job: InferenceJob, config: InferenceConfig, recording) -> Place:
    """The latitude, longitude and week the job's species filter used (or uses) for this recording, as the runner
    chooses them (inference.runner.recording_location and recording_week)."""
    if not uses_species_filter(job, config):
        return Place("no species filter")
    location = recording_location(recording, config)
    if location is None:
        return Place("no place known: every species")
    week = recording_week(recording, config)
    return Place(f"{location[0]:g}, {location[1]:g}", week_text(week), *location, week)
