"""Similarity search: the clips and sound events nearest a vector, a clip, a sound event or an uploaded snippet.

One model's embedding space at a time: clips (the model's windows) and sound events (boxes on a
recording, embedded by the same model) share it, so either may be searched by either, or both at
once (`target`), each through its own per-run HNSW index.

Errors are SearchError, naming the request's field at fault ("embedding", "clip_uuid",
"sound_event_uuid", "target", "model_name", "limit", "min_similarity", "file"), so the API turns
them into 400s as they are.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Exists, F, OuterRef, QuerySet

from echoroo.models import SPECIES, Clip, Dataset, ModelRun, Recording, Site, SoundEvent
from embeddings.models import ClipEmbedding, SoundEventEmbedding
from inference.runtimes import DEFAULT_RUNTIME, available_runtimes
from search import uploads
from search.errors import SearchError
from search.queries import MAX_EF_SEARCH, Filters, nearest_clips, nearest_sound_events

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
# The seed's default (seed-design.md §5.3).
DEFAULT_MIN_SIMILARITY = 0.7
ONE_QUERY = "give one of embedding, clip_uuid or sound_event_uuid"
# What a search returns: target -> the kinds of item searched.
# Sound events read per result wanted: room for the detections of other species on the same spans.
SAME_SPAN_ROOM = 4
TARGETS = {"clips": ("clip",), "sound_events": ("sound_event",), "both": ("clip", "sound_event")}
DEFAULT_TARGET = "clips"
# kind -> the request field naming a query item of that kind, and the item's name in messages.
QUERY_FIELDS = {"clip": ("clip_uuid", "clip"), "sound_event": ("sound_event_uuid", "sound event")}
HOW_TO_EMBED = {
    "clip": "run a job with store_embeddings on its recording, or `manage.py backfill_embeddings`",
    "sound_event": "the workers embed an annotated box when it is saved and a job's merged detections when the job "
    "ends; `manage.py backfill_embeddings` embeds those still missing",
}
# The largest magnitude a halfvec holds.
HALF_MAX = 65504.0


@dataclass(frozen=True)
class SearchResult:
    """One clip found: the clip (its recording, dataset and site loaded), how similar, in which model run."""

    clip: Clip
    similarity: float
    model_run: ModelRun
    target = "clip"

    @property
    def recording(self) -> Recording:
        return self.clip.recording


@dataclass(frozen=True)
class SoundEventResult:
    """One sound event found: its box (its recording, dataset and site loaded), whose it is, how similar, in which run.

    `annotation_uuid` is the annotation whose box it is (None: a job's detection); `species` the
    labels of the annotation's species tags, or of the detection's tag, best scored first.
    """

    sound_event: SoundEvent
    similarity: float
    model_run: ModelRun
    annotation_uuid: uuid.UUID | None
    species: tuple[str, ...]
    target = "sound_event"

    @property
    def recording(self) -> Recording:
        return self.sound_event.recording

    @property
    def kind(self) -> str:
        return "annotation" if self.annotation_uuid is not None else "detection"


def search_similar(
    *,
    model_run: ModelRun | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    vector: Any = None,
    clip: Clip | None = None,
    sound_event: SoundEvent | None = None,
    target: str = DEFAULT_TARGET,
    limit: int = DEFAULT_LIMIT,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
    dataset: Dataset | None = None,
    site: Site | None = None,
    recording: Recording | None = None,
    recorded_after: datetime | None = None,
    recorded_before: datetime | None = None,
    exclude_own_recording: bool | None = None,
    ef_search: int | None = None,
) -> list[SearchResult | SoundEventResult]:
    """The clips, sound events or both (`target`) nearest a vector, a clip or a sound event, most similar first.

    The model run is given, or the latest one of `model_name` (and `model_version`, if given)
    that has embeddings of the target (for a clip or a sound event: that has its embedding). By a
    clip or a sound event, `model_name` may be left out when it has embeddings of one model run
    only. The query item itself is never returned; `exclude_own_recording` (by an item; the default
    unless `recording` is given) leaves out everything of its recording. Similarity is 1 - cosine
    distance; results below `min_similarity` are left out. With target "both", clips and sound
    events are merged, and `limit` applies to the merged list.
    """
    errors: dict[str, str] = {}
    asked = {"embedding": vector, "clip_uuid": clip, "sound_event_uuid": sound_event}
    given = [field for field, value in asked.items() if value is not None]
    if len(given) != 1:
        errors.update(dict.fromkeys(given or ["embedding"], ONE_QUERY))
    if target not in TARGETS:
        errors["target"] = f"must be one of {', '.join(TARGETS)}"
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        errors["limit"] = f"must be a whole number from 1 to {MAX_LIMIT}"
    if not _finite_number(min_similarity) or not -1 <= min_similarity <= 1:
        errors["min_similarity"] = "must be a number from -1 to 1 (the cosine similarity)"
    if ef_search is not None and not 1 <= ef_search <= MAX_EF_SEARCH:
        errors["ef_search"] = f"must be from 1 to {MAX_EF_SEARCH}"
    if errors:
        raise SearchError(errors)

    item = clip if clip is not None else sound_event
    if item is not None:
        kind = "clip" if clip is not None else "sound_event"
        model_run, query = _item_query(kind, item, model_run, model_name, model_version)
        dimension = len(query)
    else:
        if model_run is None:
            model_run = model_run_with_embeddings(model_name, model_version, target=target)
        dimension = embedding_dimension(model_run)
        query = _checked_vector(vector, dimension)

    if exclude_own_recording is None:
        exclude_own_recording = recording is None
    filters = Filters(
        dataset_id=dataset.pk if dataset else None,
        site_id=site.pk if site else None,
        recording_id=recording.pk if recording else None,
        recorded_after=recorded_after,
        recorded_before=recorded_before,
        exclude_recording_id=item.recording_id if item is not None and exclude_own_recording else None,
        exclude_clip_id=clip.pk if clip is not None else None,
        exclude_sound_event_id=sound_event.pk if sound_event is not None else None,
    )
    max_distance = 1.0 - min_similarity
    found: list[tuple[float, str, int]] = []
    for kind in TARGETS[target]:
        nearest = nearest_clips if kind == "clip" else nearest_sound_events
        # A job writes one detection a species on the same span: some of the nearest events are the same
        # sound, collapsed below, so more are read to still fill `limit`.
        wanted = limit if kind == "clip" else min(MAX_LIMIT, limit * SAME_SPAN_ROOM)
        rows = nearest(model_run.pk, dimension, query, filters, limit=wanted, ef_search=ef_search)
        found += [(distance, kind, item_id) for item_id, distance in rows if distance <= max_distance]
    # Most similar first across both kinds; ties in a fixed order (clips first, then by id).
    found.sort()
    clips = _clips([item_id for _, kind, item_id in found if kind == "clip"])
    events = sound_event_details([item_id for _, kind, item_id in found if kind == "sound_event"])
    return _collapsed(found, clips, events, model_run, limit)


def _collapsed(found, clips: dict, events: dict, model_run: ModelRun, limit: int) -> list:
    """The results, at most `limit`: a job's detections of several species on one span are one result listing
    their species (the same sound, the same vector)."""
    results: list[SearchResult | SoundEventResult] = []
    detection_at: dict[tuple, int] = {}  # a detection's span -> its result's index
    for distance, kind, item_id in found:
        if kind == "clip" and item_id in clips:  # (not a clip deleted since the search)
            if len(results) < limit:
                results.append(SearchResult(clip=clips[item_id], similarity=1.0 - distance, model_run=model_run))
        elif kind == "sound_event" and item_id in events:
            event, annotation_uuid, species = events[item_id]
            span = (event.recording_id, event.start_time, event.end_time)
            if annotation_uuid is None and span in detection_at:
                index = detection_at[span]
                merged = tuple(dict.fromkeys(results[index].species + species))
                results[index] = replace(results[index], species=merged)
                continue
            if len(results) >= limit:
                continue
            if annotation_uuid is None:
                detection_at[span] = len(results)
            results.append(
                SoundEventResult(
                    sound_event=event,
                    similarity=1.0 - distance,
                    model_run=model_run,
                    annotation_uuid=annotation_uuid,
                    species=species,
                )
            )
    return results


def _clips(clip_ids: list[int]) -> dict[int, Clip]:
    if not clip_ids:
        return {}
    return Clip.objects.select_related("recording__dataset", "recording__site").in_bulk(clip_ids)


def sound_event_details(sound_event_ids: list[int]) -> dict[int, tuple[SoundEvent, uuid.UUID | None, tuple[str, ...]]]:
    """Each sound event (recording, dataset and site loaded) with its annotation's uuid and its species (2 queries).

    Species: the labels of the annotation's species tags (in the order they were added) or, for a
    job's detection, of its prediction's tag (best scored first).
    """
    if not sound_event_ids:
        return {}
    events = (
        SoundEvent.objects.select_related("recording__dataset", "recording__site")
        .annotate(annotation_uuid=F("annotation__uuid"))
        .in_bulk(sound_event_ids)
    )
    species: dict[tuple[int, str], list[str]] = {}
    with connection.cursor() as cursor:
        # Raw SQL: under load each ORM query cost a few ms, more than the search itself.
        cursor.execute(SPECIES_OF_SOUND_EVENTS, [list(sound_event_ids), list(sound_event_ids), SPECIES])
        for sound_event_id, source, label in cursor.fetchall():
            labels = species.setdefault((sound_event_id, source), [])
            if label not in labels:
                labels.append(label)
    details = {}
    for pk, event in events.items():
        source = "annotation" if event.annotation_uuid is not None else "detection"
        details[pk] = (event, event.annotation_uuid, tuple(species.get((pk, source), ())))
    return details


# The species of sound events: their annotation's species tags and their detection's, each in its order. The
# tag rows are collected from the events' ids first (MATERIALIZED): joined at once with `key = 'species'`,
# the planner may start from the species tags and read every prediction of each (7 ms at 5,000 events).
SPECIES_OF_SOUND_EVENTS = (
    "WITH picked AS MATERIALIZED ("
    " SELECT a.sound_event_id, 'annotation' AS source, at.tag_id, at.id::float8 AS rank"
    " FROM annotations_soundeventannotation a"
    " JOIN annotations_soundeventannotationtag at ON at.annotation_id = a.id"
    " WHERE a.sound_event_id = ANY(%s::bigint[])"
    " UNION ALL"
    " SELECT p.sound_event_id, 'detection', pt.tag_id, -pt.score"
    " FROM echoroo_soundeventprediction p"
    " JOIN echoroo_soundeventpredictiontag pt ON pt.sound_event_prediction_id = p.id"
    " WHERE p.sound_event_id = ANY(%s::bigint[])"
    ") SELECT picked.sound_event_id, picked.source, t.value FROM picked JOIN echoroo_tag t ON t.id = picked.tag_id"
    " WHERE t.key = %s ORDER BY picked.sound_event_id, picked.source, picked.rank, t.value"
)


def search_by_audio(
    upload, *, model_name: str, model_version: str | None = None, **options: Any
) -> list[SearchResult | SoundEventResult]:
    """The clips or sound events nearest an uploaded snippet, embedded with the model (see search.uploads)."""
    uploads.check_size(upload)
    target = options.get("target", DEFAULT_TARGET)
    model_run = model_run_with_embeddings(*uploads.installed_model(model_name, model_version), target=target)
    vector = uploads.embed_upload(upload, model_run.name)
    return search_similar(model_run=model_run, vector=vector, **options)


def model_run_with_embeddings(
    model_name: str | None, model_version: str | None = None, *, target: str = DEFAULT_TARGET
) -> ModelRun:
    """The latest ModelRun of a model (and version) with embeddings of the target, or a SearchError saying why not."""
    if not model_name:
        raise SearchError({"model_name": f"name the model whose embeddings to search (e.g. {DEFAULT_RUNTIME})"})
    runs = ModelRun.objects.filter(name=model_name)
    if _pinned(model_version):
        runs = runs.filter(version=model_version)
    found = with_embeddings(runs.order_by("-created_at", "-pk"), TARGETS.get(target, ("clip",)))
    if found:
        return found[0]
    if runs.exists() or model_name in available_runtimes():
        version = f" {model_version}" if _pinned(model_version) else ""
        what = {"clips": "", "sound_events": " of sound events", "both": ""}.get(target, "")
        raise SearchError(
            {
                "model_name": f"{model_name}{version} has no embeddings{what} yet: run a job with store_embeddings "
                f"on, or `manage.py backfill_embeddings --model {model_name}`"
            }
        )
    raise SearchError({"model_name": f"no model run is named {model_name!r}{_version_text(model_version)}; {_known()}"})


def embedding_dimension(model_run: ModelRun) -> int:
    """The run's dimension: as recorded on the run, else as stored (of a clip or a sound event)."""
    if model_run.embedding_dimension:
        return model_run.embedding_dimension
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce("
            " (SELECT vector_dims(embedding) FROM embeddings_clipembedding WHERE model_run_id = %s LIMIT 1),"
            " (SELECT vector_dims(embedding) FROM embeddings_soundeventembedding WHERE model_run_id = %s LIMIT 1))",
            [model_run.pk, model_run.pk],
        )
        row = cursor.fetchone()
    if row is not None and row[0] is None:
        row = None
    if row is None:
        raise SearchError({"model_name": f"{model_run} has no embeddings yet"})
    return row[0]


def clip_embeddings(clip: Clip) -> list[ClipEmbedding]:
    """A clip's embeddings, one per model run, newest run first."""
    return item_embeddings("clip", clip)


def item_embeddings(kind: str, item: Clip | SoundEvent) -> list[ClipEmbedding | SoundEventEmbedding]:
    """A clip's or a sound event's embeddings, one per model run, newest run first."""
    model, field = (ClipEmbedding, "clip") if kind == "clip" else (SoundEventEmbedding, "sound_event")
    return list(
        model.objects.filter(**{field: item}).select_related("model_run").order_by("-model_run__created_at", "-pk")
    )


def _item_query(
    kind: str, item: Clip | SoundEvent, model_run: ModelRun | None, model_name: str | None, model_version: str | None
) -> tuple[ModelRun, np.ndarray]:
    """The model run to search by a clip or a sound event, and the item's vector in it."""
    field, noun = QUERY_FIELDS[kind]
    embeddings = item_embeddings(kind, item)
    if model_run is not None:
        embeddings = [e for e in embeddings if e.model_run_id == model_run.pk]
    elif model_name:
        embeddings = [e for e in embeddings if e.model_run.name == model_name]
        if _pinned(model_version):
            embeddings = [e for e in embeddings if e.model_run.version == model_version]
        if not embeddings:
            model_run_with_embeddings(model_name, model_version, target="both")  # an unknown model is named as such
    elif len(embeddings) > 1:
        runs = ", ".join(str(e.model_run) for e in embeddings)
        raise SearchError({"model_name": f"the {noun} has embeddings of several model runs ({runs}): name the model"})
    if not embeddings:
        which = str(model_run) if model_run else (model_name or "any model") + _version_text(model_version)
        raise SearchError({field: f"{noun} {item.uuid} has no embedding of {which}: {HOW_TO_EMBED[kind]}"})
    return embeddings[0].model_run, np.asarray(embeddings[0].embedding, dtype=np.float32)


def _checked_vector(vector: Any, dimension: int) -> np.ndarray:
    try:
        query = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError):
        raise SearchError({"embedding": "must be a list of numbers"}) from None
    if query.ndim != 1:
        raise SearchError({"embedding": "must be a flat list of numbers"})
    if len(query) != dimension:
        raise SearchError(
            {"embedding": f"has {len(query)} values; this model run's embeddings have {dimension} dimensions"}
        )
    if not np.isfinite(query).all():
        raise SearchError({"embedding": "must hold finite numbers only (no NaN or infinity)"})
    if np.abs(query).max() > HALF_MAX:
        raise SearchError({"embedding": f"values must lie within ±{HALF_MAX:g} (half precision)"})
    if not query.any():
        raise SearchError({"embedding": "is all zeros: the cosine similarity to it is undefined"})
    return query.astype(np.float32)


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _pinned(model_version: str | None) -> bool:
    """Whether a version is asked for ("latest", or none, asks for the newest run with embeddings)."""
    return model_version not in (None, "", "latest")


def _version_text(model_version: str | None) -> str:
    return f" at version {model_version!r}" if _pinned(model_version) else ""


def _known() -> str:
    runs = with_embeddings(ModelRun.objects.all(), ("clip", "sound_event"))
    names = sorted({f"{run.name} {run.version}" for run in runs})
    return f"model runs with embeddings: {', '.join(names)}" if names else "no model run has embeddings yet"


def with_embeddings(runs: QuerySet[ModelRun], kinds: tuple[str, ...]) -> list[ModelRun]:
    """These model runs (in their order) that have embeddings of any of these kinds ("clip", "sound_event").

    One query, the EXISTS tests in its SELECT list: in WHERE, PostgreSQL turns them into a semi-join
    that read every embedding of the table (a hash of 40,000 rows: 5 ms; at 200,000, 30 ms), where
    a probe of each run's first row takes microseconds.
    """
    models = {"clip": ClipEmbedding, "sound_event": SoundEventEmbedding}
    probes = {f"has_{kind}": Exists(models[kind].objects.filter(model_run=OuterRef("pk"))) for kind in kinds}
    return [run for run in runs.annotate(**probes) if any(getattr(run, name) for name in probes)]
