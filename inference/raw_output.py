"""A model run's raw output in the database: written once per window (ClipOutput), read back for re-thresholding.

Each window the model scored is one row: the species tag ids of its labels with a logit at or
above the floor and their float32 logits, as arrays (empty where none reaches it). A
RecordingOutput row says that a whole recording at one window layout (model run, overlap) is
stored, down to which floor, and whether its embeddings are stored too.
"""

from __future__ import annotations

import numpy as np
from django.db import connection

from echoroo.audio import window_spans
from echoroo.models import SPECIES, RecordingOutput
from embeddings.models import ClipEmbedding
from embeddings.storage import copy_columns
from inference.selection import WindowOutputs


def array_literal(values) -> str:
    """An array of integers as one PostgreSQL literal ('{1,2,3}'), for a parameter cast to bigint[] or int[].

    psycopg quotes a list parameter value by value in Python (about 0.5 us each); one string is
    quoted at once.
    """
    return "{" + ",".join(map(str, np.asarray(values, dtype=np.int64).tolist())) + "}"


def species_tag_ids(cursor, names: list[str]) -> dict[str, int]:
    """Tag id of each species label name, creating the missing tags (only they are written)."""
    if not names:
        return {}
    cursor.execute("SELECT value, id FROM echoroo_tag WHERE key = %s AND value = ANY(%s)", [SPECIES, names])
    found = dict(cursor.fetchall())
    missing = [name for name in names if name not in found]
    if missing:
        cursor.execute(
            "INSERT INTO echoroo_tag (uuid, key, value) "
            "SELECT gen_random_uuid(), %s, v FROM unnest(%s::text[]) AS t(v) ON CONFLICT (key, value) DO NOTHING",
            [SPECIES, missing],
        )
        cursor.execute("SELECT value, id FROM echoroo_tag WHERE key = %s AND value = ANY(%s)", [SPECIES, missing])
        found.update(cursor.fetchall())
    return found


def write_outputs(
    cursor,
    *,
    recording_id: int,
    model_run_id: int,
    overlap: float,
    clip_ids: np.ndarray,
    outputs: WindowOutputs,
    floor_logit: float,
    tag_of_label: dict[int, int],
    embeddings: bool,
) -> int:
    """Store the windows' output at or above `floor_logit` (window i is clip_ids[i]); returns the rows written.

    A row already there is kept, unless this one is more complete (written at a lower floor, so a
    superset of the same values) or exact where it was rebuilt from scores (migration 0006): the
    output of a model on its audio never changes, it only grows.
    """
    kept = outputs.at_least(floor_logit)
    tag_ids = np.zeros(max(tag_of_label, default=-1) + 1, dtype=np.int32)
    tag_ids[list(tag_of_label)] = list(tag_of_label.values())
    # The entries go in by binary COPY: passed as list parameters, Python quoted each value (about
    # 1 us each, 8,000 a recording-hour), more than the server took to store them.
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS clip_output_staging (clip_id bigint, tag integer, logit real, n integer) "
        "ON COMMIT DELETE ROWS"
    )
    with cursor.copy("COPY clip_output_staging FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.write(
            copy_columns(
                np.asarray(clip_ids, dtype=np.int64)[kept.window_of_entries()],
                tag_ids[kept.labels],
                kept.logits.astype(np.float32),
                np.arange(len(kept.labels), dtype=np.int32),
            )
        )
    # A row for every window, empty where no label reaches the floor: the rows say which windows
    # the model has scored (what backfilling embeddings and a read of the output rely on).
    cursor.execute(
        "INSERT INTO echoroo_clipoutput (clip_id, model_run_id, tags, logits) "
        "SELECT w.c, %s, COALESCE(array_agg(e.tag ORDER BY e.n) FILTER (WHERE e.n IS NOT NULL), '{}'),"
        " COALESCE(array_agg(e.logit ORDER BY e.n) FILTER (WHERE e.n IS NOT NULL), '{}') "
        "FROM unnest(%s::bigint[]) AS w(c) LEFT JOIN clip_output_staging e ON e.clip_id = w.c "
        "GROUP BY w.c "
        "ON CONFLICT (clip_id, model_run_id) DO UPDATE SET tags = excluded.tags, logits = excluded.logits "
        "WHERE cardinality(excluded.tags) >= cardinality(echoroo_clipoutput.tags) "
        "AND (excluded.tags, excluded.logits) IS DISTINCT FROM (echoroo_clipoutput.tags, echoroo_clipoutput.logits)",
        [model_run_id, array_literal(clip_ids)],
    )
    written = cursor.rowcount
    cursor.execute("TRUNCATE clip_output_staging")  # the caller's transaction may store another recording
    cursor.execute(
        "INSERT INTO echoroo_recordingoutput "
        "(recording_id, model_run_id, overlap, windows, outputs, floor_logit, embeddings, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, now()) "
        "ON CONFLICT (recording_id, model_run_id, overlap) DO UPDATE SET "
        " windows = excluded.windows,"
        " outputs = GREATEST(echoroo_recordingoutput.outputs, excluded.outputs),"
        " floor_logit = LEAST(echoroo_recordingoutput.floor_logit, excluded.floor_logit),"
        " embeddings = echoroo_recordingoutput.embeddings OR excluded.embeddings",
        [
            recording_id,
            model_run_id,
            float(overlap),
            outputs.windows,
            outputs.windows,
            float(floor_logit),
            bool(embeddings),
        ],
    )
    return written


