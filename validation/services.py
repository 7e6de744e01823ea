"""Review, calibrate and threshold: what the API, the pages and the commands call."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

import numpy as np
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery

from echoroo.errors import DomainError
from echoroo.models import SPECIES, Clip, ClipPredictionTag, Tag
from inference.models import InferenceJob
from validation.calibration import BOOTSTRAP_ROUNDS, Calibration, calibrate, judged
from validation.models import SpeciesThreshold, ThresholdSet, Verdict

NEIGHBOURS = 12


class ValidationError(DomainError):
    """Bad input: `errors` maps each field to what is wrong with it."""


def species_tag(name: str, *, field: str = "species", job: InferenceJob | None = None) -> Tag:
    """The species tag named by a full label ("Hylocichla mustelina_Wood Thrush") or a scientific name."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({field: "give a species: its scientific name or the model's full label"})
    tags = Tag.objects.filter(key=SPECIES)
    found = list(tags.filter(Q(value=name) | Q(value__startswith=f"{name}_")).order_by("value"))
    if job is not None and len(found) > 1:
        in_job = set(
            ClipPredictionTag.objects.filter(clip_prediction__job=job, tag__in=found).values_list("tag_id", flat=True)
        )
        found = [tag for tag in found if tag.pk in in_job] or found
    if len(found) > 1 and (exact := [tag for tag in found if tag.value == name]):
        found = exact  # a full label, or a bare class name (Perch) beside a BirdNET label of it
    if len(found) == 1:
        return found[0]
    if not found:
        raise ValidationError({field: f"no species {name!r} has been detected yet"})
    raise ValidationError({field: f"{name!r} names several labels: {', '.join(t.value for t in found[:5])}"})


def record_verdict(
    *, clip: Clip, species: Tag, verdict: str, by, other_species: Tag | None = None, like_clip: Clip | None = None
) -> Verdict:
    """Store (or replace) `by`'s verdict on a clip for a species."""
    if verdict not in Verdict.Value.values:
        raise ValidationError({"verdict": f"must be one of {', '.join(Verdict.Value.values)}, got {verdict!r}"})
    if verdict == Verdict.Value.OTHER and other_species is None:
        raise ValidationError({"other_species": 'a verdict "other" names the species it is instead'})
    if verdict != Verdict.Value.OTHER:
        other_species = None
    found, _ = Verdict.objects.update_or_create(
        clip=clip,
        species=species,
        reviewer=by,
        defaults={
            "verdict": verdict,
            "other_species": other_species,
            "bulk": like_clip is not None,
            "like_clip": like_clip,
        },
    )
    return found


def record_verdicts_like(
    *, like_clip: Clip, clips: Iterable[Clip], species: Tag, verdict: str, by, other_species: Tag | None = None
) -> list[Verdict]:
    """The same verdict on several clips at once (verify by similarity): each its own verdict, marked as bulk."""
    with transaction.atomic():
        return [
            record_verdict(
                clip=clip, species=species, verdict=verdict, by=by, other_species=other_species, like_clip=like_clip
            )
            for clip in clips
            if clip.pk != like_clip.pk
        ]


