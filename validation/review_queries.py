"""What the review and calibration pages ask of the data: the model's labels, the reviewer's verdicts taken
back, verdict counts and the calibration's inputs. Small services of the pages' own, in a few queries each."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import reverse

from echoroo.models import SPECIES, Clip, ClipPredictionTag, ModelRun, Tag
from echoroo.pages import species_names
from inference.models import InferenceJob
from inference.runtimes import available_runtimes, runtime_class
from inference.runtimes.base import Label
from validation import services
from validation.calibration import MIN_EACH, NoFit, TooFewVerdicts, calibrate
from validation.calibration_plot import score_text
from validation.models import Verdict
from validation.sampling import DEFAULT_PER_BIN, MAX_PER_BIN, kept_while_finished

MAX_SEED = 2**31 - 1


def model_labels(model_run: ModelRun) -> list[str]:
    """The labels a reviewer may name as "another species": the model's own, else every species known."""
    labels = runtime_class(model_run.name).known_labels(settings) if model_run.name in available_runtimes() else None
    if labels is not None:
        return [label.name for label in labels]
    # Labels that only the loaded model knows (they come with its weights): the species tags seen so far stand in.
    return list(Tag.objects.filter(key=SPECIES).order_by("value").values_list("value", flat=True))


def other_species_tag(job: InferenceJob, name: str) -> Tag:
    """The species tag for "it is another species": one of the model's labels (full, or its scientific name)."""
    name = (name or "").strip()
    if not name:
        raise services.ValidationError({"other_species": "name the species it is instead"})
    labels = model_labels(job.model_run)
    if name not in labels:
        named = [label for label in labels if Label.parse(label).scientific_name == name]
        if len(named) != 1:
            raise services.ValidationError(
                {"other_species": f"{name!r} is not one of {job.model_run.name}'s labels: pick one from the list"}
            )
        name = named[0]
    return Tag.objects.get_or_create(key=SPECIES, value=name)[0]


def job_detections(job: InferenceJob, species: Tag, clip_uuids: list[str]) -> QuerySet:
    """Those of these clips on which the job detected `species` (anything not a UUID is no clip of it)."""
    detected = ClipPredictionTag.objects.filter(
        clip_prediction__job=job, clip_prediction__clip=OuterRef("pk"), tag=species
    )
    return Clip.objects.filter(uuid__in=[value for value in clip_uuids if is_uuid(value)]).filter(Exists(detected))


def is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def withdraw_verdicts(*, clips: list[Clip], species: Tag, by) -> int:
    """Take back `by`'s verdicts on these clips for a species (undo); how many there were."""
    deleted, _ = Verdict.objects.filter(clip__in=clips, species=species, reviewer=by).delete()
    return deleted


def verdict_counts(job: InferenceJob, species: Tag) -> dict[str, int]:
    """Verdicts of every reviewer on the job's detections of a species, by value."""
    found = dict(services.job_verdicts(job, species).values_list("verdict").annotate(n=Count("id")))
    return {value: found.get(value, 0) for value in Verdict.Value.values}


def needed_text(counts: dict[str, int]) -> str:
    """ "review 3 more correct and 7 more wrong" (wrong counts "other"), or "" when there are enough."""
    more = {
        "correct": max(0, MIN_EACH - counts["correct"]),
        "wrong": max(0, MIN_EACH - counts["wrong"] - counts["other"]),
    }
    wanted = " and ".join(f"{n} more {kind}" for kind, n in more.items() if n)
    return f"review {wanted}" if wanted else ""


def calibration_summary(job: InferenceJob, species: Tag) -> dict:
    """What the review page's panel shows: the verdict counts, and the thresholds once they can be fitted.

    Without bootstrap intervals: it is asked after every verdict; the calibration page has them.
    """
    counts = verdict_counts(job, species)
    summary = {
        "counts": counts,
        "needed": needed_text(counts),
        "problem": "",
        "thresholds": None,
        "threshold_texts": None,
    }
    if summary["needed"]:
        return summary
    scores, correct = services.calibration_inputs(job, species)
    try:
        fitted = calibrate(scores, correct, rounds=0)
    except (TooFewVerdicts, NoFit) as error:
        summary["problem"] = str(error)
    else:
        summary["thresholds"] = fitted.thresholds
        summary["threshold_texts"] = {key: score_text(value) for key, value in fitted.thresholds.items()}
    return summary


# --- Shared by the review and calibration pages ------------------------------------------------


def get_job(job_uuid) -> InferenceJob:
    return get_object_or_404(InferenceJob.objects.select_related("model_run", "dataset", "recording"), uuid=job_uuid)


def int_option(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.GET.get(name, default))
    except ValueError:
        return default
    return min(max(value, low), high)


def review_options(request: HttpRequest) -> dict:
    """The sample asked for: per_bin, seed and blind (scores hidden, items shuffled)."""
    return {
        "per_bin": int_option(request, "per_bin", DEFAULT_PER_BIN, 1, MAX_PER_BIN),
        "seed": int_option(request, "seed", 0, 0, MAX_SEED),
        "blind": request.GET.get("blind", "") in ("1", "on", "true", "yes"),
    }


def species_choices(job: InferenceJob) -> list[dict]:
    """The job's species, most detected first, with their detections and verdicts (two queries, one when kept)."""
    found = job_species(job)
    detected = ClipPredictionTag.objects.filter(
        clip_prediction__job=job, clip_prediction__clip=OuterRef("clip_id"), tag=OuterRef("species_id")
    )
    judged = dict(
        Verdict.objects.filter(species_id__in=[tag_id for tag_id, _, _ in found])
        .filter(Exists(detected))
        .values_list("species_id")
        .annotate(n=Count("id"))
    )
    choices = []
    for tag_id, value, detections in found:
        common, scientific = species_names(value)
        choices.append(
            {
                "value": value,
                "query": scientific or value,
                "common_name": common,
                "scientific_name": scientific,
                "detections": detections,
                "verdicts": judged.get(tag_id, 0),
            }
        )
    return choices


@kept_while_finished(maxsize=64)
def job_species(job: InferenceJob) -> tuple[tuple[int, str, int], ...]:
    """(tag id, label, detections) of each species the job detected, most first.

    Counting reads every detection of the job (1.7 s for 1,000,000), so a finished job's counts are
    kept (see validation.sampling.kept_while_finished).
    """
    rows = (
        ClipPredictionTag.objects.filter(tag__key=SPECIES, clip_prediction__job=job)
        .values_list("tag_id", "tag__value")
        .annotate(detections=Count("id"))
        .order_by("-detections", "tag__value")
    )
    return tuple(rows)


def chosen_species(request: HttpRequest, job: InferenceJob) -> tuple[Tag | None, str]:
    """The species ?species= names among the job's labels, or None and why not."""
    name = request.GET.get("species", "").strip()
    if not name:
        return None, ""
    try:
        return services.species_tag(name, job=job), ""
    except services.ValidationError as error:
        return None, error.errors["species"]


def job_title(job: InferenceJob) -> str:
    target = f"dataset {job.dataset.name}" if job.dataset_id else job.recording.path
    return f"{job.model_run.name} {job.model_run.version} on {target}"


def review_url(job: InferenceJob, species: str, **options) -> str:
    query = {"species": species, **{k: v for k, v in options.items() if v not in (None, "", False)}}
    if query.get("blind") is True:
        query["blind"] = 1
    return reverse("validation-review", args=[job.uuid]) + "?" + urlencode(query)
