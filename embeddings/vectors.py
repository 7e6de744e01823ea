"""Reading stored embeddings fast, of clips or sound events: binary results, parsed by numpy in one go per batch.

halfvec's text form costs a float parse per number (about 5,000 rows/s at 1,024-d); its binary
form is [dim uint16][unused uint16][dim float16], big-endian, which numpy reads as a structured
array (about 80,000 rows/s here). Django's cursors bind client-side and cannot ask for binary
results, so these queries run on a plain psycopg cursor over Django's own connection (same
transaction, no new connection, no adapters registered on the shared connection).

`kind` is "clip" or "sound_event" (embeddings.indexes.TABLES); ids are clip or sound event ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from django.db import connection

from embeddings.indexes import TABLES
from embeddings.read_ahead import in_transaction, read_ahead_in_thread


@dataclass(frozen=True)
class EmbeddingBatch:
    ids: np.ndarray  # [N] int64, ascending: the clips' or sound events' ids
    vectors: np.ndarray  # [N, D] float16

    def __len__(self) -> int:
        return len(self.ids)


def _rows(sql: str, params: Sequence) -> list[tuple]:
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall()


def _batch(rows: list[tuple]) -> EmbeddingBatch:
    """(id, halfvec bytes) rows -> one batch; every vector must have the same dimension."""
    if not rows:
        return EmbeddingBatch(np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float16))
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    blob = b"".join(row[1] for row in rows)
    dimension = int.from_bytes(rows[0][1][:2], "big")
    layout = np.dtype([("dimension", ">u2"), ("unused", ">u2"), ("vector", ">f2", (dimension,))])
    if len(blob) != layout.itemsize * len(rows):
        raise ValueError("the embeddings of one model run differ in dimension")
    parsed = np.frombuffer(blob, dtype=layout)
    return EmbeddingBatch(ids, parsed["vector"].astype(np.float16))


def embeddings_of(kind: str, model_run_id: int, ids: Sequence[int]) -> EmbeddingBatch:
    """The embeddings of these clips or sound events in one model run, by id (those without one are left out)."""
    table, column = TABLES[kind]
    rows = _rows(
        f"SELECT {column}, embedding FROM {table} WHERE model_run_id = %s AND {column} = ANY(%s) ORDER BY {column}",
        [model_run_id, list(ids)],
    )
    return _batch(rows)


def embedding_batches(
    kind: str, model_run_id: int, *, after_id: int = 0, batch_size: int, read_ahead: int = 0
) -> Iterator[EmbeddingBatch]:
    """Every embedding of a model run with an id above `after_id`, in id order, `batch_size` at a time.

    Keyset pagination: each batch is one short query on the id index that starts where the last
    one stopped, so no transaction stays open across batches, memory holds a few batches, and a
    job can resume from the last id it finished. With `read_ahead`, a thread reads that many
    batches ahead on its own connection while the caller works on the current one; it sees
    committed rows only, so inside a transaction the batches are read in line instead.
    """

    def batches() -> Iterator[EmbeddingBatch]:
        last = after_id
        while True:
            batch = embeddings_after(kind, model_run_id, last, batch_size)
            if not len(batch):
                return
            yield batch
            last = int(batch.ids[-1])

    if read_ahead and not in_transaction():
        yield from read_ahead_in_thread(batches, read_ahead)
    else:
        yield from batches()


def embeddings_after(kind: str, model_run_id: int, after_id: int, limit: int) -> EmbeddingBatch:
    """At most `limit` embeddings of a model run with ids above `after_id`, in id order."""
    table, column = TABLES[kind]
    rows = _rows(
        f"SELECT {column}, embedding FROM {table} WHERE model_run_id = %s AND {column} > %s ORDER BY {column} LIMIT %s",
        [model_run_id, after_id, limit],
    )
    return _batch(rows)


def count_embeddings(kind: str, model_run_id: int, *, at_most: int | None = None) -> int:
    """How many embeddings the run has; with `at_most`, counting stops there (a cheap "more than N?")."""
    table, _ = TABLES[kind]
    limit = "" if at_most is None else f" LIMIT {int(at_most)}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE model_run_id = %s{limit}) AS rows", [model_run_id]
        )
        return cursor.fetchone()[0]


def id_range(kind: str, model_run_id: int) -> tuple[int, int] | None:
    """The smallest and largest id with an embedding in the run, or None if it has none."""
    table, column = TABLES[kind]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min({column}), max({column}) FROM {table} WHERE model_run_id = %s", [model_run_id])
        low, high = cursor.fetchone()
    return None if low is None else (low, high)
