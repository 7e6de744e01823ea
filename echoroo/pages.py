"""The HTML pages of the core app: home (datasets, recent jobs) and a recording with its spectrogram and detections."""

from __future__ import annotations

import math
import uuid
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, F, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from annotations.recording_page import annotations_context
from echoroo.formatting import clock
from echoroo.media import PLAY_CONTEXT_S
from echoroo.models import ClipPredictionTag, Dataset, Recording
from echoroo.recording_view import VIEW_HEIGHT_PX, length_text, recording_view
from inference.job_lists import jobs_queryset, with_progress
from inference.models import InferenceJob
from inference.queries import job_predictions, recording_jobs
from inference.runtimes.base import Label
from reports.browsing import RecordingFilters, cursor_of, neighbours
from validation.models import ThresholdSet, Verdict

DETECTIONS_PER_PAGE = 50
# Detections drawn over one view at most (the table pages through all of them); lanes stacked at most.
MAX_BOXES = 300
MAX_LANES = 8
# Labels written in one box (vertically, side by side); the rest are counted, and in the table.
LABELS_PER_BOX = 4
RECENT_JOBS = 10
# The recording page's job picker lists this many jobs of the recording, newest first; ?job= reaches any other.
JOB_CHOICES = 50
# The threshold-set pickers list this many sets by name; ?thresholds= reaches any other.
THRESHOLD_SET_CHOICES = 200
# How a verdict reads beside a detection, in this order; "other" names the species instead.
VERDICT_MARKS = {
    Verdict.Value.CORRECT: ("✓", "correct"),
    Verdict.Value.WRONG: ("✗", "wrong"),
    Verdict.Value.UNSURE: ("?", "unsure"),
    Verdict.Value.OTHER: ("→", ""),
}


# Pages need a logged-in user: anyone else goes to the login page (settings.LOGIN_URL) and comes back.
page_login_required = login_required


def may_start_jobs(user) -> bool:
    """Who may create jobs: the one rule of inference.services, for the pages, the admin and the API alike."""
    from inference.services import may_create_jobs

    return may_create_jobs(user)


def species_names(value: str) -> tuple[str, str]:
    """(common name, scientific name) of a species tag: BirdNET writes "Scientific_Common", others one name."""
    label = Label.parse(value)
    return (label.common_name, label.scientific_name) if label.common_name else (value, "")


def pick_threshold_set(wanted: str) -> tuple[ThresholdSet | None, list[str], bool]:
    """The threshold set ?thresholds= names (None: every detection), the set names to pick from, and whether the
    name matched no set (the page then says so and filters nothing)."""
    names = list(ThresholdSet.objects.order_by("name").values_list("name", flat=True)[:THRESHOLD_SET_CHOICES])
    if not wanted:
        return None, names, False
    found = ThresholdSet.objects.filter(name=wanted).first()
    if found is not None and found.name not in names:
        names.append(found.name)
    return found, names, found is None


def recording_url(recording_uuid, start_s: float = 0.0, **params) -> str:
    """The recording page at a time (and, given, with a clip highlighted or filters set)."""
    query = {"t": f"{start_s:g}", **{name: value for name, value in params.items() if value not in (None, "")}}
    return reverse("recording", args=[recording_uuid]) + "?" + urlencode(query)


def job_url(job: InferenceJob | None, threshold_set: ThresholdSet | None = None) -> str | None:
    """A job's page, with the threshold set applied if one is given."""
    if job is None:
        return None
    url = reverse("job", args=[job.uuid])
    return f"{url}?{urlencode({'thresholds': threshold_set.name})}" if threshold_set else url


@require_GET
@page_login_required
def home(request: HttpRequest) -> HttpResponse:
    """Datasets with their recordings and hours (each linking to its page), and the latest jobs."""
    datasets = Dataset.objects.annotate(recordings_count=Count("recordings"), hours=Sum("recordings__duration") / 3600)
    context = {
        "datasets": datasets,
        "jobs": with_progress(jobs_queryset()[:RECENT_JOBS]),
        "can_start_jobs": may_start_jobs(request.user),
    }
    return render(request, "pages/home.html", context)


# --- The recording page -------------------------------------------------------------------------


