"""A stratified, seeded random sample of a job's detections of one species, for review.

The score range from the job's threshold to 1 is cut into bins of equal width; from each bin a few
detections are drawn at random. "Random" is an order by a seeded hash of the detection, so
the same seed draws the same sample (two reviewers can split it, or both review it), and a larger
`per_bin` extends the smaller sample instead of drawing another.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.db import connection

from echoroo.models import Tag
from inference.models import InferenceJob

DEFAULT_BINS = 10
DEFAULT_PER_BIN = 5
MAX_PER_BIN = 100


@dataclass(frozen=True)
class SampleItem:
    clip_uuid: str
    clip_id: int
    recording_uuid: str
    recording_path: str
    start_time: float
    end_time: float
    species: str  # the model's label
    score: float
    bin: int  # 0 = lowest scores
    bin_low: float
    bin_high: float


def bin_edges(low: float, bins: int = DEFAULT_BINS) -> list[float]:
    """`bins` + 1 edges from `low` to 1, equally spaced."""
    return [low + (1.0 - low) * i / bins for i in range(bins + 1)]


def review_sample(
    job: InferenceJob,
    species: Tag,
    *,
    per_bin: int = DEFAULT_PER_BIN,
    seed: int = 0,
    bins: int = DEFAULT_BINS,
) -> list[SampleItem]:
    """Up to `per_bin` of the job's detections of `species` from each score bin, lowest bin first.

    A finished job's detections do not change until it is retried (which sets another completion
    time), so its samples are kept per process: reading the 150,000 detections of a common species
    takes a quarter of a second, a kept sample nothing.
    """
    if job.is_finished and job.completed_at is not None:
        low = float(job.settings.confidence_threshold)
        key = (job.pk, job.completed_at, low, species.pk, species.value, per_bin, seed, bins)
        return list(_finished_job_sample(*key))
    return _draw(job.pk, float(job.settings.confidence_threshold), species.pk, species.value, per_bin, seed, bins)


@functools.lru_cache(maxsize=256)
def _finished_job_sample(job_id, completed_at, low, tag_id, label, per_bin, seed, bins) -> tuple[SampleItem, ...]:
    return tuple(_draw(job_id, low, tag_id, label, per_bin, seed, bins))


def _draw(job_id: int, low: float, tag_id: int, label: str, per_bin: int, seed: int, bins: int) -> list[SampleItem]:
    edges = bin_edges(low, bins)
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH found AS ("
            "  SELECT t.id, t.score, p.clip_id,"
            "   LEAST(GREATEST(width_bucket(t.score, %(low)s, 1.0 + 1e-12, %(bins)s), 1), %(bins)s) - 1 AS bin"
            "  FROM echoroo_clippredictiontag t JOIN echoroo_clipprediction p ON p.id = t.clip_prediction_id"
            "  WHERE p.job_id = %(job)s AND t.tag_id = %(tag)s),"
            " ranked AS ("
            "  SELECT *, row_number() OVER (PARTITION BY bin ORDER BY hashint8extended(id, %(seed)s), id) AS draw"
            "  FROM found)"
            " SELECT c.uuid, c.id, r.uuid, r.path, c.start_time, c.end_time, k.score, k.bin"
            " FROM ranked k JOIN echoroo_clip c ON c.id = k.clip_id JOIN echoroo_recording r ON r.id = c.recording_id"
            " WHERE k.draw <= %(per_bin)s ORDER BY k.bin, k.draw",
            {"low": low, "bins": bins, "job": job_id, "tag": tag_id, "seed": int(seed), "per_bin": per_bin},
        )
        rows = cursor.fetchall()
    return [
        SampleItem(
            clip_uuid=str(clip_uuid),
            clip_id=clip_id,
            recording_uuid=str(recording_uuid),
            recording_path=path,
            start_time=start,
            end_time=end,
            species=label,
            score=score,
            bin=bin_index,
            bin_low=edges[bin_index],
            bin_high=edges[bin_index + 1],
        )
        for clip_uuid, clip_id, recording_uuid, path, start, end, score, bin_index in rows
    ]


def bin_counts(job: InferenceJob, species: Tag, *, bins: int = DEFAULT_BINS) -> list[int]:
    """How many of the job's detections of `species` fall in each score bin."""
    low = float(job.settings.confidence_threshold)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT LEAST(GREATEST(width_bucket(t.score, %s, 1.0 + 1e-12, %s), 1), %s) - 1, count(*)"
            " FROM echoroo_clippredictiontag t JOIN echoroo_clipprediction p ON p.id = t.clip_prediction_id"
            " WHERE p.job_id = %s AND t.tag_id = %s GROUP BY 1",
            [low, bins, bins, job.pk, species.pk],
        )
        found = dict(cursor.fetchall())
    return [int(found.get(i, 0)) for i in range(bins)]
