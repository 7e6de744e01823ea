"""A dataset's charts as PNG images (a species' activity by hour and date, its phenology, the top species side by
side, the recording effort per site) and the dataset page's charts section that shows them.

Every chart reads one report selection (reports.selection): the job named by ?job=, else the newest completed
job on the dataset; ?thresholds=, ?min_score=, ?verified= and ?timezone= as for the summaries and exports.
?site= narrows to one site of the dataset, ?download=1 sends the image as a file.
"""

from __future__ import annotations

import re
from collections import defaultdict
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from echoroo.media import login_required_401
from echoroo.models import Dataset, Site
from echoroo.pages import species_names
from inference.models import InferenceJob
from inference.queries import within_time_limit
from reports import activity
from reports.browsing import is_uuid, jobs_on
from reports.selection import ReportError, Selection, parse_zone, selection_from

# The species panels show this many species by default, and at most MAX_PANELS.
TOP_SPECIES = 12
MAX_PANELS = 40
# The page's species picker: this many species at most, and it gives up (a text box instead) past this long.
SPECIES_CHOICES = 500
SPECIES_CHOICES_MS = 3000
JOB_CHOICES = 50
# Charts of a finished job do not change; a few minutes in the browser's cache spare redrawing them.
CACHE_CONTROL = "private, max-age=300"
# What a chart's parameters may hold besides its own, passed through to the selection.
SELECTION_PARAMS = ("job", "thresholds", "min_score", "verified", "timezone")
# The dataset page's charts section reads these (and the selection's), and its other forms keep them.
SECTION_PARAMS = ("job", "chart_site", "species", "by", "thresholds", "min_score", "verified", "timezone")


# A chart's counting gives up past this (a busy server is not held by one image); the image then says so.
CHART_QUERY_MS = 30_000


class ChartError(ValueError):
    """A chart's parameter that names nothing: the image says which and why, with status 400."""


class TooSlow(Exception):
    """Counting took longer than CHART_QUERY_MS."""


def in_time(query):
    """query()'s result, or TooSlow when its SQL runs past CHART_QUERY_MS."""
    result = within_time_limit(query, CHART_QUERY_MS)
    if result is None:
        raise TooSlow
    return result


def site_of(dataset: Dataset, wanted: str) -> Site | None:
    """The dataset's site ?site= names by UUID (None: all sites)."""
    if not wanted:
        return None
    site = Site.objects.filter(dataset=dataset, uuid=wanted).first() if is_uuid(wanted) else None
    if site is None:
        raise ChartError(f"site: {dataset.name!r} has no site with UUID {wanted}")
    return site


def species_title(species: str) -> str:
    common, scientific = species_names(species)
    return f"{common} ({scientific})" if scientific else common


def where(site: Site | None) -> str:
    return f"site {site.name}" if site is not None else "all sites"


def job_text(selection: Selection) -> str:
    """Which detections a chart shows, in a line under it."""
    job = selection.job
    when = timezone.localtime(job.created_at).strftime("%Y-%m-%d %H:%M")
    text = f"Detections of the job {job.model_run.name} {job.model_run.version} of {when}"
    text += f" ({selection.chosen})" if selection.chosen else " (chosen by ?job=)"
    if selection.threshold_set is not None:
        text += f", passing the threshold set {selection.threshold_set.name}"
    if selection.min_score is not None:
        text += f", score at least {selection.min_score:g}"
    if selection.verified:
        text += ", verified correct only"
    return text


def unplaced_note(count: int, what: str) -> str:
    """Says what a chart by date leaves out: what (singular) lies on recordings with no start time."""
    if not count:
        return ""
    if count == 1:
        return f" 1 {what} on a recording with no start time is left out."
    return f" {count:,} {what}s on recordings with no start time are left out."


def png_response(request: HttpRequest, image: bytes, name: str, *, status: int = 200) -> HttpResponse:
    response = HttpResponse(image, content_type="image/png", status=status)
    if status == 200:
        response["Cache-Control"] = CACHE_CONTROL
    if request.GET.get("download") in ("1", "true", "yes"):
        response["Content-Disposition"] = f'attachment; filename="{name}.png"'
    return response


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "chart"


