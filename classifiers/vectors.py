"""Reading stored clip embeddings fast: binary results, parsed by numpy in one go per batch.

halfvec's text form costs a float parse per number (about 5,000 rows/s at 1,024-d); its binary
form is [dim uint16][unused uint16][dim float16], big-endian, which numpy reads as a structured
array (about 80,000 rows/s here). Django's cursors bind client-side and cannot ask for binary
results, so these queries run on a plain psycopg cursor over Django's own connection (same
transaction, no new connection, no adapters registered on the shared connection).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from django.db import connection

from classifiers.threads import in_transaction, read_ahead_in_thread

TABLE = "embeddings_clipembedding"


@dataclass(frozen=True)
class EmbeddingBatch:
    clip_ids: np.ndarray  # [N] int64, ascending
    vectors: np.ndarray  # [N, D] float16

    def __len__(self) -> int:
        return len(self.clip_ids)


def _rows(sql: str, params: Sequence) -> list[tuple]:
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall()


def _batch(rows: list[tuple]) -> EmbeddingBatch:
    """(clip_id, halfvec bytes) rows -> one batch; every vector must have the same dimension."""
    if not rows:
        return EmbeddingBatch(np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float16))
    clip_ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    blob = b"".join(row[1] for row in rows)
    dimension = int.from_bytes(rows[0][1][:2], "big")
    layout = np.dtype([("dimension", ">u2"), ("unused", ">u2"), ("vector", ">f2", (dimension,))])
    if len(blob) != layout.itemsize * len(rows):
        raise ValueError("the embeddings of one model run differ in dimension")
    parsed = np.frombuffer(blob, dtype=layout)
    return EmbeddingBatch(clip_ids, parsed["vector"].astype(np.float16))


def embeddings_of_clips(model_run_id: int, clip_ids: Sequence[int]) -> EmbeddingBatch:
    """The embeddings of these clips in one model run, by clip id (clips without one are left out)."""
    rows = _rows(
        f"SELECT clip_id, embedding FROM {TABLE} WHERE model_run_id = %s AND clip_id = ANY(%s) ORDER BY clip_id",
        [model_run_id, list(clip_ids)],
    )
    return _batch(rows)


def embedding_batches(
    model_run_id: int, *, after_clip_id: int = 0, batch_size: int, read_ahead: int = 0
) -> Iterator[EmbeddingBatch]:
    """Every embedding of a model run with a clip id above `after_clip_id`, in clip id order, `batch_size` at a time.

    Keyset pagination: each batch is one short query on the clip id index that starts where the
    last one stopped, so no transaction stays open across batches, memory holds a few batches,
    and a job can resume from the last clip id it finished. With `read_ahead`, a thread reads
    that many batches ahead on its own connection while the caller works on the current one;
    it sees committed rows only, so inside a transaction the batches are read in line instead.
    """

    def batches() -> Iterator[EmbeddingBatch]:
        last = after_clip_id
        while True:
            batch = embeddings_after(model_run_id, last, batch_size)
            if not len(batch):
                return
            yield batch
            last = int(batch.clip_ids[-1])

    if read_ahead and not in_transaction():
        yield from read_ahead_in_thread(batches, read_ahead)
    else:
        yield from batches()


def embeddings_after(model_run_id: int, after_clip_id: int, limit: int) -> EmbeddingBatch:
    """At most `limit` embeddings of a model run with clip ids above `after_clip_id`, in clip id order."""
    rows = _rows(
        f"SELECT clip_id, embedding FROM {TABLE} WHERE model_run_id = %s AND clip_id > %s ORDER BY clip_id LIMIT %s",
        [model_run_id, after_clip_id, limit],
    )
    return _batch(rows)


def count_embeddings(model_run_id: int, *, at_most: int | None = None) -> int:
    """How many embeddings the run has; with `at_most`, counting stops there (a cheap "more than N?")."""
    limit = "" if at_most is None else f" LIMIT {int(at_most)}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} WHERE model_run_id = %s{limit}) AS rows", [model_run_id]
        )
        return cursor.fetchone()[0]


def clip_id_range(model_run_id: int) -> tuple[int, int] | None:
    """The smallest and largest clip id with an embedding in the run, or None if it has none."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT min(clip_id), max(clip_id) FROM {TABLE} WHERE model_run_id = %s",
            [model_run_id],
        )
        low, high = cursor.fetchone()
    return None if low is None else (low, high)
