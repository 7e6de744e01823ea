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
# The bin (0 = lowest) of a scored tag row `t`, of %(bins)s equal bins from %(low)s to 1.
SCORE_BIN = "LEAST(GREATEST(width_bucket(t.score, %(low)s, 1.0 + 1e-12, %(bins)s), 1), %(bins)s) - 1"


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


def kept_while_finished(maxsize: int):
    """Keep what `compute(job, *args)` gives for a finished job, per process.

    A finished job's detections do not change until it is retried, which sets another completion
    time; so the completion time is part of the key, and a retried job is computed anew. A job still
    running is computed every time. `compute` returns something immutable (a tuple), as it is shared.
    """

    def decorate(compute):
        @functools.lru_cache(maxsize=maxsize)
        def kept(job, completed_at, *args):  # jobs and tags hash by their primary keys
            return compute(job, *args)

        @functools.wraps(compute)
        def call(job: InferenceJob, *args):
            if job.is_finished and job.completed_at is not None:
                return kept(job, job.completed_at, *args)
            return compute(job, *args)

        call.cache_clear = kept.cache_clear
        return call

    return decorate


def review_sample(
    job: InferenceJob,
    species: Tag,
    *,
    per_bin: int = DEFAULT_PER_BIN,
    seed: int = 0,
    bins: int = DEFAULT_BINS,
) -> list[SampleItem]:
    """Up to `per_bin` of the job's detections of `species` from each score bin, lowest bin first.

    Kept for a finished job (see kept_while_finished): drawing from the 150,000 detections of a
    common species takes a quarter of a second, a kept sample nothing.
    """
    return list(_sample(job, species, per_bin, seed, bins))


@kept_while_finished(maxsize=256)
def _sample(job: InferenceJob, species: Tag, per_bin: int, seed: int, bins: int) -> tuple[SampleItem, ...]:
    low = float(job.settings.confidence_threshold)
    edges = bin_edges(low, bins)
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH found AS ("
            f"  SELECT t.id, t.score, p.clip_id, {SCORE_BIN} AS bin"
            "  FROM echoroo_clippredictiontag t JOIN echoroo_clipprediction p ON p.id = t.clip_prediction_id"
            "  WHERE p.job_id = %(job)s AND t.tag_id = %(tag)s),"
            " ranked AS ("
            "  SELECT *, row_number() OVER (PARTITION BY bin ORDER BY hashint8extended(id, %(seed)s), id) AS draw"
            "  FROM found)"
            " SELECT c.uuid, c.id, r.uuid, r.path, c.start_time, c.end_time, k.score, k.bin"
            " FROM ranked k JOIN echoroo_clip c ON c.id = k.clip_id JOIN echoroo_recording r ON r.id = c.recording_id"
            " WHERE k.draw <= %(per_bin)s ORDER BY k.bin, k.draw",
            {"low": low, "bins": bins, "job": job.pk, "tag": species.pk, "seed": int(seed), "per_bin": per_bin},
        )
        rows = cursor.fetchall()
    return tuple(
        SampleItem(
            clip_uuid=str(clip_uuid),
            clip_id=clip_id,
            recording_uuid=str(recording_uuid),
            recording_path=path,
            start_time=start,
            end_time=end,
            species=species.value,
            score=score,
            bin=bin_index,
            bin_low=edges[bin_index],
            bin_high=edges[bin_index + 1],
        )
        for clip_uuid, clip_id, recording_uuid, path, start, end, score, bin_index in rows
    )


def bin_counts(job: InferenceJob, species: Tag, *, bins: int = DEFAULT_BINS) -> list[int]:
    """How many of the job's detections of `species` fall in each score bin (kept for a finished job)."""
    return list(_bin_counts(job, species, bins))


@kept_while_finished(maxsize=256)
def _bin_counts(job: InferenceJob, species: Tag, bins: int) -> tuple[int, ...]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {SCORE_BIN}, count(*)"
            " FROM echoroo_clippredictiontag t JOIN echoroo_clipprediction p ON p.id = t.clip_prediction_id"
            " WHERE p.job_id = %(job)s AND t.tag_id = %(tag)s GROUP BY 1",
            {"low": float(job.settings.confidence_threshold), "bins": bins, "job": job.pk, "tag": species.pk},
        )
        found = dict(cursor.fetchall())
    return tuple(int(found.get(i, 0)) for i in range(bins))
