"""Pipeline results -> rows: clips, the model's raw output, the job's detections (windows and merged), embeddings.

One recording's results are written in one transaction, in bulk: a statement or two per kind of
row, integer arrays passed as one literal each and unnested, the raw output's entries and the
embeddings by binary COPY, so that Python never quotes values one by one (benchmarks/storage.py).
Raw output and embeddings are keyed on (clip, model_run), so two jobs or a retry never double
them; detections belong to the job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction

from embeddings.storage import store_embeddings
from inference.config import InferenceConfig
from inference.pipeline import Detection
from inference.raw_output import array_literal, species_tag_ids, write_outputs
from inference.selection import WindowOutputs


@dataclass
class RecordingResults:
    """What one recording gave a job: the model's raw output (when it ran) and the job's selection."""

    starts_s: np.ndarray  # [N] window starts
    ends_s: np.ndarray  # [N] window ends
    hits: list[list[tuple[int, float]]]  # per window: (label index, score), the job's selection
    detections: list[Detection]  # merged
    label_names: tuple[str, ...]  # label index -> tag value
    # The model's output when it ran on the audio (None when the job read stored output), its floor,
    # and the embeddings (float16 is enough: stored as halfvec).
    outputs: WindowOutputs | None = None
    floor_logit: float = 0.0
    embeddings: np.ndarray | None = None


@dataclass(frozen=True)
class StoredCounts:
    clips: int
    raw_outputs: int
    clip_predictions: int
    detections: int
    embeddings: int


def store_recording_results(
    recording_id: int, model_run_id: int, job_id: int, results: RecordingResults, *, config: InferenceConfig
) -> StoredCounts:
    """Write one recording's raw output (when the model ran) and the job's detections, in one transaction.

    Idempotent: raw output is keyed on (clip, model run) and never replaced by less; the job's
    detections of this recording replace those a previous attempt of the same job wrote.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        # Don't wait for this commit to reach the disk (half of the storage time). Safe: a database
        # crash loses only the newest commits, in order, so the later "done" mark and the queue's
        # acknowledgement go with them and the task runs again; the rows are keyed, so nothing doubles.
        # Writers of one recording's raw output take turns (two jobs at once), and so do two attempts
        # of one job (a retry racing a slow original), so the replace of its detections stays exact.
        # Always in this order, and jobs keyed negative so the two never share a key: no deadlock.
        # One statement, one round trip: its expressions run left to right.
        cursor.execute(
            "SELECT set_config('synchronous_commit', 'off', true), pg_advisory_xact_lock(%s, %s),"
            " pg_advisory_xact_lock(%s, %s)",
            [int(model_run_id), int(recording_id), -int(job_id), int(recording_id)],
        )

        windows = np.arange(len(results.starts_s))
        if results.outputs is None:  # stored output: only the windows with detections need their clip
            windows = np.flatnonzero([bool(window) for window in results.hits])
        clip_ids = _clip_ids(cursor, recording_id, results.starts_s[windows], results.ends_s[windows])
        clip_of_window = dict(zip(windows.tolist(), clip_ids.tolist(), strict=True))
        tag_ids = _species_tag_ids(cursor, results)

        raw = predictions = detections = embeddings = 0
        if results.outputs is not None:
            raw = write_outputs(
                cursor,
                recording_id=recording_id,
                model_run_id=model_run_id,
                overlap=config.overlap,
                clip_ids=clip_ids,
                outputs=results.outputs,
                floor_logit=results.floor_logit,
                tag_of_label=tag_ids,
                embeddings=config.store_embeddings and results.embeddings is not None,
            )
        if config.store_predictions:
            predictions = _replace_clip_predictions(
                cursor, recording_id, model_run_id, job_id, results, clip_of_window, tag_ids
            )
            detections = _replace_detections(cursor, recording_id, model_run_id, job_id, results.detections, tag_ids)
        if config.store_embeddings and results.embeddings is not None and len(clip_ids):
            embeddings = store_embeddings("clip", clip_ids, model_run_id, results.embeddings)
    return StoredCounts(len(clip_ids), raw, predictions, detections, embeddings)


def _clip_ids(cursor, recording_id: int, starts_s: np.ndarray, ends_s: np.ndarray) -> np.ndarray:
    """Ids of the clips of these spans, creating the missing ones; in the order given."""
    if not len(starts_s):
        return np.array([], dtype=np.int64)
    starts, ends = [float(s) for s in starts_s], [float(e) for e in ends_s]
    cursor.execute(
        "INSERT INTO echoroo_clip (uuid, recording_id, start_time, end_time) "
        "SELECT gen_random_uuid(), %s, s, e FROM unnest(%s::float8[], %s::float8[]) AS t(s, e) "
        "ON CONFLICT (recording_id, start_time, end_time) DO NOTHING RETURNING start_time, end_time, id",
        [recording_id, starts, ends],
    )
    clip_of_span = {(start, end): clip_id for start, end, clip_id in cursor.fetchall()}
    if len(clip_of_span) < len(starts):  # some were there already (another job, another attempt)
        cursor.execute(
            "SELECT c.start_time, c.end_time, c.id FROM unnest(%s::float8[], %s::float8[]) AS t(s, e) "
            "JOIN echoroo_clip c ON c.recording_id = %s AND c.start_time = t.s AND c.end_time = t.e",
            [starts, ends, recording_id],
        )
        clip_of_span = {(start, end): clip_id for start, end, clip_id in cursor.fetchall()}
    ids = np.array([clip_of_span.get(span, -1) for span in zip(starts, ends, strict=True)], dtype=np.int64)
    assert (ids >= 0).all(), "every window has its clip"
    return ids


