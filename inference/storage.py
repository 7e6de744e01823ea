"""Pipeline results -> rows: clips, predictions with tags, merged detections, embeddings.

One recording's results are written in one transaction, in bulk (one statement per table,
arrays passed with unnest; embeddings with binary COPY), keyed on (clip, model_run): writing
the same results twice, after a retry or from two jobs at once, adds nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction

from echoroo.models import SPECIES
from embeddings.storage import store_embeddings
from inference.pipeline import Detection


@dataclass
class RecordingResults:
    """What the pipeline found on one recording, gathered for storage."""

    starts_s: np.ndarray  # [N] window starts
    ends_s: np.ndarray  # [N] window ends
    hits: list[list[tuple[int, float]]]  # per window: (label index, score)
    embeddings: np.ndarray | None  # [N, D] (float16 is enough: stored as halfvec)
    detections: list[Detection]  # merged
    label_names: tuple[str, ...]  # label index -> tag value


@dataclass(frozen=True)
class StoredCounts:
    clips: int
    clip_predictions: int
    detections: int
    embeddings: int


def store_recording_results(
    recording_id: int,
    model_run_id: int,
    results: RecordingResults,
    *,
    store_predictions: bool = True,
    store_embeddings_too: bool = True,
) -> StoredCounts:
    """Write one recording's results for one model run, idempotently, in one transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Don't wait for this commit to reach the disk (half of the storage time). Safe: a database
        # crash loses only the newest commits, in order, so the later "done" mark and the queue's
        # acknowledgement go with them and the task runs again; the rows are keyed, so nothing doubles.
        cursor.execute("SET LOCAL synchronous_commit = off")
        # Two writers of the same recording and model run (a retry racing a slow original,
        # two jobs at once) take turns, so the replace of detections below stays exact.
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [int(model_run_id), int(recording_id)])

        with_hits = np.array([bool(window) for window in results.hits], dtype=bool)
        if store_embeddings_too and results.embeddings is not None:
            clip_windows = np.arange(len(results.starts_s))
        elif store_predictions:
            clip_windows = np.flatnonzero(with_hits)
        else:
            clip_windows = np.array([], dtype=int)
        clip_ids = _clip_ids(cursor, recording_id, results.starts_s[clip_windows], results.ends_s[clip_windows])

        predictions = detections = embeddings = 0
        if store_predictions:
            tag_ids = _species_tag_ids(cursor, results)
            window_to_clip = dict(zip(clip_windows.tolist(), clip_ids.tolist(), strict=True))
            predictions = _store_clip_predictions(cursor, recording_id, model_run_id, results, window_to_clip, tag_ids)
            detections = _replace_detections(cursor, recording_id, model_run_id, results.detections, tag_ids)
        if store_embeddings_too and results.embeddings is not None and len(clip_ids):
            embeddings = store_embeddings("clip", clip_ids, model_run_id, results.embeddings)
    return StoredCounts(len(clip_ids), predictions, detections, embeddings)


def _clip_ids(cursor, recording_id: int, starts_s: np.ndarray, ends_s: np.ndarray) -> np.ndarray:
    """Ids of the clips of these spans, creating the missing ones; in the order given."""
    if not len(starts_s):
        return np.array([], dtype=np.int64)
    starts, ends = [float(s) for s in starts_s], [float(e) for e in ends_s]
    cursor.execute(
        "INSERT INTO echoroo_clip (uuid, recording_id, start_time, end_time) "
        "SELECT u, %s, s, e FROM unnest(%s::uuid[], %s::float8[], %s::float8[]) AS t(u, s, e) "
        "ON CONFLICT (recording_id, start_time, end_time) DO NOTHING",
        [recording_id, [uuid.uuid4() for _ in starts], starts, ends],
    )
    cursor.execute(
        "SELECT c.id FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS t(s, e, n) "
        "JOIN echoroo_clip c ON c.recording_id = %s AND c.start_time = t.s AND c.end_time = t.e ORDER BY t.n",
        [starts, ends, recording_id],
    )
    ids = np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)
    assert len(ids) == len(starts), "every window has its clip"
    return ids


def _species_tag_ids(cursor, results: RecordingResults) -> dict[int, int]:
    """Label index -> Tag id, for the labels found on this recording (created if new)."""
    labels = sorted(
        {label for window in results.hits for label, _ in window} | {d.label_index for d in results.detections}
    )
    if not labels:
        return {}
    values = [results.label_names[label] for label in labels]
    cursor.execute(
        "INSERT INTO echoroo_tag (uuid, key, value) SELECT u, %s, v FROM unnest(%s::uuid[], %s::text[]) AS t(u, v) "
        "ON CONFLICT (key, value) DO NOTHING",
        [SPECIES, [uuid.uuid4() for _ in values], values],
    )
    cursor.execute("SELECT value, id FROM echoroo_tag WHERE key = %s AND value = ANY(%s)", [SPECIES, values])
    by_value = dict(cursor.fetchall())
    return {label: by_value[value] for label, value in zip(labels, values, strict=True)}


