"""Computing and storing embeddings: of clips (windows a model scored) and of sound events (boxes on a recording).

Everything that writes embeddings goes through here: the backfill command, and the tasks that
embed a job's detections and people's annotated boxes (embeddings.tasks). Jobs store their
windows' embeddings as they run (inference.storage); this embeds what they did not.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from echoroo import audio
from echoroo.models import Recording
from embeddings.compute import embed_spans
from embeddings.storage import store_embeddings
from inference.runtimes.base import ModelRuntime

# Items read, embedded and stored at a time: memory stays bounded on a day-long recording.
ITEMS_PER_STORE = 512


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
