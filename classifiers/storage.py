"""Scores -> rows: one ClipPrediction per clip under a classifier's run, with its one tag and score, in bulk.

A batch whose clips have no prediction of the run yet (the first application) goes in with binary
COPY, both tables built as numpy arrays in PostgreSQL's wire layout; a batch with some already
there (applying again, or a batch written twice after a crash) is upserted on (clip, model_run),
keeping each prediction's row and uuid and rewriting its score. Either way: one row per clip.
"""

from __future__ import annotations

import os
import struct
import time

import numpy as np
import psycopg
from django.db import connection

_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
# PostgreSQL's timestamps count microseconds from 2000-01-01 UTC.
_POSTGRES_EPOCH_S = 946_684_800

# Each field of a binary COPY row is preceded by its length; a row by its number of fields.
_PREDICTION_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("id_size", ">i4"),
        ("id", ">i8"),
        ("uuid_size", ">i4"),
        ("uuid", "V16"),
        ("clip_size", ">i4"),
        ("clip", ">i8"),
        ("run_size", ">i4"),
        ("run", ">i8"),
        ("created_size", ">i4"),
        ("created", ">i8"),
    ]
)
_TAG_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("prediction_size", ">i4"),
        ("prediction", ">i8"),
        ("tag_size", ">i4"),
        ("tag", ">i8"),
        ("score_size", ">i4"),
        ("score", ">f8"),
    ]
)

UPSERT_SCORES = """
WITH scored AS (
    SELECT * FROM unnest(%(clip_ids)b::bigint[], %(scores)b::float8[]) AS t(clip_id, score)
), predictions AS (
    INSERT INTO echoroo_clipprediction (uuid, clip_id, model_run_id, created_at)
    SELECT gen_random_uuid(), clip_id, %(model_run_id)s, now() FROM scored
    -- An update that changes nothing, so that RETURNING names the rows already there too.
    ON CONFLICT (clip_id, model_run_id) WHERE job_id IS NULL DO UPDATE SET model_run_id = EXCLUDED.model_run_id
    RETURNING id, clip_id
)
INSERT INTO echoroo_clippredictiontag (clip_prediction_id, tag_id, score)
SELECT predictions.id, %(tag_id)s, scored.score FROM predictions JOIN scored USING (clip_id)
ON CONFLICT (clip_prediction_id, tag_id) DO UPDATE SET score = EXCLUDED.score
"""


def store_scores(model_run_id: int, tag_id: int, clip_ids: np.ndarray, scores: np.ndarray) -> None:
    """One prediction per clip (ids ascending) under the run, with its one tag and score, in the current transaction.

    A plain psycopg cursor on Django's connection: Django's own cursors bind client-side, spelling
    out every number as SQL text in Python; these send the arrays as binary.
    """
    clip_ids = np.asarray(clip_ids, dtype=np.int64)
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    if not len(clip_ids):
        return
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM echoroo_clipprediction "
            "WHERE model_run_id = %s AND clip_id BETWEEN %s AND %s)",
            [model_run_id, int(clip_ids[0]), int(clip_ids[-1])],
        )
        if cursor.fetchone()[0]:
            cursor.execute(
                UPSERT_SCORES,
                {
                    "clip_ids": clip_ids.tolist(),
                    "scores": scores.tolist(),
                    "model_run_id": model_run_id,
                    "tag_id": tag_id,
                },
            )
        else:
            _copy_new(cursor, model_run_id, tag_id, clip_ids, scores)


def _copy_new(cursor: psycopg.Cursor, model_run_id: int, tag_id: int, clip_ids: np.ndarray, scores: np.ndarray) -> None:
    """COPY rows for clips that have no prediction of the run: the ids are drawn first, to link each tag to its row."""
    count = len(clip_ids)
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence('echoroo_clipprediction', 'id')) FROM generate_series(1, %s)", [count]
    )
    prediction_ids = np.fromiter((row[0] for row in cursor.fetchall()), dtype=np.int64, count=count)

    predictions = np.empty(count, dtype=_PREDICTION_ROW)
    predictions["fields"] = 5
    predictions["id_size"], predictions["id"] = 8, prediction_ids
    predictions["uuid_size"], predictions["uuid"] = 16, _uuid4s(count)
    predictions["clip_size"], predictions["clip"] = 8, clip_ids
    predictions["run_size"], predictions["run"] = 8, model_run_id
    predictions["created_size"] = 8
    predictions["created"] = round((time.time() - _POSTGRES_EPOCH_S) * 1_000_000)
    with cursor.copy(
        "COPY echoroo_clipprediction (id, uuid, clip_id, model_run_id, created_at) FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.write(_HEADER + predictions.tobytes() + _TRAILER)

    tags = np.empty(count, dtype=_TAG_ROW)
    tags["fields"] = 3
    tags["prediction_size"], tags["prediction"] = 8, prediction_ids
    tags["tag_size"], tags["tag"] = 8, tag_id
    tags["score_size"], tags["score"] = 8, scores
    with cursor.copy(
        "COPY echoroo_clippredictiontag (clip_prediction_id, tag_id, score) FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.write(_HEADER + tags.tobytes() + _TRAILER)


def _uuid4s(count: int) -> np.ndarray:
    """`count` random (version 4) uuids as 16-byte values."""
    # os.urandom, as uuid.uuid4 itself uses: uuids are public names, so not from a seeded generator.
    raw = np.frombuffer(os.urandom(16 * count), dtype=np.uint8).reshape(count, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw.view("V16").ravel()
