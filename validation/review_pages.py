"""The review pages: one detection at a time, by ear, and the calibration view.

The review page draws the job's stratified seeded sample once and hands it to the browser whole:
moving on costs the verdict's POST and the next item's media (fetched ahead), no other round trip.
Verdicts, undo, similar detections and their bulk verdicts go to small views here, which call
validation.services as the API does.
"""

from __future__ import annotations

import functools
import random
from pathlib import PurePosixPath
from urllib.parse import urlencode

from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from echoroo.media import (
    CACHE_CONTROL,
    MAX_SPECTROGRAM_S,
    check_range,
    login_required_401,
    png_response,
    spectrogram_file,
)
from echoroo.models import Clip, Dataset, ModelRun, Recording, Tag
from echoroo.pages import clock, page_login_required, recording_url, species_names
from echoroo.spectrogram import SpectrogramParams
from inference.models import InferenceJob
from inference.runtimes import DEFAULT_RUNTIME
from validation import services
from validation.calibration import TARGETS
from validation.calibration_page import calibration_page
from validation.models import Verdict
from validation.review_queries import (
    calibration_summary,
    chosen_species,
    get_job,
    job_detections,
    job_title,
    model_labels,
    other_species_tag,
    review_options,
    species_choices,
    withdraw_verdicts,
)
from validation.sampling import bin_counts, bin_edges, review_sample

# A second of the recording on each side of the window, drawn wide enough to read a call's shape.
CONTEXT_S = 1.0
REVIEW_PX_PER_S = 160
SIMILAR_SHOWN = 8


# --- The review page ------------------------------------------------------------------------------


def review_items(job: InferenceJob, species: Tag, *, per_bin: int, seed: int, blind: bool, by) -> list[dict]:
    """The sample as the browser steps through it, with the reviewer's own verdicts (three queries)."""
    sample = review_sample(job, species, per_bin=per_bin, seed=seed)
    mine = {
        clip_id: (verdict, other)
        for clip_id, verdict, other in Verdict.objects.filter(
            reviewer=by, species=species, clip_id__in=[item.clip_id for item in sample]
        ).values_list("clip_id", "verdict", "other_species__value")
    }
    recordings = {
        str(uuid): (duration, samplerate)
        for uuid, duration, samplerate in Recording.objects.filter(
            uuid__in={item.recording_uuid for item in sample}
        ).values_list("uuid", "duration", "samplerate")
    }
    items = []
    for item in sample:
        duration, samplerate = recordings[item.recording_uuid]
        view_from, view_to = context_range(item.start_time, item.end_time, duration)
        span = view_to - view_from
        verdict, other = mine.get(item.clip_id, (None, None))
        items.append(
            {
                "clip": item.clip_uuid,
                "file": PurePosixPath(item.recording_path).name,
                "path": item.recording_path,
                "clock": f"{clock(item.start_time)} – {clock(item.end_time)}",
                "view_from": clock(view_from),
                "view_to": clock(view_to),
                "window_from": clock(item.start_time),
                "window_to": clock(min(item.end_time, duration)),
                "window_left": round(100 * (item.start_time - view_from) / span, 3),
                "window_width": round(100 * (min(item.end_time, duration) - item.start_time) / span, 3),
                "max_khz": min(samplerate / 2, SpectrogramParams.max_freq_hz) / 1000,
                "score": None if blind else round(item.score, 3),
                "bin": item.bin,
                "verdict": verdict,
                "other": other,
                "image": reverse("validation-clip-context", args=[item.clip_uuid]),
                "audio": reverse("clip-audio", args=[item.clip_uuid]),
                "recording": recording_url(item.recording_uuid, item.start_time, clip=item.clip_uuid, job=job.uuid),
            }
        )
    if blind:
        # Shown in the order of the bins, the scores could be guessed: a shuffle, the same for a seed.
        random.Random(seed).shuffle(items)
    return items


def bins_shown(job: InferenceJob, species: Tag, items: list[dict]) -> list[dict]:
    edges = bin_edges(float(job.settings.confidence_threshold))
    counts = bin_counts(job, species)
    return [
        {
            "bin": index,
            "low": edges[index],
            "high": edges[index + 1],
            "detections": count,
            "sampled": sum(item["bin"] == index for item in items),
            "left": sum(item["bin"] == index and not item["verdict"] for item in items),
        }
        for index, count in enumerate(counts)
    ]


