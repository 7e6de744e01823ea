"""Computing and storing embeddings: of clips (windows a model scored) and of sound events (boxes on a recording).

Everything that writes embeddings after the fact goes through here: the backfill command, and the
tasks that embed a job's merged detections and people's annotated boxes (embeddings.tasks). Jobs
store their own windows' embeddings as they run (inference.storage).

A sound event is embedded from whole model windows centred on it (embeddings.compute.event_span).
Where every one of those windows is a clip of the recording with an embedding of the run (a job's
merged detection at overlap 0 is exactly its windows), the stored vectors are averaged instead of
running the model again.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, QuerySet

from echoroo import audio
from echoroo.models import Clip, Dataset, ModelRun, Recording, SoundEvent, SoundEventPrediction
from embeddings.compute import embed_spans, event_span, mean_of_unit_vectors
from embeddings.models import SoundEventEmbedding
from embeddings.storage import store_embeddings
from embeddings.vectors import embeddings_of
from inference.runtimes import available_runtimes, runtime_class
from inference.runtimes.base import ModelRuntime

# Items read, embedded and stored at a time: memory stays bounded on a day-long recording.
ITEMS_PER_STORE = 512
# What a recording that cannot be read raises; the other recordings go on.
BAD_RECORDING = (audio.AudioError, OSError)


def embed_clips(
    runtime: ModelRuntime,
    model_run_id: int,
    recording: Recording,
    clips: list[tuple[int, float, float]],
    *,
    batch_size: int = 32,
    on_stored: Callable[[int], object] | None = None,
) -> int:
    """Compute and store the embeddings of (clip_id, start_s, end_s) of one recording; returns the rows added.

    Each clip's span is read at the model's rate the way a job reads its windows, so a clip gets
    the embedding a job with embeddings would have stored. Rows already there are kept.
    """
    path = recording.absolute_path
    added = 0
    for first in range(0, len(clips), ITEMS_PER_STORE):
        chunk = clips[first : first + ITEMS_PER_STORE]
        spans = [audio.load_segment(path, start_s, end_s, runtime.sample_rate) for _, start_s, end_s in chunk]
        vectors = embed_spans(runtime, spans, batch_size=batch_size)
        added += store_embeddings("clip", np.array([clip_id for clip_id, _, _ in chunk]), model_run_id, vectors)
        if on_stored is not None:
            on_stored(len(chunk))
    return added


def embed_sound_events(
    runtime: ModelRuntime,
    model_run_id: int,
    recording: Recording,
    events: list[tuple[int, float, float]],
    *,
    batch_size: int = 32,
    on_stored: Callable[[int], object] | None = None,
) -> int:
    """Compute and store the embeddings of (sound_event_id, start_s, end_s) of one recording; returns the rows added.

    An event moved or deleted meanwhile keeps no vector of its old box: only events whose span is
    still the one embedded are stored. Rows already there are kept.
    """
    added = 0
    for first in range(0, len(events), ITEMS_PER_STORE):
        chunk = events[first : first + ITEMS_PER_STORE]
        spans = [event_span(start_s, end_s, recording.duration, runtime.window_s) for _, start_s, end_s in chunk]
        vectors = _span_vectors(runtime, model_run_id, recording, spans, batch_size)
        added += _store_unmoved(model_run_id, chunk, np.stack([vectors[span] for span in spans]))
        if on_stored is not None:
            on_stored(len(chunk))
    return added


def _span_vectors(
    runtime: ModelRuntime, model_run_id: int, recording: Recording, spans: list[tuple[float, float]], batch_size: int
) -> dict[tuple[float, float], np.ndarray]:
    """The vector of each distinct span: from the stored clip embeddings where they cover it, else from the audio."""
    windows = {span: _windows(span, recording.duration, runtime.window_s) for span in set(spans)}
    stored = _stored_window_vectors(model_run_id, recording, {window for spans in windows.values() for window in spans})
    vectors = {
        span: mean_of_unit_vectors(np.stack([stored[window] for window in span_windows]))
        for span, span_windows in windows.items()
        if all(window in stored for window in span_windows)
    }
    to_compute = sorted(span for span in windows if span not in vectors)
    path = recording.absolute_path
    samples = [audio.load_segment(path, start_s, end_s, runtime.sample_rate) for start_s, end_s in to_compute]
    vectors.update(zip(to_compute, embed_spans(runtime, samples, batch_size=batch_size), strict=True))
    return vectors


def _windows(span: tuple[float, float], duration_s: float, window_s: float) -> list[tuple[float, float]]:
    """The span's back-to-back windows (start_s, end_s), cut as a job cuts its clips (ends clipped to the recording)."""
    start_s, end_s = span
    count = max(1, math.ceil((end_s - start_s) / window_s - 1e-9))
    starts = [start_s + i * window_s for i in range(count)]
    return [(start, min(start + window_s, duration_s)) for start in starts]