def chart_view(draw):
    """A chart's view: the dataset from the path, a 400 image for a parameter that names nothing."""

    @require_GET
    @login_required_401
    def view(request: HttpRequest, dataset_uuid) -> HttpResponse:
        dataset = get_object_or_404(Dataset, uuid=dataset_uuid)
        try:
            return draw(request, dataset)
        except (ChartError, ReportError) as error:
            from reports import charts

            return png_response(request, charts.message("This chart cannot be drawn", str(error)), "error", status=400)
        except TooSlow:
            from reports import charts

            text = "Too many detections to count in time: pick one site, one species or a threshold set"
            return png_response(request, charts.message("This chart cannot be drawn", text), "error", status=503)

    view.__name__ = draw.__name__
    view.__doc__ = draw.__doc__
    return view


def selection_for(request: HttpRequest, dataset: Dataset) -> Selection | None:
    """The selection the chart's parameters ask for; None when the dataset has no completed job to default to."""
    params = {name: request.GET.get(name, "") for name in SELECTION_PARAMS}
    try:
        return selection_from(params, dataset=dataset)
    except ReportError as error:
        if error.field == "dataset" and not params["job"]:
            return None
        raise


# matplotlib is imported when a chart is first drawn, not when the URLs load: it takes a second to import.


@chart_view
def activity_png(request: HttpRequest, dataset: Dataset) -> HttpResponse:
    """A species' detections (all species' without ?species=) by hour of day and date, grey where no recording
    the job finished was running."""
    from reports import charts

    site = site_of(dataset, request.GET.get("site", ""))
    species = request.GET.get("species", "").strip()
    title = f"{species_title(species) if species else 'All species'} · {where(site)}"
    name = f"{slug(dataset.name)}-activity-{slug(species or 'all-species')}"
    selection = selection_for(request, dataset)
    if selection is None:
        return png_response(request, charts.message(title, "No detections: no job has completed on this dataset"), name)
    rows = activity.selected(selection, site, species or None)
    counts = in_time(lambda: activity.by_date_and_hour(rows, selection.zone))
    effort = in_time(lambda: activity.effort(activity.on_site(selection.recordings, site), selection.zone))
    if not counts and not effort:
        return png_response(request, charts.message(title, "No detections"), name)
    note = job_text(selection) + "." + unplaced_note(activity.unplaced(rows), "detection")
    image = charts.activity_heatmap(counts, effort, title=title, zone=str(selection.zone), note=note)
    return png_response(request, image, name)


@chart_view
def phenology_png(request: HttpRequest, dataset: Dataset) -> HttpResponse:
    """A species' detections (all species' without ?species=) per day across the season, with the hours recorded."""
    from reports import charts

    site = site_of(dataset, request.GET.get("site", ""))
    species = request.GET.get("species", "").strip()
    title = f"{species_title(species) if species else 'All species'} per day · {where(site)}"
    name = f"{slug(dataset.name)}-phenology-{slug(species or 'all-species')}"
    selection = selection_for(request, dataset)
    if selection is None:
        return png_response(request, charts.message(title, "No detections: no job has completed on this dataset"), name)
    rows = activity.selected(selection, site, species or None)
    counts: dict = defaultdict(int)
    for (day, _), n in in_time(lambda: activity.by_date_and_hour(rows, selection.zone)).items():
        counts[day] += n
    effort = {
        day: seconds
        for (day, _), seconds in in_time(
            lambda: activity.effort(activity.on_site(selection.recordings, site), selection.zone, grain="day")
        ).items()
    }
    if not counts and not effort:
        return png_response(request, charts.message(title, "No detections"), name)
    note = job_text(selection) + "." + unplaced_note(activity.unplaced(rows), "detection")
    return png_response(request, charts.phenology(dict(counts), effort, title=title, note=note), name)


@chart_view
def species_png(request: HttpRequest, dataset: Dataset) -> HttpResponse:
    """The top species side by side (?top=, 12 by default), each by hour of day (?by=hour) or date (?by=day)."""
    from reports import charts

    site = site_of(dataset, request.GET.get("site", ""))
    grain = request.GET.get("by", "hour")
    if grain not in activity.GRAINS:
        raise ChartError(f"by: give hour or day, not {grain!r}")
    try:
        top = min(max(int(request.GET.get("top", TOP_SPECIES)), 1), MAX_PANELS)
    except ValueError:
        raise ChartError(f"top: give a number of species from 1 to {MAX_PANELS}") from None
    title = f"The species detected most · {where(site)}"
    name = f"{slug(dataset.name)}-species-by-{grain}"
    selection = selection_for(request, dataset)
    if selection is None:
        return png_response(request, charts.message(title, "No detections: no job has completed on this dataset"), name)
    rows = activity.selected(selection, site)
    # Ranked by the detections the panels can place: those on recordings with a start time.
    found = in_time(lambda: activity.top_species(activity.dated(rows), top))
    if not found:
        return png_response(request, charts.message(title, "No detections"), name)
    counts = in_time(lambda: activity.species_by(rows, [species for species, _ in found], grain, selection.zone))
    panels = [(species_names(species)[0], total, counts[species]) for species, total in found]
    title = f"The {len(panels)} species detected most · {where(site)}" if len(panels) > 1 else title
    note = job_text(selection) + "." + unplaced_note(activity.unplaced(rows), "detection")
    image = charts.species_panels(panels, grain=grain, title=title, zone=str(selection.zone), note=note)
    return png_response(request, image, name)