def recording_scores(
    job: InferenceJob | None, recording: Recording, threshold_set: ThresholdSet | None = None
) -> QuerySet:
    """The job's species scores on the recording's clips, those passing the threshold set if one is given (none
    without a job; never a classifier's scores)."""
    if job is None:
        return ClipPredictionTag.objects.none()
    return job_predictions(job, threshold_set).filter(clip_prediction__clip__recording=recording)


def detection_rows(scores: QuerySet) -> QuerySet:
    """Species scores as the plain rows the boxes and the table show: one query, however many."""
    return scores.values(
        "score",
        "tag_id",
        species=F("tag__value"),
        clip_id=F("clip_prediction__clip_id"),
        clip_uuid=F("clip_prediction__clip__uuid"),
        # What "confirm" sends to the annotation API: the window detection and its species.
        clip_prediction_uuid=F("clip_prediction__uuid"),
        start_time=F("clip_prediction__clip__start_time"),
        end_time=F("clip_prediction__clip__end_time"),
    ).order_by("start_time", "-score", "species")


def detection_filters(request: HttpRequest) -> tuple[dict, Q]:
    """The table's filters as given (to show in the form and keep in links) and as a Q; ?job= is pick_job's,
    ?thresholds= pick_threshold_set's."""
    given = {name: request.GET.get(name, "").strip() for name in ("job", "thresholds", "species", "min_score")}
    condition = Q()
    if given["species"]:
        condition &= Q(tag__value=given["species"])
    try:
        min_score = float(given["min_score"]) if given["min_score"] else None
    except ValueError:
        min_score, given["min_score"] = None, ""
    if min_score is not None and math.isfinite(min_score):
        condition &= Q(score__gte=min_score)
    return given, condition


def job_label(job: InferenceJob) -> str:
    """How the job picker names a job: model, when it was created, and the settings that decide what it found."""
    settings = job.settings
    label = f"{job.model_run.name} {job.model_run.version} · {timezone.localtime(job.created_at):%Y-%m-%d %H:%M}"
    label += f" · threshold {settings.confidence_threshold:g}"
    if settings.sensitivity != 1.0:
        label += f", sensitivity {settings.sensitivity:g}"
    if settings.custom_species_list:
        label += f", {len(settings.custom_species_list)} species listed"
    return label


def pick_job(recording: Recording, wanted: str) -> tuple[InferenceJob | None, list[InferenceJob], bool]:
    """The job whose detections the page shows, the jobs to pick from, and whether ?job= named none of them.

    Each job's detections are its own (its threshold, its species list), so the page shows one job's
    at a time: the one asked for, else the newest that finished this recording.
    """
    jobs = list(recording_jobs(recording)[:JOB_CHOICES])
    if not wanted:
        return (jobs[0] if jobs else None), jobs, False
    try:
        wanted_uuid = uuid.UUID(wanted)
    except ValueError:
        return (jobs[0] if jobs else None), jobs, True
    job = next((job for job in jobs if job.uuid == wanted_uuid), None)
    if job is None:
        # An older job than the picker lists is still shown when asked for by name.
        job = recording_jobs(recording).filter(uuid=wanted_uuid).first()
        if job is None:
            return (jobs[0] if jobs else None), jobs, True
        jobs.append(job)
    return job, jobs, False


def boxes(rows: list[dict], view_from: float, view_to: float) -> list[dict]:
    """One box per clip, placed in percent of the view, holding its detections' labels (best first).

    Clips that overlap in time (windows with overlap) go in lanes, each lane's boxes a little lower,
    so that every box keeps an edge of its own to click.
    """
    span = view_to - view_from
    by_clip: dict = {}
    for row in rows:
        by_clip.setdefault(row["clip_uuid"], []).append(row)
    lane_ends: list[float] = []
    drawn = []
    for detections in by_clip.values():
        first = detections[0]
        lane = next((i for i, end in enumerate(lane_ends) if end <= first["start_time"] + 1e-9), len(lane_ends))
        if lane >= MAX_LANES:
            continue
        if lane == len(lane_ends):
            lane_ends.append(first["end_time"])
        else:
            lane_ends[lane] = first["end_time"]
        left = max(first["start_time"], view_from)
        right = min(first["end_time"], view_to)
        detections = sorted(detections, key=lambda row: -row["score"])
        drawn.append(
            {
                "clip_uuid": first["clip_uuid"],
                "audio_url": first["audio_url"],
                "clock": first["clock"],
                "lane": lane,
                "left_pct": f"{100 * (left - view_from) / span:.3f}",
                "width_pct": f"{100 * (right - left) / span:.3f}",
                "labels": detections[:LABELS_PER_BOX],
                "more": len(detections) - LABELS_PER_BOX,
                "title": "\n".join(f"{row['common_name']} {row['score']:.3f}" for row in detections),
            }
        )
    return drawn