def _species_tag_ids(cursor, results: RecordingResults) -> dict[int, int]:
    """Label index -> Tag id, for the labels in this recording's output and selection (created if new)."""
    labels = {label for window in results.hits for label, _ in window} | {d.label_index for d in results.detections}
    if results.outputs is not None:
        labels |= set(results.outputs.labels.tolist())
    labels = sorted(labels)
    by_name = species_tag_ids(cursor, [results.label_names[label] for label in labels])
    return {label: by_name[results.label_names[label]] for label in labels}


def _replace_clip_predictions(cursor, recording_id, model_run_id, job_id, results, clip_of_window, tag_ids) -> int:
    """The job's window detections of this recording: one ClipPrediction per window with hits, a tag per label."""
    cursor.execute(
        "WITH previous AS ("
        "  SELECT p.id FROM echoroo_clipprediction p JOIN echoroo_clip c ON c.id = p.clip_id"
        "  WHERE p.job_id = %s AND c.recording_id = %s),"
        " tags AS (DELETE FROM echoroo_clippredictiontag WHERE clip_prediction_id IN (SELECT id FROM previous))"
        " DELETE FROM echoroo_clipprediction WHERE id IN (SELECT id FROM previous)",
        [job_id, recording_id],
    )
    windows = [i for i, window in enumerate(results.hits) if window]
    if not windows:
        return 0
    window_of_hit, tags, scores = [], [], []
    for number, window in enumerate(windows):
        for label, score in results.hits[window]:
            window_of_hit.append(number)
            tags.append(tag_ids[label])
            scores.append(min(max(float(score), 0.0), 1.0))
    # One statement: the predictions' ids are drawn from their sequence first, so their tags can
    # name them without a round trip for RETURNING and a lookup in Python.
    cursor.execute(
        "WITH windows AS MATERIALIZED ("
        "  SELECT nextval((SELECT pg_get_serial_sequence('echoroo_clipprediction', 'id')::regclass)) AS id, c, n"
        "  FROM unnest(%s::bigint[]) WITH ORDINALITY AS w(c, n)),"
        " predictions AS (INSERT INTO echoroo_clipprediction (id, uuid, clip_id, model_run_id, job_id, created_at)"
        "  SELECT id, gen_random_uuid(), c, %s, %s, now() FROM windows) "
        "INSERT INTO echoroo_clippredictiontag (clip_prediction_id, tag_id, score) "
        "SELECT w.id, h.t, h.s FROM unnest(%s::int[], %s::bigint[], %s::float8[]) AS h(n, t, s) "
        "JOIN windows w ON w.n = h.n + 1",
        [
            array_literal([clip_of_window[i] for i in windows]),
            model_run_id,
            job_id,
            array_literal(window_of_hit),
            array_literal(tags),
            scores,
        ],
    )
    return len(windows)


def _replace_detections(cursor, recording_id, model_run_id, job_id, detections: list[Detection], tag_ids) -> int:
    """The job's merged detections as SoundEvent + SoundEventPrediction (+ tag); another attempt replaces them.

    Sound events have no natural key, so a previous attempt's detections of this recording and
    job are deleted first (their sound events with them); the advisory lock above makes that safe.
    """
    cursor.execute(
        "WITH doomed AS ("
        "  SELECT p.id, p.sound_event_id FROM echoroo_soundeventprediction p"
        "  JOIN echoroo_soundevent e ON e.id = p.sound_event_id WHERE p.job_id = %s AND e.recording_id = %s),"
        " tags AS (DELETE FROM echoroo_soundeventpredictiontag"
        "          WHERE sound_event_prediction_id IN (SELECT id FROM doomed)),"
        " predictions AS (DELETE FROM echoroo_soundeventprediction WHERE id IN (SELECT id FROM doomed))"
        " DELETE FROM echoroo_soundevent WHERE id IN (SELECT sound_event_id FROM doomed)",
        [job_id, recording_id],
    )
    if not detections:
        return 0
    detections = sorted(detections, key=lambda d: (d.start_s, d.label_index))
    # One statement, ids drawn from the sequences first (see _replace_clip_predictions).
    cursor.execute(
        "WITH found AS MATERIALIZED ("
        "  SELECT nextval((SELECT pg_get_serial_sequence('echoroo_soundevent', 'id')::regclass)) AS event_id,"
        "   nextval((SELECT pg_get_serial_sequence('echoroo_soundeventprediction', 'id')::regclass)) AS prediction_id,"
        "   s, e, t, score"
        "  FROM unnest(%s::float8[], %s::float8[], %s::bigint[], %s::float8[]) AS d(s, e, t, score)),"
        " events AS (INSERT INTO echoroo_soundevent (id, uuid, recording_id, start_time, end_time, created_at)"
        "  SELECT event_id, gen_random_uuid(), %s, s, e, now() FROM found),"
        " predictions AS (INSERT INTO echoroo_soundeventprediction"
        "  (id, uuid, sound_event_id, model_run_id, job_id, created_at)"
        "  SELECT prediction_id, gen_random_uuid(), event_id, %s, %s, now() FROM found) "
        "INSERT INTO echoroo_soundeventpredictiontag (sound_event_prediction_id, tag_id, score) "
        "SELECT prediction_id, t, score FROM found",
        [
            [d.start_s for d in detections],
            [d.end_s for d in detections],
            array_literal([tag_ids[d.label_index] for d in detections]),
            [min(max(d.score, 0.0), 1.0) for d in detections],
            recording_id,
            model_run_id,
            job_id,
        ],
    )
    return len(detections)
