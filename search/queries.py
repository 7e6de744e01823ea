"""The nearest-neighbour SQL: the per-run HNSW index's own expression and predicate, plus filters.

One query serves both kinds of embedded item, clips and sound events (`kind`, as in
`embeddings.indexes.TABLES`): each kind has its embeddings table, its per-run index and the table
of its items, which holds the recording that filters join on.

The planner uses a partial expression index only when the query repeats its expression,
`(embedding::halfvec(D))`, and implies its predicate, `model_run_id = N`, at planning time. So the
dimension and the model run's id are written into the SQL as integer literals, never bound: a
prepared statement's generic plan sees `model_run_id = $1`, which cannot prove `= N`, and falls back
to reading every row of the run (see tests/search/test_service.py).

Filters are applied while the index is walked, with pgvector 0.8's iterative scans: when too few
of the nearest rows pass them, the scan goes on until `limit` rows pass (or `hnsw.max_scan_tuples`
rows were looked at). Relaxed order finds more of the true neighbours than strict order, and the
outer query sorts the rows again, as pgvector's README advises.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.db import connection, transaction

from embeddings.indexes import TABLES, indexed_expression

# pgvector's range for hnsw.ef_search; the candidate list must hold at least `limit` rows.
MIN_EF_SEARCH = 40
MAX_EF_SEARCH = 1000
# Default candidate lists, measured with benchmarks/search.py at 200,000 rows a run: 40 gave
# recall@20 of 0.92 (0.90 filtered); these give 0.97-0.99 unfiltered and ~0.96 filtered for a few ms.
DEFAULT_EF_SEARCH = 100
DEFAULT_EF_SEARCH_FILTERED = 200
# How many rows an iterative scan may look at before it gives up: a filter passing 0.1 % of a
# run's rows still fills 20 results. pgvector's default; raise it for rarer filters.
MAX_SCAN_TUPLES = 20_000
# kind -> the table of the embedded items (each row has its recording_id).
ITEM_TABLES = {"clip": "echoroo_clip", "sound_event": "echoroo_soundevent"}


@dataclass(frozen=True)
class Filters:
    """Which items may be returned; every filter set must hold (ids, not objects).

    The exclusions are per kind: a search by a clip leaves out that clip, not a sound event that
    happens to share its id.
    """

    dataset_id: int | None = None
    site_id: int | None = None
    recording_id: int | None = None
    recorded_after: datetime | None = None  # included
    recorded_before: datetime | None = None  # included
    exclude_recording_id: int | None = None
    exclude_clip_id: int | None = None
    exclude_sound_event_id: int | None = None

    def needs_recording(self) -> bool:
        return any(
            value is not None for value in (self.dataset_id, self.site_id, self.recorded_after, self.recorded_before)
        )

    def needs_item(self) -> bool:
        """Whether the items' own table must be joined (for their recording)."""
        return self.needs_recording() or self.recording_id is not None or self.exclude_recording_id is not None

    def selective(self) -> bool:
        """Whether the filters may pass only a share of the run: leaving out one recording (a search by an item's
        default) passes nearly every row, so it is searched as an unfiltered search is."""
        return self.needs_recording() or self.recording_id is not None

    def excluded(self, kind: str) -> int | None:
        """The item of this kind to leave out (the query item), if any."""
        return {"clip": self.exclude_clip_id, "sound_event": self.exclude_sound_event_id}[kind]


def vector_literal(vector: np.ndarray) -> str:
    """A vector as pgvector's text form; float16 values print exactly, so stored vectors round-trip."""
    return "[" + ",".join(map(repr, np.asarray(vector, dtype=np.float64).ravel().tolist())) + "]"