def with_verdicts(rows: list[dict]) -> list[dict]:
    """The rows, each with the verdicts on its detection (clip and species) grouped as they read: one query."""
    given: dict[tuple[int, int], dict[tuple[str, str], list[str]]] = {}
    if rows:
        found = (
            Verdict.objects.filter(
                clip_id__in={row["clip_id"] for row in rows}, species_id__in={row["tag_id"] for row in rows}
            )
            .values_list("clip_id", "species_id", "verdict", "other_species__value", "reviewer__username")
            .order_by("reviewer__username")
        )
        for clip_id, species_id, verdict, other_species, reviewer in found:
            by_verdict = given.setdefault((clip_id, species_id), {})
            by_verdict.setdefault((verdict, other_species or ""), []).append(reviewer)
    order = list(VERDICT_MARKS)
    for row in rows:
        by_verdict = given.get((row["clip_id"], row["tag_id"]), {})
        ordered = sorted(by_verdict.items(), key=lambda item: order.index(item[0][0]))
        row["verdicts"] = [verdict_mark(verdict, other, reviewers) for (verdict, other), reviewers in ordered]
    return rows


def verdict_mark(verdict: str, other_species: str, reviewers: list[str]) -> dict:
    """ "✓ correct (anna, ben)", "→ Veery (cat)": one verdict beside a detection, and who gave it."""
    symbol, text = VERDICT_MARKS[verdict]
    if verdict == Verdict.Value.OTHER:
        text = species_names(other_species)[0]
    return {"verdict": verdict, "symbol": symbol, "text": text, "reviewers": ", ".join(reviewers)}


def decorate(row: dict, job: InferenceJob) -> dict:
    """Names and links the templates show for one detection row of the job."""
    common, scientific = species_names(row["species"])
    return {
        **row,
        "common_name": common,
        "scientific_name": scientific,
        "clock": clock(row["start_time"]),
        "end_clock": clock(row["end_time"]),
        "audio_url": reverse("clip-audio", args=[row["clip_uuid"]]),
        "similar_url": reverse("search") + "?" + urlencode({"clip": row["clip_uuid"], "model": job.model_run.uuid}),
    }