@chart_view
def effort_png(request: HttpRequest, dataset: Dataset) -> HttpResponse:
    """When the dataset's recorders were running: hours recorded per site and day (every recording, analysed or
    not)."""
    from reports import charts

    zone = parse_zone(request.GET.get("timezone"))
    title = f"Recording effort · {dataset.name}"
    name = f"{slug(dataset.name)}-effort"
    recordings = dataset.recordings.all()
    by_site = in_time(lambda: activity.effort(recordings, zone, grain="day", by_site=True))
    if not by_site:
        return png_response(request, charts.message(title, "No recordings with a start time"), name)
    names = dict(Site.objects.filter(dataset=dataset).values_list("pk", "name"))
    rows: dict = defaultdict(dict)
    for (site_id, day, _), seconds in by_site.items():
        rows[site_id][day] = seconds
    order = sorted(rows, key=lambda site_id: (site_id is None, names.get(site_id, "")))
    sites = [(names[site_id] if site_id is not None else "(no site)", rows[site_id]) for site_id in order]
    undated = activity.unplaced_recordings(recordings)
    note = f"Dates in {zone}." + (f" Recordings with no start time left out: {undated:,}." if undated else "")
    return png_response(request, charts.effort_by_site(sites, title=title, note=note), name)


# --- The dataset page's charts section -----------------------------------------------------------------------


def charts_section(request: HttpRequest, dataset: Dataset, sites: list[Site]) -> dict:
    """What the dataset page's charts section shows: its pickers (job, site, species) and the charts' URLs."""
    wanted = {name: request.GET.get(name, "").strip() for name in ("job", "chart_site", "species", "by")}
    jobs = list(
        jobs_on(dataset)
        .filter(status=InferenceJob.Status.COMPLETED)
        .select_related("model_run")
        .order_by("-created_at", "-pk")[:JOB_CHOICES]
    )
    section = {"jobs": jobs, "wanted": wanted, "error": "", "species_choices": None, "selection": None}
    site = next((site for site in sites if str(site.uuid) == wanted["chart_site"]), None)
    if site is None:
        wanted["chart_site"] = ""
    if wanted["by"] not in activity.GRAINS:
        wanted["by"] = "hour"
    common = {"site": wanted["chart_site"], "job": wanted["job"]}
    common.update({name: request.GET.get(name, "") for name in SELECTION_PARAMS if name != "job"})
    section["effort_url"] = chart_url(dataset, "dataset-chart-effort", timezone=common["timezone"])
    try:
        selection = selection_from({name: common.get(name, "") for name in SELECTION_PARAMS}, dataset=dataset)
    except ReportError as error:
        section["error"] = str(error) if wanted["job"] else ""
        return section
    section["selection"] = selection
    section["job_text"] = job_text(selection)
    choices = within_time_limit(
        lambda: activity.top_species(activity.dated(activity.selected(selection, site)), SPECIES_CHOICES),
        SPECIES_CHOICES_MS,
    )
    if choices is not None:
        section["species_choices"] = [(value, f"{species_names(value)[0]} ({n:,})") for value, n in choices]
        if not wanted["species"] and choices:
            # The species detected most is the one shown until another is picked.
            wanted["species"] = choices[0][0]
    section["species_url"] = chart_url(dataset, "dataset-chart-species", by=wanted["by"], **common)
    if wanted["species"]:
        section["species_name"] = species_title(wanted["species"])
        section["activity_url"] = chart_url(dataset, "dataset-chart-activity", species=wanted["species"], **common)
        section["phenology_url"] = chart_url(dataset, "dataset-chart-phenology", species=wanted["species"], **common)
    return section


def chart_url(dataset: Dataset, name: str, **params) -> str:
    query = urlencode({key: value for key, value in params.items() if value})
    url = reverse(name, args=[dataset.uuid])
    return f"{url}?{query}" if query else url