def reusable_output(
    recording, model_run_id: int, *, overlap: float, min_logit: float, needs_embeddings: bool
) -> RecordingOutput | None:
    """The stored output a job can select from instead of running the model, if there is one."""
    stored = RecordingOutput.objects.filter(recording=recording, model_run_id=model_run_id, overlap=overlap).first()
    if stored is None or stored.floor_logit > min_logit or (needs_embeddings and not stored.embeddings):
        return None
    if needs_embeddings and ClipEmbedding.objects.filter(
        clip__recording=recording, model_run_id=model_run_id
    ).count() < (stored.windows):
        return None  # embeddings deleted since: the model runs again and stores them
    stored.recording = recording
    return stored


def read_outputs(
    stored: RecordingOutput, *, window_s: float, sample_rate: int, label_index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, WindowOutputs]:
    """(starts, ends, outputs) of every window of the stored layout, in time order; labels as model indices.

    Raises LookupError when the stored rows do not cover the layout as the RecordingOutput says
    (the recording's duration changed, rows deleted by hand): the caller then runs the model.
    """
    recording = stored.recording
    spans = window_spans(recording.duration, window_s, stored.overlap, sample_rate=sample_rate)
    if len(spans) != stored.windows:
        raise LookupError(f"{recording.path}: {len(spans)} windows now, {stored.windows} when the output was stored")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.start_time, c.end_time, o.tags, o.logits FROM echoroo_clipoutput o "
            "JOIN echoroo_clip c ON c.id = o.clip_id WHERE c.recording_id = %s AND o.model_run_id = %s",
            [recording.pk, stored.model_run_id],
        )
        by_span = {(start, end): (tags, logits) for start, end, tags, logits in cursor.fetchall()}
        found = sum(span in by_span for span in spans)
        if found < stored.outputs:
            raise LookupError(f"{recording.path}: {found} windows with stored output, {stored.outputs} when stored")
        tag_ids = sorted({tag for tags, _ in by_span.values() for tag in tags})
        cursor.execute("SELECT id, value FROM echoroo_tag WHERE id = ANY(%s)", [tag_ids])
        name_of_tag = dict(cursor.fetchall())
    unknown = {name for name in name_of_tag.values() if name not in label_index}
    if unknown:
        raise LookupError(f"stored labels the model does not have: {', '.join(sorted(unknown)[:5])}")
    index_of_tag = {tag: label_index[name] for tag, name in name_of_tag.items()}
    labels, logits = [], []
    empty = (np.zeros(0, np.int64), np.zeros(0, np.float32))
    for span in spans:
        row = by_span.get(span)
        if row is None:
            labels.append(empty[0])
            logits.append(empty[1])
        else:
            labels.append(np.array([index_of_tag[tag] for tag in row[0]], dtype=np.int64))
            logits.append(np.array(row[1], dtype=np.float32))
    starts = np.array([start for start, _ in spans], dtype=np.float64)
    ends = np.array([end for _, end in spans], dtype=np.float64)
    return starts, ends, WindowOutputs.from_lists(labels, logits)
