"""Data of the browsing and chart tests: a field season of real recordings (copies of tests/data named with
their start times, at two sites and at none) and many recordings written straight into the database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import soundfile as sf

from echoroo.importing import import_recordings
from echoroo.models import Dataset, Recording, Site
from tests.conftest import SHARED_DATA

SEASON = "Season 2026"
# Site -> (latitude, longitude, {file name in the dataset: file of tests/data}); None: no site.
LAYOUT = {
    "North marsh": (42.47, -76.45, {"NORTH_20260501_053000.wav": "1min.wav", "NORTH_20260502_060000.wav": "1min.wav"}),
    "South ridge": (42.40, -76.50, {"SOUTH_20260501_070000.wav": "rugr_drum.wav"}),
    None: (None, None, {"unknown_start.wav": "1min.wav"}),
}


def import_season(audio_root: Path) -> Dataset:
    """The season: 1min.wav twice at North marsh (05:30 on 1 May, 06:00 on 2 May, UTC), rugr_drum.wav at South
    ridge (07:00 on 1 May) and 1min.wav at no site with no start time in its name."""
    dataset = None
    for site, (latitude, longitude, files) in LAYOUT.items():
        folder = audio_root / "season" / (site or "loose").replace(" ", "_")
        folder.mkdir(parents=True)
        for name, source in files.items():
            # The samples alone: 1min.wav's AudioMoth header says 4 May 2018, and a header's time wins over a name's.
            samples, rate = sf.read(SHARED_DATA / source, dtype="int16")
            sf.write(folder / name, samples, rate, subtype="PCM_16")
        report = import_recordings([folder], dataset=SEASON, site=site, latitude=latitude, longitude=longitude)
        assert not report.failures, report.failures
        dataset = report.dataset
    return dataset


def add_recordings(
    dataset: Dataset,
    count: int,
    *,
    site: Site | None = None,
    first_start: dt.datetime | None = dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
    every: dt.timedelta = dt.timedelta(hours=1),
    duration_s: float = 600.0,
    prefix: str = "bulk",
) -> list[Recording]:
    """`count` recordings (no audio behind them) named prefix/00000.wav on, starting `every` apart (no start time:
    first_start None)."""
    return Recording.objects.bulk_create(
        Recording(
            dataset=dataset,
            site=site,
            path=f"{prefix}/{i:05}.wav",
            sha256=f"{i:064x}",
            duration=duration_s,
            samplerate=48_000,
            channels=1,
            recorded_at=first_start + i * every if first_start is not None else None,
        )
        for i in range(count)
    )
