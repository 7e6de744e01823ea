"""One partial HNSW index per ModelRun, on exactly the expression that searches use; deferred during large loads.

Adding rows to an HNSW graph one at a time is the slowest part of storing a job's results (each
insert searches the graph), while CREATE INDEX after the load builds the same graph in memory
several times faster (benchmarks/storage.py). So a job that will add many embeddings to a run
drops the run's index when it starts (`defer_index`), and the index is built again, with CREATE
INDEX CONCURRENTLY, once no job is writing the run's embeddings any more (`build_index_if_needed`,
queued by inference.tasks when a job finishes). Meanwhile searches still work: without the index
the same query is an exact scan of the run's rows (slower, never wrong).

The rule (`should_defer`): a load is deferred when it adds at least MIN_DEFERRED_ROWS (5,000) rows
and at least half as many rows as the run already holds (DEFER_FACTOR 2); a small job on a big run
keeps the index and maintains it, since rebuilding the run's whole graph would cost more than the
inserts. A job counts the windows it will embed (those of recordings without stored embeddings).

Builders and droppers of one run's index take turns on an advisory lock; a build that failed
half-way (CONCURRENTLY leaves an INVALID index behind) is found by `index_state` and done again.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager, suppress

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

# kind -> (table, the column naming the embedded item)
TABLES = {
    "clip": ("embeddings_clipembedding", "clip_id"),
    "sound_event": ("embeddings_soundeventembedding", "sound_event_id"),
}
# The rule, measured with benchmarks/storage.py (2 cores, 1,024-d, 48,000 rows): rows went into a
# maintained graph at about 700 a second, and CREATE INDEX after the load built it at 2,000 to 2,400,
# so rebuilding a run of N rows after a load of M costs less than inserting the M while N < 2 to 2.5 M.
# A load is deferred when it brings at least a 1/DEFER_FACTOR of the rows the run holds ...
DEFER_FACTOR = 2
# ... and at least this many rows (4 hours of BirdNET's windows, ~7 s of inserts): below it the
# drop and the rebuild are not worth their while, and a run's searches stay indexed.
MIN_DEFERRED_ROWS = 5_000
# The memory a build may take (maintenance_work_mem), raised from the server's default up to this:
# the build needs the whole graph in memory (about 2.7 kB a 1,024-d row) or it spills to disk.
MAX_BUILD_MEMORY_BYTES = 2 * 1024**3
# How long dropping an index may wait for the transactions using it before the load keeps it.
DROP_LOCK_TIMEOUT = "10s"


def index_name(kind: str, model_run_id: int) -> str:
    return f"{kind}_embedding_hnsw_run_{model_run_id}"


def indexed_expression(dimension: int) -> str:
    """The SQL expression the index is built on; queries must use exactly this to use the index."""
    return f"(embedding::halfvec({int(dimension)}))"


def ensure_hnsw_index(kind: str, model_run_id: int, dimension: int) -> str:
    """Create the partial HNSW index (cosine) of one model run's embeddings if it is missing (CREATE INDEX)."""
    _create(kind, model_run_id, dimension, concurrently=False)
    return index_name(kind, model_run_id)


def index_state(kind: str, model_run_id: int) -> str:
    """The state of a run's index: "valid", "invalid" (a CONCURRENTLY build failed or is under way) or "missing"."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [index_name(kind, model_run_id)]
        )
        row = cursor.fetchone()
    if row is None:
        return "missing"
    return "valid" if row[0] else "invalid"


def should_defer(expected_rows: int, stored_rows: int) -> bool:
    """Whether a load of `expected_rows` into a run holding `stored_rows` is faster with the index built after it."""
    return expected_rows >= MIN_DEFERRED_ROWS and stored_rows <= DEFER_FACTOR * expected_rows


def windows_to_embed(model_run_id: int, overlap: float, windows_of_recording: dict[int, int]) -> int:
    """How many of these recordings' windows (recording id -> windows) a job will embed: those not stored yet."""
    from echoroo.models import RecordingOutput

    if sum(windows_of_recording.values()) < MIN_DEFERRED_ROWS:  # too few to defer anyway: no query
        return sum(windows_of_recording.values())
    embedded = set(
        RecordingOutput.objects.filter(
            model_run_id=model_run_id, overlap=overlap, embeddings=True, recording_id__in=list(windows_of_recording)
        ).values_list("recording_id", flat=True)
    )
    return sum(windows for recording_id, windows in windows_of_recording.items() if recording_id not in embedded)