@never_cache  # coming back to it shows the verdicts given since, not a copy from before
@require_GET
@page_login_required
def review_page(request: HttpRequest, job_uuid) -> HttpResponse:
    """A job's detections of a species, one at a time from a stratified seeded sample, judged by ear."""
    job = get_job(job_uuid)
    options = review_options(request)
    species, problem = chosen_species(request, job)
    choices = species_choices(job)
    context = {
        "job": job,
        "job_title": job_title(job),
        "threshold": job.settings.confidence_threshold,
        "choices": choices,
        "options": options,
        "problem": problem,
        "species": species,
    }
    if species is not None:
        common, scientific = species_names(species.value)
        query = scientific or species.value
        items = review_items(job, species, **options, by=request.user)
        start = next((i for i, item in enumerate(items) if not item["verdict"]), max(len(items) - 1, 0))
        urls = {
            "verdict": reverse("validation-review-verdict", args=[job.uuid]),
            "undo": reverse("validation-review-undo", args=[job.uuid]),
            "similar": reverse("validation-review-similar", args=[job.uuid]),
            "bulk": reverse("validation-review-bulk", args=[job.uuid]),
            "summary": reverse("validation-calibration-summary", args=[job.uuid]),
            "labels": reverse("validation-labels", args=[job.model_run.uuid]),
        }
        context |= {
            "common_name": common,
            "scientific_name": scientific,
            "species_query": query,
            "items": items,
            "bins": bins_shown(job, species, items),
            "judged": sum(bool(item["verdict"]) for item in items),
            "summary": calibration_summary(job, species),
            "targets": [f"{target:g}" for target in TARGETS],
            "review_data": {
                "species": species.value,
                "blind": options["blind"],
                "start": start,
                "items": items,
                "urls": urls,
            },
            "calibration_url": reverse("validation-calibration", args=[job.uuid]) + "?" + urlencode({"species": query}),
        }
    return render(request, "validation/review.html", context)


@require_GET
@page_login_required
def dataset_review(request: HttpRequest, dataset_uuid) -> HttpResponse:
    """The review page of the newest completed job of ?model= (the default model if none) on a dataset."""
    dataset = get_object_or_404(Dataset, uuid=dataset_uuid)
    model = request.GET.get("model", "").strip() or DEFAULT_RUNTIME
    job = (
        InferenceJob.objects.filter(dataset=dataset, model_run__name=model, status=InferenceJob.Status.COMPLETED)
        .order_by("-completed_at", "-id")
        .first()
    )
    if job is None:
        context = {
            "title": "Nothing to review yet",
            "message": f"No {model} job has completed on the dataset {dataset.name}: run one, then review it here.",
        }
        return render(request, "validation/problem.html", context, status=404)
    query = request.GET.copy()
    query.pop("model", None)
    return redirect(reverse("validation-review", args=[job.uuid]) + ("?" + query.urlencode() if query else ""))


# --- What the review page posts and fetches ---------------------------------------------------------


def problem(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"detail": message}, status=status)


def asked_species(request: HttpRequest, job: InferenceJob) -> Tag:
    """The species a call of the review page names (posted, or in the query string)."""
    given = request.POST if request.method == "POST" else request.GET
    return services.species_tag(given.get("species", ""), job=job)


def verdict_json(verdict: Verdict | None) -> dict:
    if verdict is None:
        return {"verdict": None, "other": None}
    return {"verdict": verdict.verdict, "other": verdict.other_species.value if verdict.other_species_id else None}


def judgement(request: HttpRequest, job: InferenceJob, prefix: str = "") -> tuple[str, Tag | None]:
    """The posted verdict (or, with prefix "restore_", the one to put back) and its other species."""
    verdict = request.POST.get(f"{prefix}verdict", "")
    other = None
    if verdict == Verdict.Value.OTHER:
        other = other_species_tag(job, request.POST.get(f"{prefix}other_species", ""))
    return verdict, other


def review_call(view):
    """A call of the review page about a job: logged in (401 otherwise), bad input answered 400 saying what is wrong."""

    @login_required_401
    @functools.wraps(view)
    def wrapper(request: HttpRequest, job_uuid) -> HttpResponse:
        job = get_job(job_uuid)
        try:
            return view(request, job)
        except services.ValidationError as error:
            return JsonResponse({"detail": str(error), "errors": error.errors}, status=400)

    return wrapper


def posted(view):
    """A POST of the review page (see review_call)."""
    return require_POST(review_call(view))


def fetched(view):
    """A GET of the review page, never cached: it answers with the verdicts as they are now (see review_call)."""
    return never_cache(require_GET(review_call(view)))


@posted
def post_verdict(request: HttpRequest, job: InferenceJob) -> JsonResponse:
    """Store (or replace) the reviewer's verdict on one of the job's detections."""
    species = asked_species(request, job)
    clip = job_detections(job, species, [request.POST.get("clip", "")]).first()
    if clip is None:
        return problem("the clip is not one of this job's detections of the species")
    verdict, other = judgement(request, job)
    if other is not None and other.pk == species.pk:
        return problem("the other species is the species judged: mark it correct instead")
    found = services.record_verdict(clip=clip, species=species, verdict=verdict, other_species=other, by=request.user)
    return JsonResponse({"clip": str(clip.uuid), **verdict_json(found)})


