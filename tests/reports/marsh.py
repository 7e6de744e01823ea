"""A small survey written straight into the database, with known times: what the summary and history tests
compute by hand.

Dataset "Marsh 2026", three sites, recordings in UTC (the tests read days in UTC unless they say):

  A-north  a1 04-01 05:00-06:00 and a2 05:30-06:30 (overlap: 90 min of audio), a3 04-02 23:30 - 04-03 00:30
           (over midnight: 30 + 30 min), nothing on 04-04 (the job failed the one recording of that day),
           a4 04-05 06:00-06:30, and a recording without a start time
  B-south  b1 04-01 04:00-06:00 (120 min), nothing on 04-02, b3 04-03 10:00-10:10, b4 04-04 08:00-09:00,
           b5 04-05 08:00-09:00
  C-west   no audio at all
  (none)   a recording at no site, 04-01 12:00-12:10

The newest job's window detections (3-s windows; species: Robin, Blue Jay):
  Robin    a1 +600 s (05:10) 0.8, a1 +900 s (05:15) 0.5, a2 +300 s (05:35) 0.9, a3 +2400 s (04-03 00:10) 0.6,
           b3 +60 s (04-03 10:01) 0.7, the recording without a start time +30 s 0.4
  Blue Jay a4 +120 s (04-05 06:02) 0.7, a1 +600 s (05:10) 0.3, the recording at no site +0 s 0.95
An older job on the same dataset found one Robin, on b4 (04-04 08:30) 0.99.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from django.utils import timezone

from echoroo.models import SPECIES, Clip, ClipPrediction, ClipPredictionTag, Dataset, ModelRun, Recording, Site, Tag
from inference.models import InferenceJob, JobRecording

ROBIN = "Turdus migratorius_American Robin"
BLUE_JAY = "Cyanocitta cristata_Blue Jay"
WINDOW_S = 3.0


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 4, day, hour, minute, tzinfo=dt.UTC)


@dataclass
class Marsh:
    dataset: Dataset
    job: InferenceJob
    older_job: InferenceJob
    recordings: dict[str, Recording]
    clips: dict[tuple[str, float], Clip]

    def clip(self, recording: str, start_s: float) -> Clip:
        return self.clips[(recording, start_s)]


def build() -> Marsh:
    dataset = Dataset.objects.create(name="Marsh 2026")
    sites = {name: Site.objects.create(dataset=dataset, name=name) for name in ("A-north", "B-south", "C-west")}
    layout = {
        "a1": ("A-north", at(1, 5), 3600),
        "a2": ("A-north", at(1, 5, 30), 3600),
        "a3": ("A-north", at(2, 23, 30), 3600),
        "a-failed": ("A-north", at(4, 6), 3600),
        "a4": ("A-north", at(5, 6), 1800),
        "a-unknown": ("A-north", None, 600),
        "b1": ("B-south", at(1, 4), 7200),
        "b3": ("B-south", at(3, 10), 600),
        "b4": ("B-south", at(4, 8), 3600),
        "b5": ("B-south", at(5, 8), 3600),
        "no-site": (None, at(1, 12), 600),
    }
    recordings = {
        name: Recording.objects.create(
            dataset=dataset,
            site=sites.get(site),
            path=f"marsh/{name}.wav",
            sha256=hashlib.sha256(name.encode()).hexdigest(),
            duration=duration_s,
            samplerate=48_000,
            channels=1,
            recorded_at=start,
        )
        for name, (site, start, duration_s) in layout.items()
    }
    model_run, _ = ModelRun.objects.get_or_create(name="BirdNET", version="2.4-marsh", defaults={"sample_rate": 48000})
    marsh = Marsh(dataset, None, None, recordings, {})
    marsh.older_job = _job(marsh, model_run, {"b4": {1800.0: {ROBIN: 0.99}}}, age_s=3600)
    marsh.job = _job(
        marsh,
        model_run,
        {
            "a1": {600.0: {ROBIN: 0.8, BLUE_JAY: 0.3}, 900.0: {ROBIN: 0.5}},
            "a2": {300.0: {ROBIN: 0.9}},
            "a3": {2400.0: {ROBIN: 0.6}},
            "a4": {120.0: {BLUE_JAY: 0.7}},
            "a-unknown": {30.0: {ROBIN: 0.4}},
            "b3": {60.0: {ROBIN: 0.7}},
            "no-site": {0.0: {BLUE_JAY: 0.95}},
        },
        failed=("a-failed",),
    )
    return marsh


def _job(marsh: Marsh, model_run: ModelRun, found: dict, *, failed=(), age_s: float = 0) -> InferenceJob:
    """A completed job on the dataset that finished every recording but `failed`, with these window detections."""
    finished = timezone.now() - dt.timedelta(seconds=age_s)
    job = InferenceJob.objects.create(
        model_run=model_run,
        dataset=marsh.dataset,
        status=InferenceJob.Status.COMPLETED,
        config={"confidence_threshold": 0.25},
        progress=100,
        completed_at=finished,
    )
    InferenceJob.objects.filter(pk=job.pk).update(created_at=finished)
    for name, recording in marsh.recordings.items():
        status = JobRecording.Status.FAILED if name in failed else JobRecording.Status.DONE
        JobRecording.objects.create(job=job, recording=recording, status=status)
    for name, windows in found.items():
        for start_s, scores in windows.items():
            clip, _ = Clip.objects.get_or_create(
                recording=marsh.recordings[name], start_time=start_s, end_time=start_s + WINDOW_S
            )
            marsh.clips[(name, start_s)] = clip
            prediction = ClipPrediction.objects.create(clip=clip, model_run=model_run, job=job)
            for label, score in scores.items():
                tag, _ = Tag.objects.get_or_create(key=SPECIES, value=label)
                ClipPredictionTag.objects.create(clip_prediction=prediction, tag=tag, score=score)
    job.refresh_from_db()
    return job