def defer_index(model_run_id: int, *, expected_rows: int, kind: str = "clip") -> bool:
    """Before a load of `expected_rows` new rows: drop the run's index if the rule says so; True when it is absent.

    Counts the run's rows only as far as the rule needs. A build under way is left to finish (the
    load then maintains the index): the load never waits for it.
    """
    if expected_rows < MIN_DEFERRED_ROWS:
        return False
    table, _ = TABLES[kind]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE model_run_id = %s LIMIT %s) AS stored",
            [int(model_run_id), DEFER_FACTOR * int(expected_rows) + 1],
        )
        (stored_rows,) = cursor.fetchone()
    if not should_defer(expected_rows, stored_rows):
        return False
    with _index_lock(kind, model_run_id, wait=False) as held:
        if not held:
            return False
        if index_state(kind, model_run_id) == "missing":
            return True
        try:
            _drop(kind, model_run_id)
        except DatabaseError as error:  # a busy table: maintain the index rather than hold the job up
            if connection.in_atomic_block:
                raise
            logger.warning("run %s: its index stays during the load (%s)", model_run_id, error)
            return False
    logger.info(
        "run %s: HNSW index dropped for a load of %s rows (%s stored)", model_run_id, expected_rows, stored_rows
    )
    return True


def build_index_if_needed(kind: str, model_run_id: int, dimension: int) -> str:
    """Build the run's index if it is missing or invalid: "valid" (nothing to do), "built", "rebuilt" or "busy".

    Outside a transaction the build is CREATE INDEX CONCURRENTLY, so searches and writes go on
    meanwhile; inside one (a test, a caller's atomic block) it is a plain CREATE INDEX. "busy":
    another session is building it now.
    """
    with _index_lock(kind, model_run_id, wait=connection.in_atomic_block) as held:
        if not held:
            return "busy"
        state = index_state(kind, model_run_id)
        if state == "valid":
            return "valid"
        if state == "invalid":  # what a failed CONCURRENTLY build leaves: it cannot be finished, only redone
            logger.warning("run %s: its HNSW index is invalid (a build failed); building it again", model_run_id)
            _drop(kind, model_run_id)
        _create(kind, model_run_id, dimension, concurrently=not connection.in_atomic_block)
    return "rebuilt" if state == "invalid" else "built"


@contextmanager
def _index_lock(kind: str, model_run_id: int, *, wait: bool):
    """Builders and droppers of one run's index take turns; yields whether the lock is held.

    In a transaction the lock lasts to its end; outside one it is a session lock, released here.
    """
    key = f"embeddings.hnsw:{index_name(kind, model_run_id)}"
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
            cursor.execute(f"SELECT {function}(hashtext(%s))", [key])
            yield cursor.fetchone()[0] is not False
            return
        function = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
        cursor.execute(f"SELECT {function}(hashtext(%s))", [key])
        held = cursor.fetchone()[0] is not False
        try:
            yield held
        finally:
            if held:
                with suppress(DatabaseError):  # a lost connection has released it already
                    cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])


def _drop(kind: str, model_run_id: int) -> None:
    name = index_name(kind, model_run_id)
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
            return
        # CONCURRENTLY: searches and writes of other runs go on; it waits for those using the index.
        cursor.execute(f"SET lock_timeout = '{DROP_LOCK_TIMEOUT}'")
        try:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        finally:
            cursor.execute("RESET lock_timeout")


def _create(kind: str, model_run_id: int, dimension: int, *, concurrently: bool) -> None:
    table, _ = TABLES[kind]
    name = index_name(kind, model_run_id)
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            # PostgreSQL refuses CREATE INDEX on a table with deferred foreign-key checks still
            # pending in this transaction; running them now lets a ModelRun be made anywhere.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        raised = _raise_build_memory(cursor, kind, model_run_id, dimension)
        try:
            cursor.execute(
                f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS {name} ON {table} USING hnsw "
                f"({indexed_expression(dimension)} halfvec_cosine_ops) "
                # ef_construction 128 (pgvector's default is 64): recall@20 at 200,000 rows rose from 0.92 to
                # 0.975 (0.90 to 0.96 filtered) for 1.5-2.5x the build time (benchmarks/search.py).
                f"WITH (m = 16, ef_construction = 128) WHERE model_run_id = {int(model_run_id)}"
            )
        finally:
            if raised and not connection.in_atomic_block:
                cursor.execute("RESET maintenance_work_mem")


def _raise_build_memory(cursor, kind: str, model_run_id: int, dimension: int) -> bool:
    """Let the build hold the run's graph in memory (up to MAX_BUILD_MEMORY_BYTES); whether it was raised."""
    table, _ = TABLES[kind]
    cursor.execute(
        f"SELECT (SELECT count(*) FROM {table} WHERE model_run_id = %s),"
        " (SELECT setting::bigint * 1024 FROM pg_settings WHERE name = 'maintenance_work_mem')",
        [int(model_run_id)],
    )
    rows, current = cursor.fetchone()
    # The graph of a 1,024-d run took 2.7 kB a row (README, "Scaling similarity search"): the vector
    # in half precision plus ~650 bytes of neighbours; a quarter more for the build's own overhead.
    wanted = min(MAX_BUILD_MEMORY_BYTES, int(1.25 * rows * (2 * int(dimension) + 650)))
    if wanted <= current:
        return False
    scope = "LOCAL " if connection.in_atomic_block else ""
    cursor.execute(f"SET {scope}maintenance_work_mem = '{wanted // 1024}kB'")
    return True
