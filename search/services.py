"""Similarity search: the clips nearest a vector, a clip, or an uploaded snippet, in one model's embedding space.

Errors are SearchError, naming the request's field at fault ("embedding", "clip_uuid", "model_name",
"limit", "min_similarity", "file"), so the API turns them into 400s as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Exists, OuterRef

from echoroo.models import Clip, Dataset, ModelRun, Recording, Site
from embeddings.models import ClipEmbedding
from inference.runtimes import DEFAULT_RUNTIME, available_runtimes
from search import uploads
from search.errors import SearchError
from search.queries import MAX_EF_SEARCH, Filters, nearest_clips

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
# The seed's default (seed-design.md §5.3).
DEFAULT_MIN_SIMILARITY = 0.7
ONE_QUERY = "give an embedding or a clip_uuid, not both and not neither"
# The largest magnitude a halfvec holds.
HALF_MAX = 65504.0


@dataclass(frozen=True)
class SearchResult:
    """One clip found: the clip (its recording, dataset and site loaded), how similar, in which model run."""

    clip: Clip
    similarity: float
    model_run: ModelRun

    @property
    def recording(self) -> Recording:
        return self.clip.recording


def search_similar(
    *,
    model_run: ModelRun | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    vector: Any = None,
    clip: Clip | None = None,
    limit: int = DEFAULT_LIMIT,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
    dataset: Dataset | None = None,
    site: Site | None = None,
    recording: Recording | None = None,
    recorded_after: datetime | None = None,
    recorded_before: datetime | None = None,
    exclude_own_recording: bool | None = None,
    ef_search: int | None = None,
) -> list[SearchResult]:
    """The clips nearest a vector or a clip (never the clip itself), most similar first.

    The model run is given, or the latest one of `model_name` (and `model_version`, if given)
    that has embeddings (for a clip: that has the clip's). By a clip, `model_name` may be left out
    when the clip has embeddings of one model run only. `exclude_own_recording` (by a clip; the
    default unless `recording` is given) leaves out the clips of the query clip's recording.
    Similarity is 1 - cosine distance; results below `min_similarity` are left out.
    """
    errors: dict[str, str] = {}
    if (vector is None) == (clip is None):
        errors["embedding"] = ONE_QUERY
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        errors["limit"] = f"must be a whole number from 1 to {MAX_LIMIT}"
    if not _finite_number(min_similarity) or not -1 <= min_similarity <= 1:
        errors["min_similarity"] = "must be a number from -1 to 1 (the cosine similarity)"
    if ef_search is not None and not 1 <= ef_search <= MAX_EF_SEARCH:
        errors["ef_search"] = f"must be from 1 to {MAX_EF_SEARCH}"
    if errors:
        raise SearchError(errors)

    if clip is not None:
        model_run, query = _clip_query(clip, model_run, model_name, model_version)
        dimension = len(query)
    else:
        if model_run is None:
            model_run = model_run_with_embeddings(model_name, model_version)
        dimension = embedding_dimension(model_run)
        query = _checked_vector(vector, dimension)

    if exclude_own_recording is None:
        exclude_own_recording = recording is None
    own_recording = clip is not None and exclude_own_recording
    filters = Filters(
        dataset_id=dataset.pk if dataset else None,
        site_id=site.pk if site else None,
        recording_id=recording.pk if recording else None,
        recorded_after=recorded_after,
        recorded_before=recorded_before,
        exclude_recording_id=clip.recording_id if own_recording else None,
        exclude_clip_id=clip.pk if clip is not None else None,
    )
    nearest = nearest_clips(model_run.pk, dimension, query, filters, limit=limit, ef_search=ef_search)
    max_distance = 1.0 - min_similarity
    nearest = [(clip_id, distance) for clip_id, distance in nearest if distance <= max_distance]
    clips = Clip.objects.select_related("recording__dataset", "recording__site").in_bulk(
        [clip_id for clip_id, _ in nearest]
    )
    return [
        SearchResult(clip=clips[clip_id], similarity=1.0 - distance, model_run=model_run)
        for clip_id, distance in nearest
        if clip_id in clips  # a clip deleted since the search
    ]


def search_by_audio(upload, *, model_name: str, model_version: str | None = None, **options: Any) -> list[SearchResult]:
    """The clips nearest an uploaded snippet, embedded here with the model (see search.uploads)."""
    uploads.check_size(upload)
    model_run = model_run_with_embeddings(*uploads.installed_model(model_name, model_version))
    vector = uploads.embed_upload(upload, uploads.load_model(model_run.name))
    return search_similar(model_run=model_run, vector=vector, **options)


def model_run_with_embeddings(model_name: str | None, model_version: str | None = None) -> ModelRun:
    """The latest ModelRun of a model (and version) that has clip embeddings, or a SearchError saying why not."""
    if not model_name:
        raise SearchError({"model_name": f"name the model whose embeddings to search (e.g. {DEFAULT_RUNTIME})"})
    runs = ModelRun.objects.filter(name=model_name)
    if _pinned(model_version):
        runs = runs.filter(version=model_version)
    model_run = runs.filter(_has_embeddings()).order_by("-created_at", "-pk").first()
    if model_run is not None:
        return model_run
    if runs.exists() or model_name in available_runtimes():
        version = f" {model_version}" if _pinned(model_version) else ""
        raise SearchError(
            {
                "model_name": f"{model_name}{version} has no embeddings yet: run a job with store_embeddings on, "
                f"or `manage.py backfill_embeddings --model {model_name}`"
            }
        )
    raise SearchError({"model_name": f"no model run is named {model_name!r}{_version_text(model_version)}; {_known()}"})


def embedding_dimension(model_run: ModelRun) -> int:
    """The run's dimension: as recorded on the run, else as stored."""
    if model_run.embedding_dimension:
        return model_run.embedding_dimension
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT vector_dims(embedding) FROM embeddings_clipembedding WHERE model_run_id = %s LIMIT 1",
            [model_run.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise SearchError({"model_name": f"{model_run} has no embeddings yet"})
    return row[0]


def clip_embeddings(clip: Clip) -> list[ClipEmbedding]:
    """A clip's embeddings, one per model run, newest run first."""
    return list(
        ClipEmbedding.objects.filter(clip=clip).select_related("model_run").order_by("-model_run__created_at", "-pk")
    )


def _clip_query(
    clip: Clip, model_run: ModelRun | None, model_name: str | None, model_version: str | None
) -> tuple[ModelRun, np.ndarray]:
    """The model run to search by a clip, and the clip's vector in it."""
    embeddings = clip_embeddings(clip)
    if model_run is not None:
        embeddings = [e for e in embeddings if e.model_run_id == model_run.pk]
    elif model_name:
        embeddings = [e for e in embeddings if e.model_run.name == model_name]
        if _pinned(model_version):
            embeddings = [e for e in embeddings if e.model_run.version == model_version]
        if not embeddings:
            model_run_with_embeddings(model_name, model_version)  # an unknown model is named as such
    elif len(embeddings) > 1:
        runs = ", ".join(str(e.model_run) for e in embeddings)
        raise SearchError({"model_name": f"the clip has embeddings of several model runs ({runs}): name the model"})
    if not embeddings:
        which = str(model_run) if model_run else (model_name or "any model") + _version_text(model_version)
        raise SearchError(
            {
                "clip_uuid": f"clip {clip.uuid} has no embedding of {which}: run a job with store_embeddings "
                "on its recording, or `manage.py backfill_embeddings`"
            }
        )
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
    runs = ModelRun.objects.filter(_has_embeddings())
    names = sorted({f"{run.name} {run.version}" for run in runs})
    return f"model runs with embeddings: {', '.join(names)}" if names else "no model run has embeddings yet"


def _has_embeddings() -> Exists:
    return Exists(ClipEmbedding.objects.filter(model_run=OuterRef("pk")))