def _store_clip_predictions(cursor, recording_id, model_run_id, results, window_to_clip, tag_ids) -> int:
    """Window predictions of this run replace the previous ones of the recording and model run.

    Predictions of clips that still have detections keep their row (and uuid); their tags
    are rewritten, so a rerun at a higher threshold leaves no stale low scores behind.
    """
    windows = [i for i, window in enumerate(results.hits) if window]
    clip_ids = [window_to_clip[i] for i in windows]
    cursor.execute(
        "WITH previous AS ("
        "  SELECT p.id, p.clip_id FROM echoroo_clipprediction p JOIN echoroo_clip c ON c.id = p.clip_id"
        "  WHERE p.model_run_id = %s AND c.recording_id = %s),"
        " tags AS (DELETE FROM echoroo_clippredictiontag WHERE clip_prediction_id IN (SELECT id FROM previous))"
        " DELETE FROM echoroo_clipprediction WHERE id IN (SELECT id FROM previous WHERE NOT clip_id = ANY(%s))",
        [model_run_id, recording_id, clip_ids],
    )
    if not windows:
        return 0
    cursor.execute(
        "INSERT INTO echoroo_clipprediction (uuid, clip_id, model_run_id, created_at) "
        "SELECT u, c, %s, now() FROM unnest(%s::uuid[], %s::bigint[]) AS t(u, c) "
        "ON CONFLICT (clip_id, model_run_id) DO NOTHING",
        [model_run_id, [uuid.uuid4() for _ in clip_ids], clip_ids],
    )
    cursor.execute(
        "SELECT clip_id, id FROM echoroo_clipprediction WHERE model_run_id = %s AND clip_id = ANY(%s)",
        [model_run_id, clip_ids],
    )
    prediction_of_clip = dict(cursor.fetchall())
    prediction_ids, tags, scores = [], [], []
    for window, clip_id in zip(windows, clip_ids, strict=True):
        for label, score in results.hits[window]:
            prediction_ids.append(prediction_of_clip[clip_id])
            tags.append(tag_ids[label])
            scores.append(min(max(float(score), 0.0), 1.0))
    cursor.execute(
        "INSERT INTO echoroo_clippredictiontag (clip_prediction_id, tag_id, score) "
        "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::float8[])",
        [prediction_ids, tags, scores],
    )
    return len(clip_ids)


def _replace_detections(cursor, recording_id, model_run_id, detections: list[Detection], tag_ids) -> int:
    """Merged detections as SoundEvent + SoundEventPrediction (+ tag); a rerun replaces them.

    Sound events have no natural key, so the previous run's detections of this recording
    and model run are deleted first; the advisory lock above makes that safe.
    """
    cursor.execute(
        "WITH doomed AS ("
        "  SELECT p.id, p.sound_event_id FROM echoroo_soundeventprediction p"
        "  JOIN echoroo_soundevent e ON e.id = p.sound_event_id WHERE p.model_run_id = %s AND e.recording_id = %s),"
        " tags AS (DELETE FROM echoroo_soundeventpredictiontag"
        "          WHERE sound_event_prediction_id IN (SELECT id FROM doomed)),"
        " predictions AS (DELETE FROM echoroo_soundeventprediction WHERE id IN (SELECT id FROM doomed))"
        " DELETE FROM echoroo_soundevent WHERE id IN (SELECT sound_event_id FROM doomed)",
        [model_run_id, recording_id],
    )
    if not detections:
        return 0
    detections = sorted(detections, key=lambda d: (d.start_s, d.label_index))
    event_uuids = [uuid.uuid4() for _ in detections]
    cursor.execute(
        "INSERT INTO echoroo_soundevent (uuid, recording_id, start_time, end_time, created_at) "
        "SELECT u, %s, s, e, now() FROM unnest(%s::uuid[], %s::float8[], %s::float8[]) AS t(u, s, e) "
        "RETURNING uuid, id",
        [recording_id, event_uuids, [d.start_s for d in detections], [d.end_s for d in detections]],
    )
    event_id = dict(cursor.fetchall())
    event_ids = [event_id[u] for u in event_uuids]
    prediction_uuids = [uuid.uuid4() for _ in detections]
    cursor.execute(
        "INSERT INTO echoroo_soundeventprediction (uuid, sound_event_id, model_run_id, created_at) "
        "SELECT u, e, %s, now() FROM unnest(%s::uuid[], %s::bigint[]) AS t(u, e) RETURNING uuid, id",
        [model_run_id, prediction_uuids, event_ids],
    )
    prediction_id = dict(cursor.fetchall())
    prediction_ids = [prediction_id[u] for u in prediction_uuids]
    cursor.execute(
        "INSERT INTO echoroo_soundeventpredictiontag (sound_event_prediction_id, tag_id, score) "
        "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::float8[])",
        [
            prediction_ids,
            [tag_ids[d.label_index] for d in detections],
            [min(max(d.score, 0.0), 1.0) for d in detections],
        ],
    )
    return len(detections)