@posted
def undo_verdicts(request: HttpRequest, job: InferenceJob) -> JsonResponse:
    """Take back the reviewer's verdicts on these clips, or put back the one each had before (?restore_verdict)."""
    species = asked_species(request, job)
    clips = list(job_detections(job, species, request.POST.getlist("clip")))
    if not clips:
        return problem("no clip given is one of this job's detections of the species")
    verdict, other = judgement(request, job, prefix="restore_")
    if not verdict:
        return JsonResponse({"withdrawn": withdraw_verdicts(clips=clips, species=species, by=request.user)})
    with transaction.atomic():
        for clip in clips:
            services.record_verdict(clip=clip, species=species, verdict=verdict, other_species=other, by=request.user)
    return JsonResponse({"restored": len(clips)})


@posted
def bulk_verdicts(request: HttpRequest, job: InferenceJob) -> JsonResponse:
    """The verdict given on one clip, given to the similar detections checked (each its own verdict, marked bulk)."""
    species = asked_species(request, job)
    like = job_detections(job, species, [request.POST.get("like_clip", "")]).first()
    if like is None:
        return problem("like_clip is not one of this job's detections of the species")
    clips = list(job_detections(job, species, request.POST.getlist("clip")).exclude(pk=like.pk))
    if not clips:
        return problem("check at least one of the similar detections")
    verdict, other = judgement(request, job)
    given = services.record_verdicts_like(
        like_clip=like, clips=clips, species=species, verdict=verdict, other_species=other, by=request.user
    )
    return JsonResponse({"given": [str(clip.uuid) for clip in clips], "count": len(given), "verdict": verdict})


@fetched
def similar(request: HttpRequest, job: InferenceJob) -> JsonResponse:
    """The job's detections of the species nearest to ?clip= (those the reviewer judged already left out)."""
    species = asked_species(request, job)
    clip = job_detections(job, species, [request.GET.get("clip", "")]).first()
    if clip is None:
        return problem("the clip is not one of this job's detections of the species")
    found = services.similar_detections(job, clip, species, limit=SIMILAR_SHOWN, by=request.user)
    return JsonResponse(
        {
            "similar": [
                {
                    "clip": row["clip"],
                    "file": PurePosixPath(row["recording_path"]).name,
                    "clock": f"{clock(row['start_time'])} – {clock(row['end_time'])}",
                    "score": round(row["score"], 3),
                    "similarity": round(row["similarity"], 3),
                    "image": reverse("clip-spectrogram", args=[row["clip"]]),
                    "audio": reverse("clip-audio", args=[row["clip"]]),
                }
                for row in found
            ]
        }
    )


@fetched
def summary(request: HttpRequest, job: InferenceJob) -> JsonResponse:
    """The review page's calibration panel: verdict counts, what is still needed, the thresholds."""
    return JsonResponse(calibration_summary(job, asked_species(request, job)))


@require_GET
@login_required_401
def labels(request: HttpRequest, model_run_uuid) -> JsonResponse:
    """{"labels": [...]}: what "another species" offers as you type; kept by the browser a day."""
    model_run = get_object_or_404(ModelRun, uuid=model_run_uuid)
    response = JsonResponse({"labels": model_labels(model_run)})
    response["Cache-Control"] = CACHE_CONTROL
    return response


@require_GET
@login_required_401
def clip_context_spectrogram(request: HttpRequest, uuid) -> HttpResponse:
    """A clip's window with a second of context on each side, drawn wide (160 px a second)."""
    clip = get_object_or_404(Clip.objects.select_related("recording"), uuid=uuid)
    recording = clip.recording
    view_from, view_to = context_range(clip.start_time, clip.end_time, recording.duration)
    reason = check_range(recording, view_from, view_to, MAX_SPECTROGRAM_S)
    if reason:
        return HttpResponseBadRequest(f"No spectrogram: {reason}.", content_type="text/plain")
    params = SpectrogramParams(width_px=max(1, round((view_to - view_from) * REVIEW_PX_PER_S)))
    return png_response(spectrogram_file(recording, view_from, view_to, params))


def context_range(start_s: float, end_s: float, duration_s: float) -> tuple[float, float]:
    """The window with CONTEXT_S on each side, within the recording."""
    return max(0.0, start_s - CONTEXT_S), min(duration_s, end_s + CONTEXT_S)


urlpatterns = [
    path("jobs/<uuid:job_uuid>/review/", review_page, name="validation-review"),
    path("jobs/<uuid:job_uuid>/review/verdict/", post_verdict, name="validation-review-verdict"),
    path("jobs/<uuid:job_uuid>/review/undo/", undo_verdicts, name="validation-review-undo"),
    path("jobs/<uuid:job_uuid>/review/similar.json", similar, name="validation-review-similar"),
    path("jobs/<uuid:job_uuid>/review/bulk/", bulk_verdicts, name="validation-review-bulk"),
    path("jobs/<uuid:job_uuid>/review/summary.json", summary, name="validation-calibration-summary"),
    path("jobs/<uuid:job_uuid>/calibration/", calibration_page, name="validation-calibration"),
    path("datasets/<uuid:dataset_uuid>/review/", dataset_review, name="validation-dataset-review"),
    path("labels/<uuid:model_run_uuid>.json", labels, name="validation-labels"),
    path("clips/<uuid:uuid>/context.png", clip_context_spectrogram, name="validation-clip-context"),
]
