"""The species summary pages: a dataset's (its newest completed job, or ?job=) or a job's detections by species,
site and day, sortable, filtered and paged; the same rows as CSV from the API (reports.api.summaries)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.urls import path, reverse
from django.views.decorators.http import require_GET

from echoroo.models import Dataset, Site
from echoroo.pages import clock, job_label, page_login_required, pick_threshold_set, recording_url, species_names
from inference.models import InferenceJob
from inference.queries import within_time_limit
from reports import summaries
from reports.selection import ReportError, reject_nul, selection_from

ROWS_PER_PAGE = 50
# Every page aggregates all the detections the filters keep (about 30 s for 10 million on 2 busy cores:
# benchmarks/reports.py); past this the page says so instead of holding a web worker.
TIME_LIMIT_MS = 90_000
# The job picker lists this many of the dataset's jobs, newest first; ?job= reaches any other.
JOB_CHOICES = 50
# Filters kept in links (sorting, paging) and in the CSV link.
KEPT = ("job", "thresholds", "min_score", "verified", "species", "site", "start", "end", "timezone")
COLUMNS = (
    ("species", "species"),
    ("site", "site"),
    ("day", "day"),
    ("detections", "detections"),
    ("recordings", "recordings"),
    ("max_score", "max score"),
    ("first_time", "first"),
    ("last_time", "last"),
)


@require_GET
@page_login_required
def dataset_species(request: HttpRequest, dataset_uuid) -> HttpResponse:
    """A dataset's species by site and day: its newest completed job's detections, or ?job='s."""
    dataset = get_object_or_404(Dataset, uuid=dataset_uuid)
    return species_summary_page(request, dataset=dataset)


@require_GET
@page_login_required
def job_species(request: HttpRequest, job_uuid) -> HttpResponse:
    """A job's species by site and day."""
    job = get_object_or_404(InferenceJob.objects.select_related("dataset", "recording__dataset"), uuid=job_uuid)
    return species_summary_page(request, job=job)


def species_summary_page(request: HttpRequest, *, dataset: Dataset | None = None, job: InferenceJob | None = None):
    try:
        reject_nul(request.GET)
    except ReportError as error:
        return HttpResponseBadRequest(f"{error.field}: {error}")
    given = {name: request.GET.get(name, "").strip() for name in (*KEPT, "sort")}
    if job is not None:
        given["job"] = str(job.uuid)
    threshold_set, threshold_set_names, unknown_thresholds = pick_threshold_set(given["thresholds"])
    if unknown_thresholds:
        given["thresholds"] = ""  # as the other pages: say so, and filter nothing
    context = {
        "dataset": dataset,
        "page_job": job,
        "filters": given,
        "threshold_set": threshold_set,
        "threshold_set_names": threshold_set_names,
        "unknown_thresholds": request.GET.get("thresholds", "") if unknown_thresholds else "",
        "error": None,
        "page": None,
    }
    try:
        selection = selection_from(given, dataset=dataset)
        filters = summaries.filters_from(given)
    except ReportError as error:
        context["error"] = str(error)
        context["jobs"] = _jobs(dataset, None)
        return render(request, "reports/species_summary.html", context)
    dataset = selection.dataset
    number = _page_number(request.GET.get("page"))
    found = within_time_limit(
        lambda: summaries.summary_page(selection, filters, number=number, size=ROWS_PER_PAGE), TIME_LIMIT_MS
    )
    if found is None:
        context["error"] = (
            f"Summing up these detections took longer than {TIME_LIMIT_MS / 1000:g} s: narrow them down by species, "
            "site or dates, or download the CSV."
        )
        found = [], 0
    rows, total = found
    if not rows and total:  # past the last page: show the last
        number = -(-total // ROWS_PER_PAGE)
        rows, total = summaries.summary_page(selection, filters, number=number, size=ROWS_PER_PAGE)
    page = Page([_shown(row, selection) for row in rows], number, Paginator(range(total), ROWS_PER_PAGE))
    kept = {name: given[name] for name in KEPT if given[name] and not (job is not None and name == "job")}
    csv_query = {**kept, "job": str(selection.job.uuid), "sort": filters.sort, "format": "csv"}
    context.update(
        dataset=dataset,
        job=selection.job,
        jobs=_jobs(dataset, selection.job) if job is None else [],
        chosen=selection.chosen,
        zone=str(selection.zone),
        page=page,
        sites=list(Site.objects.filter(dataset=dataset).order_by("name").values_list("name", flat=True)),
        columns=_columns(filters.sort, kept),
        table_query=urlencode({**kept, "sort": filters.sort}),
        csv_url=reverse("species-summary") + "?" + urlencode(csv_query),
    )
    return render(request, "reports/species_summary.html", context)


def _page_number(text: str | None) -> int:
    try:
        return max(1, min(int(text or 1), 10**6))
    except ValueError:
        return 1


def _jobs(dataset: Dataset | None, shown: InferenceJob | None) -> list[InferenceJob]:
    """The dataset's jobs to pick from, newest first (the one shown among them)."""
    if dataset is None:
        return []
    jobs = list(
        InferenceJob.objects.filter(dataset=dataset)
        .select_related("model_run")
        .order_by("-created_at", "-pk")[:JOB_CHOICES]
    )
    if shown is not None and shown not in jobs:
        jobs.append(shown)
    for choice in jobs:
        choice.label = f"{job_label(choice)} · {choice.status}"
    return jobs


def _columns(sort: str, kept: dict) -> list[dict]:
    """The table's headers: a link that sorts by the column (again: the other way round)."""
    columns = []
    for key, label in COLUMNS:
        current = sort.removeprefix("-") == key
        descending = sort.startswith("-")
        wanted = f"-{key}" if current and not descending else key
        columns.append(
            {
                "label": label,
                "url": "?" + urlencode({**kept, "sort": wanted}),
                "arrow": ("▼" if descending else "▲") if current else "",
                "numeric": key in ("detections", "recordings", "max_score"),
            }
        )
    return columns


def _shown(row: summaries.SummaryRow, selection) -> dict:
    common, scientific = species_names(row.species)
    thresholds = selection.threshold_set.name if selection.threshold_set else None
    return {
        "row": row,
        "common_name": common,
        "scientific_name": scientific,
        "best_url": recording_url(
            row.recording_uuid,
            row.max_score_start_s,
            clip=row.max_score_clip,
            job=selection.job.uuid,
            thresholds=thresholds,
        ),
        "best_label": f"{row.recording_path.rsplit('/', 1)[-1]} {clock(row.max_score_start_s)}",
        "audio_url": reverse("clip-audio", args=[row.max_score_clip]),
    }


urlpatterns = [
    path("datasets/<uuid:dataset_uuid>/species/", dataset_species, name="species-summary-dataset"),
    path("jobs/<uuid:job_uuid>/species/", job_species, name="species-summary-job"),
]