def similar_detections(job: InferenceJob, clip: Clip, species: Tag, *, limit: int = NEIGHBOURS, by=None) -> list[dict]:
    """The job's detections of `species` nearest to `clip` in the model's embedding space (cosine), closest first.

    Clips `by` has already judged for the species are left out. Exact: the candidates are one
    species' detections in one job, a set small enough to rank whole.
    """
    dimension = int(job.model_run.embedding_dimension)
    not_judged = (
        " AND p.clip_id NOT IN (SELECT clip_id FROM validation_verdict WHERE species_id = %(tag)s"
        " AND reviewer_id = %(reviewer)s)"
        if by is not None
        else ""
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH query AS (SELECT embedding::halfvec({dimension}) AS v FROM embeddings_clipembedding"
            "  WHERE clip_id = %(clip)s AND model_run_id = %(run)s)"
            " SELECT c.uuid, c.id, r.uuid, r.path, c.start_time, c.end_time, t.score,"
            f"  1 - (e.embedding::halfvec({dimension}) <=> (SELECT v FROM query)) AS similarity"
            " FROM echoroo_clippredictiontag t"
            " JOIN echoroo_clipprediction p ON p.id = t.clip_prediction_id"
            " JOIN embeddings_clipembedding e ON e.clip_id = p.clip_id AND e.model_run_id = %(run)s"
            " JOIN echoroo_clip c ON c.id = p.clip_id JOIN echoroo_recording r ON r.id = c.recording_id"
            " WHERE p.job_id = %(job)s AND t.tag_id = %(tag)s AND p.clip_id <> %(clip)s"
            f"{not_judged} AND EXISTS (SELECT 1 FROM query)"
            f" ORDER BY e.embedding::halfvec({dimension}) <=> (SELECT v FROM query) LIMIT %(limit)s",
            {
                "clip": clip.pk,
                "run": job.model_run_id,
                "job": job.pk,
                "tag": species.pk,
                "reviewer": getattr(by, "pk", None),
                "limit": limit,
            },
        )
        rows = cursor.fetchall()
    return [
        {
            "clip": str(clip_uuid),
            "clip_id": clip_id,
            "recording": str(recording_uuid),
            "recording_path": path,
            "start_time": start,
            "end_time": end,
            "score": score,
            "similarity": similarity,
        }
        for clip_uuid, clip_id, recording_uuid, path, start, end, score, similarity in rows
    ]


def job_verdicts(job: InferenceJob, species: Tag) -> QuerySet:
    """Verdicts on the job's detections of `species` (any reviewer)."""
    detected = ClipPredictionTag.objects.filter(clip_prediction__job=job, tag=species).values(
        "clip_prediction__clip_id"
    )
    return Verdict.objects.filter(species=species, clip_id__in=detected)


def calibration_inputs(job: InferenceJob, species: Tag) -> tuple[np.ndarray, np.ndarray]:
    """(scores, correct) of the verdicts on the job's detections of `species`: one per verdict (a clip judged by
    several reviewers counts once for each), unsure ones left out, "other" counted as wrong."""
    score = ClipPredictionTag.objects.filter(
        clip_prediction__job=job, clip_prediction__clip=OuterRef("clip_id"), tag=species
    ).values("score")[:1]
    rows = job_verdicts(job, species).annotate(score=Subquery(score)).order_by("id").values_list("score", "verdict")
    return judged(rows)


def calibrate_species(job: InferenceJob, species: Tag, *, rounds: int = BOOTSTRAP_ROUNDS) -> Calibration:
    """Fit P(correct | score) for a species from the verdicts on the job's detections (see calibration_inputs)."""
    scores, correct = calibration_inputs(job, species)
    detection_scores = np.fromiter(
        ClipPredictionTag.objects.filter(clip_prediction__job=job, tag=species).values_list("score", flat=True),
        dtype=np.float64,
    )
    return calibrate(scores, correct, detection_scores=detection_scores, rounds=rounds)


def save_threshold_set(
    *,
    name: str,
    default_threshold: float,
    thresholds: dict[str, float],
    by,
    description: str = "",
    existing: ThresholdSet | None = None,
) -> ThresholdSet:
    """Create a threshold set, or replace one's thresholds (its creator or staff only)."""
    errors: dict[str, str] = {}
    if not (name or "").strip():
        errors["name"] = "give the set a name"
    if not _is_score(default_threshold):
        errors["default_threshold"] = f"must be a number from 0 to 1, got {default_threshold!r}"
    resolved: dict[Tag, float] = {}
    for species, threshold in (thresholds or {}).items():
        try:
            tag = species_tag(species, field="thresholds")
        except ValidationError as error:
            errors.setdefault("thresholds", error.errors["thresholds"])
            continue
        if not _is_score(threshold):
            errors.setdefault("thresholds", f"{species}: must be a number from 0 to 1, got {threshold!r}")
            continue
        resolved[tag] = float(threshold)
    if existing is None and ThresholdSet.objects.filter(name=(name or "").strip()).exists():
        errors["name"] = f"a threshold set named {name!r} exists already"
    if errors:
        raise ValidationError(errors)
    if existing is not None and not existing.can_be_changed_by(by):
        raise PermissionDenied("only staff or the set's creator may change it")
    with transaction.atomic():
        if existing is None:
            found = ThresholdSet.objects.create(
                name=name.strip(),
                default_threshold=float(default_threshold),
                description=description,
                created_by=by if getattr(by, "is_authenticated", False) else None,
            )
        else:
            found = existing
            found.name, found.default_threshold, found.description = name.strip(), float(default_threshold), description
            found.save()
            found.species.all().delete()
        SpeciesThreshold.objects.bulk_create(
            SpeciesThreshold(threshold_set=found, species=tag, threshold=threshold)
            for tag, threshold in resolved.items()
        )
    return found


def thresholds_from_csv(text: str) -> dict[str, float]:
    """`species,threshold` rows (a first row `species,threshold` is the header) -> {species: threshold}."""
    thresholds: dict[str, float] = {}
    rows = [row for row in csv.reader(io.StringIO(text)) if row and "".join(row).strip()]
    for number, row in enumerate(rows, start=1):
        if number == 1 and row[0].strip().lower() == "species":
            continue
        if len(row) < 2:
            raise ValidationError({"file": f"line {number}: expected species,threshold"})
        species, value = row[0].strip(), row[1].strip()
        try:
            thresholds[species] = float(value)
        except ValueError:
            raise ValidationError(
                {"file": f"line {number}: {value!r} is not a number (a header row reads species,threshold)"}
            ) from None
    return thresholds


def thresholds_as_csv(threshold_set: ThresholdSet) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["species", "threshold"])
    for value, threshold in threshold_set.species.order_by("species__value").values_list("species__value", "threshold"):
        writer.writerow([value, f"{threshold:g}"])
    return out.getvalue()


def passing(tag_rows: QuerySet, threshold_set: ThresholdSet, *, tag_field: str = "tag") -> QuerySet:
    """Scored tag rows (ClipPredictionTag, SoundEventPredictionTag) at or above the threshold of their species."""
    named = list(threshold_set.species.values_list("species_id", "threshold"))
    condition = Q(score__gte=threshold_set.default_threshold) & ~Q(**{f"{tag_field}_id__in": [t for t, _ in named]})
    for tag_id, threshold in named:
        condition |= Q(**{f"{tag_field}_id": tag_id, "score__gte": threshold})
    return tag_rows.filter(condition)


def _is_score(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