def nearest_sql(kind: str, model_run_id: int, dimension: int, filters: Filters, limit: int) -> tuple[str, list]:
    """SQL and parameters (the query vector first) of the `limit` nearest items: rows (item_id, distance)."""
    table, item_column = TABLES[kind]
    # Unqualified, as in the index: only the embeddings table has a column named `embedding`.
    expression = indexed_expression(dimension)
    joins, where, params = [], [f"e.model_run_id = {int(model_run_id)}"], []
    if filters.needs_item():
        joins.append(f"JOIN {ITEM_TABLES[kind]} i ON i.id = e.{item_column}")
    if filters.needs_recording():
        joins.append("JOIN echoroo_recording r ON r.id = i.recording_id")
    for condition, value in (
        ("r.dataset_id = %s", filters.dataset_id),
        ("r.site_id = %s", filters.site_id),
        ("i.recording_id = %s", filters.recording_id),
        ("r.recorded_at >= %s", filters.recorded_after),
        ("r.recorded_at <= %s", filters.recorded_before),
        ("i.recording_id <> %s", filters.exclude_recording_id),
        (f"e.{item_column} <> %s", filters.excluded(kind)),
    ):
        if value is not None:
            where.append(condition)
            params.append(value)
    sql = (
        "WITH nearest AS MATERIALIZED ("
        f" SELECT e.{item_column}, {expression} <=> %s::halfvec({int(dimension)}) AS distance"
        f" FROM {table} e {' '.join(joins)}"
        f" WHERE {' AND '.join(where)}"
        f" ORDER BY distance LIMIT {int(limit)}"
        f") SELECT {item_column}, distance FROM nearest ORDER BY distance, {item_column}"
    )
    return sql, [None, *params]


def nearest_clips_sql(model_run_id: int, dimension: int, filters: Filters, limit: int) -> tuple[str, list]:
    """nearest_sql of clips: rows (clip_id, distance)."""
    return nearest_sql("clip", model_run_id, dimension, filters, limit)


def nearest(
    kind: str,
    model_run_id: int,
    dimension: int,
    vector: np.ndarray,
    filters: Filters,
    *,
    limit: int,
    ef_search: int | None = None,
    iterative_scan: bool = True,
) -> list[tuple[int, float]]:
    """(item_id, cosine distance) of the `limit` nearest items of a kind in one model run, nearest first."""
    sql, params = nearest_sql(kind, model_run_id, dimension, filters, limit)
    params[0] = vector_literal(vector)
    filtered = filters.selective()
    default = DEFAULT_EF_SEARCH_FILTERED if filtered else DEFAULT_EF_SEARCH
    ef_search = min(MAX_EF_SEARCH, max(MIN_EF_SEARCH, limit, ef_search or default))
    # SET LOCAL lasts to the end of the transaction: the settings never leak into another query.
    # Unfiltered, the index is always the right plan; with a larger ef_search the planner sometimes
    # chose to sort the whole run instead (46 ms against 1.5 ms, measured): sorting is turned off.
    # With a selective filter the exact sort can be right, so it stays allowed there.
    no_sort = ", set_config('enable_sort', 'off', true)" if not filtered and iterative_scan else ""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', %s, true),"
            f" set_config('hnsw.max_scan_tuples', %s, true){no_sort}",
            [str(ef_search), "relaxed_order" if iterative_scan else "off", str(MAX_SCAN_TUPLES)],
        )
        cursor.execute(sql, params)
        return [(item_id, distance) for item_id, distance in cursor.fetchall() if distance == distance]  # no NaN


def nearest_clips(model_run_id: int, dimension: int, vector: np.ndarray, filters: Filters, **options) -> list:
    """(clip_id, cosine distance) of the nearest clips: `nearest` of kind "clip"."""
    return nearest("clip", model_run_id, dimension, vector, filters, **options)


def nearest_sound_events(model_run_id: int, dimension: int, vector: np.ndarray, filters: Filters, **options) -> list:
    """(sound_event_id, cosine distance) of the nearest sound events: `nearest` of kind "sound_event"."""
    return nearest("sound_event", model_run_id, dimension, vector, filters, **options)
