"""The pages that browse datasets: every dataset with its totals, and a dataset with its sites, charts and
recordings (filtered, in keyset pages), and their URLs."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_GET

from echoroo.formatting import duration_text
from echoroo.models import Dataset, Recording
from echoroo.pages import may_start_jobs, page_login_required
from reports import chart_pages
from reports.browsing import (
    NO_SITE,
    NOT_ANALYSED,
    RecordingFilters,
    dataset_overview,
    datasets_with_totals,
    model_runs_on,
    recording_page,
    with_latest_job,
)

# What a recording's model runs read as, by the status of its jobs there.
RUN_STATUS_TEXT = {"done": "✓", "failed": "failed", "running": "running", "pending": "queued", "cancelled": "cancelled"}


@require_GET
@page_login_required
def dataset_list(request: HttpRequest) -> HttpResponse:
    """Every dataset with its sites, recordings, hours, dates and latest job."""
    context = {"datasets": with_latest_job(datasets_with_totals()), "can_start_jobs": may_start_jobs(request.user)}
    return render(request, "reports/dataset_list.html", context)


def recording_link(recording: Recording, filters: RecordingFilters) -> str:
    """The recording's page, keeping the list's filters so that its previous/next links walk the same list."""
    query = urlencode(filters.params())
    url = reverse("recording", args=[recording.uuid])
    return f"{url}?{query}" if query else url


def recording_row(recording: Recording, filters: RecordingFilters) -> Recording:
    recording.link = recording_link(recording, filters)
    recording.duration_text = duration_text(recording.duration)
    recording.runs = [
        {**run, "text": RUN_STATUS_TEXT.get(run["status"], run["status"])}
        for run in sorted(recording.model_runs or [], key=lambda run: (run["name"], run["version"]))
    ]
    return recording


def page_query(filters: RecordingFilters, kept: dict[str, str], **cursor) -> str:
    """The query string of a page of recordings: its filters, the charts' choices (kept), and where it starts."""
    return urlencode({**filters.params(), **kept, **cursor})


@require_GET
@page_login_required
def dataset_page(request: HttpRequest, dataset_uuid) -> HttpResponse:
    """A dataset: its totals, sites, charts and recordings (filtered by site, model run, dates and path)."""
    try:
        dataset, sites, unsited = dataset_overview(dataset_uuid)
    except Dataset.DoesNotExist:
        raise Http404("No dataset has this UUID.") from None
    filters, ignored = RecordingFilters.from_query(request.GET)
    page = recording_page(
        dataset,
        filters,
        start_after=request.GET.get("after", ""),
        end_before=request.GET.get("before", ""),
        last=request.GET.get("last") == "1",
    )
    page.recordings = [recording_row(recording, filters) for recording in page.recordings]
    for site in [dataset, *sites]:
        site.audio_text = duration_text(site.hours * 3600)
    # The charts' pickers keep the recordings' filters and page, and the reverse.
    chart_params = {name: request.GET.get(name, "") for name in chart_pages.SECTION_PARAMS}
    chart_params = {name: value for name, value in chart_params.items() if value}
    list_params = {**filters.params(), **{name: request.GET.get(name, "") for name in ("after", "before", "last")}}
    context = {
        "dataset": dataset,
        "sites": sites,
        "unsited_recordings": unsited.recordings_count,
        "page": page,
        "filters": filters,
        "ignored": ignored,
        "model_runs": list(model_runs_on(dataset)),
        "not_analysed": NOT_ANALYSED,
        "no_site": NO_SITE,
        "first_query": page_query(filters, chart_params),
        "previous_query": page_query(filters, chart_params, before=page.previous_cursor or ""),
        "next_query": page_query(filters, chart_params, after=page.next_cursor or ""),
        "last_query": page_query(filters, chart_params, last="1"),
        "clear_query": urlencode(chart_params),
        "chart_params": chart_params,
        "list_params": {name: value for name, value in list_params.items() if value},
        "charts": chart_pages.charts_section(request, dataset, sites),
        "summary_url": reverse("species-summary-dataset", args=[dataset.uuid]),
        "can_start_jobs": may_start_jobs(request.user),
    }
    return render(request, "reports/dataset.html", context)


urlpatterns = [
    path("datasets/", dataset_list, name="datasets"),
    path("datasets/<uuid:dataset_uuid>/", dataset_page, name="dataset"),
    path("datasets/<uuid:dataset_uuid>/charts/activity.png", chart_pages.activity_png, name="dataset-chart-activity"),
    path(
        "datasets/<uuid:dataset_uuid>/charts/phenology.png", chart_pages.phenology_png, name="dataset-chart-phenology"
    ),
    path("datasets/<uuid:dataset_uuid>/charts/species.png", chart_pages.species_png, name="dataset-chart-species"),
    path("datasets/<uuid:dataset_uuid>/charts/effort.png", chart_pages.effort_png, name="dataset-chart-effort"),
]