def _stored_window_vectors(
    model_run_id: int, recording: Recording, windows: set[tuple[float, float]]
) -> dict[tuple[float, float], np.ndarray]:
    """(start_s, end_s) -> the stored embedding of the recording's clip of exactly that span, where it has one."""
    clips = Clip.objects.filter(recording=recording, start_time__in=sorted({start for start, _ in windows}))
    clip_of_window = {
        (start, end): clip_id
        for clip_id, start, end in clips.values_list("id", "start_time", "end_time")
        if (start, end) in windows
    }
    if not clip_of_window:
        return {}
    batch = embeddings_of("clip", model_run_id, list(clip_of_window.values()))
    vector_of_clip = dict(zip(batch.ids.tolist(), batch.vectors.astype(np.float32), strict=True))
    return {window: vector_of_clip[clip] for window, clip in clip_of_window.items() if clip in vector_of_clip}


def _store_unmoved(model_run_id: int, events: list[tuple[int, float, float]], vectors: np.ndarray) -> int:
    """Store the vectors of the events still where they were when embedded.

    FOR SHARE holds off a move or a delete until the rows are in; a move that came first is seen
    here and its event left out (the move queues the new box's embedding).
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, start_time, end_time FROM echoroo_soundevent WHERE id = ANY(%s) FOR SHARE",
            [[event_id for event_id, _, _ in events]],
        )
        current = {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
        keep = [i for i, (event_id, start_s, end_s) in enumerate(events) if current.get(event_id) == (start_s, end_s)]
        ids = np.array([events[i][0] for i in keep], dtype=np.int64)
        return store_embeddings("sound_event", ids, model_run_id, vectors[keep])


def missing_sound_events(model_run_id: int, events: QuerySet | None = None) -> QuerySet:
    """Of these sound events (default all), those without an embedding of the model run."""
    events = SoundEvent.objects.all() if events is None else events
    embedded = SoundEventEmbedding.objects.filter(sound_event=OuterRef("pk"), model_run_id=model_run_id)
    return events.filter(~Exists(embedded))


def sound_events_of_run(model_run: ModelRun, dataset: Dataset | None = None) -> QuerySet:
    """The sound events a model run embeds: its own merged detections, and the boxes no model made (annotations)."""
    events = SoundEvent.objects.filter(
        Exists(SoundEventPrediction.objects.filter(sound_event=OuterRef("pk"), model_run=model_run))
        | ~Exists(SoundEventPrediction.objects.filter(sound_event=OuterRef("pk")))
    )
    return events.filter(recording__dataset=dataset) if dataset is not None else events


def embed_missing_sound_events(
    runtime: ModelRuntime,
    model_run_id: int,
    events: QuerySet,
    *,
    batch_size: int = 32,
    on_stored: Callable[[int], object] | None = None,
    on_failure: Callable[[Recording, Exception], object] | None = None,
) -> int:
    """Embed the events of this queryset that lack an embedding of the run, recording by recording; returns rows added.

    A recording that cannot be read is handed to `on_failure` and the others go on (without
    `on_failure`, its error is raised).
    """
    missing = missing_sound_events(model_run_id, events)
    recording_ids = list(missing.order_by("recording_id").values_list("recording_id", flat=True).distinct())
    added = 0
    for recording in Recording.objects.filter(pk__in=recording_ids).order_by("pk"):
        rows = list(
            missing.filter(recording=recording).order_by("start_time", "id").values_list("id", "start_time", "end_time")
        )
        try:
            added += embed_sound_events(
                runtime, model_run_id, recording, rows, batch_size=batch_size, on_stored=on_stored
            )
        except BAD_RECORDING as error:
            if on_failure is None:
                raise
            on_failure(recording, error)
    return added


def installed_embedding_runs() -> list[ModelRun]:
    """The model runs of the models installed here that embed: each runtime whose weights are here and has a run."""
    runs = []
    for name in available_runtimes():
        runtime = runtime_class(name)
        if runtime.unavailable_reason(settings) is not None:
            continue
        run = ModelRun.objects.filter(
            name=name, version=runtime.version, kind=ModelRun.Kind.MODEL, embedding_dimension__isnull=False
        ).first()
        if run is not None:
            runs.append(run)
    return runs