@require_GET
@page_login_required
def recording_page(request: HttpRequest, recording_uuid) -> HttpResponse:
    """A recording: a view of its spectrogram (a minute by default) with the detections and annotations drawn on it,
    a player, and the detections table."""
    recording = get_object_or_404(Recording.objects.select_related("dataset", "site"), uuid=recording_uuid)
    view = recording_view(recording, request.GET)
    view_from, view_to = view.from_s, view.to_s
    given, condition = detection_filters(request)
    job, jobs, unknown_job = pick_job(recording, given["job"])
    for choice in jobs:
        choice.label = job_label(choice)
    # Links (other views, pages, the table's times) stay on the job shown, even once a newer job follows.
    given["job"] = str(job.uuid) if job else ""
    threshold_set, threshold_set_names, unknown_thresholds = pick_threshold_set(given["thresholds"])
    if unknown_thresholds:
        given["thresholds"] = ""
    scores = recording_scores(job, recording, threshold_set)
    rows = detection_rows(scores.filter(condition))

    overlapping = Q(clip_prediction__clip__start_time__lt=view_to, clip_prediction__clip__end_time__gt=view_from)
    in_view = [decorate(row, job) for row in rows.filter(overlapping)[:MAX_BOXES]]
    page = Paginator(rows, DETECTIONS_PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = with_verdicts([decorate(row, job) for row in page.object_list])

    # The species filter's choices: what the job found on this recording.
    found = scores.values("tag__value").annotate(count=Count("id")).order_by("tag__value")
    species_choices = [(row["tag__value"], f"{species_names(row['tag__value'])[0]} ({row['count']})") for row in found]

    filters = {name: value for name, value in given.items() if value}
    # The dataset's list this recording was opened from (its filters and order): the previous and next recordings
    # are those of that list, and every link here keeps it, and the view's length and band.
    browse, _ = RecordingFilters.from_query(request.GET)
    list_params = browse.params()
    filters.update(list_params)
    filters.update(view.params)
    previous_recording, next_recording = neighbours(recording, browse)
    # The sound event annotations: boxes over the view (time and band) and the list below it.
    annotations = annotations_context(
        recording,
        view_from,
        view_to,
        view.max_freq_hz,
        request.user,
        clock=clock,
        recording_url=lambda start_s, **params: recording_url(recording.uuid, start_s, **filters, **params),
        bottom_hz=view.min_freq_hz,
    )
    zoom = {step: view.zoomed(step) for step in (-1, 1)}
    step = {"prev": view.previous_from, "next": view.next_from}
    context = {
        "recording": recording,
        "view": view,
        "view_from": view_from,
        "view_to": view_to,
        "view_clock": f"{clock(view_from)} – {clock(view_to)}",
        "view_length": length_text(view.length_s),
        "view_params": view.params,
        "spectrogram_url": view.spectrogram_url(),
        "spectrogram_width": view.width_px,
        "spectrogram_height": VIEW_HEIGHT_PX,
        "freq_labels": view.freq_labels(),
        "band_choices": view.band_choices(),
        "boxes": boxes(in_view, view_from, view_to),
        "boxes_capped": len(in_view) >= MAX_BOXES,
        "prev_url": recording_url(recording.uuid, step["prev"], **filters) if step["prev"] is not None else None,
        "next_url": recording_url(recording.uuid, step["next"], **filters) if step["next"] is not None else None,
        "zoom_in_url": zoom[-1] and recording_url(recording.uuid, view_from, **{**filters, **zoom[-1]}),
        "zoom_out_url": zoom[1] and recording_url(recording.uuid, view_from, **{**filters, **zoom[1]}),
        "page": page,
        "filters": given,
        "filter_query": urlencode({"t": f"{view_from:g}", **filters}),
        "table_query": urlencode(filters),
        "species_choices": species_choices,
        "job": job,
        "jobs": jobs,
        "unknown_job": unknown_job,
        "threshold_set": threshold_set,
        "threshold_set_names": threshold_set_names,
        "unknown_thresholds": request.GET.get("thresholds", "") if unknown_thresholds else "",
        "job_url": job_url(job, threshold_set),
        "highlight": request.GET.get("clip", ""),
        "ticks": view.ticks(clock),
        "play_context_s": PLAY_CONTEXT_S,
        "can_start_jobs": may_start_jobs(request.user),
        "previous_recording": previous_recording,
        "next_recording": next_recording,
        "previous_recording_url": neighbour_url(previous_recording, {**list_params, **view.params}),
        "next_recording_url": neighbour_url(next_recording, {**list_params, **view.params}),
        "dataset_url": list_url(recording, previous_recording, browse),
        "list_params": list_params,
        "list_query": urlencode({**list_params, **view.params}),
        **annotations,
        "highlight_annotation": request.GET.get("annotation", ""),
        "nyquist_hz": recording.samplerate / 2,
    }
    return render(request, "pages/recording.html", context)


def neighbour_url(recording: Recording | None, list_params: dict[str, str]) -> str | None:
    """Another recording's page from its start, in the same list."""
    if recording is None:
        return None
    url = reverse("recording", args=[recording.uuid])
    return f"{url}?{urlencode(list_params)}" if list_params else url


def list_url(recording: Recording, previous: Recording | None, browse: RecordingFilters) -> str:
    """The dataset's list with the same filters, on the page that begins with this recording."""
    query = browse.params()
    if previous is not None:
        query["after"] = cursor_of(previous, browse.order)
    url = reverse("dataset", args=[recording.dataset.uuid])
    return (f"{url}?{urlencode(query)}" if query else url) + "#recordings"
