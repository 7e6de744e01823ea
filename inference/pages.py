"""The jobs pages: the list with live progress, a job's page with its recordings and species, and a start form.

Starting, cancelling and retrying call inference.services as the person acting, like the admin and
the API; the form is the admin's InferenceJobForm, so the same settings are checked the same way.
"""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotations.job_page import against_annotations
from echoroo.formatting import duration_text
from echoroo.media import login_required_401
from echoroo.models import Dataset, Recording
from echoroo.pages import (
    clock,
    may_start_jobs,
    page_login_required,
    pick_threshold_set,
    recording_url,
    species_names,
)
from inference import services
from inference.config import ConfigError
from inference.describe import (
    JobState,
    job_state,
    settings_in_words,
    species_filter_place,
    uses_species_filter,
    windows_text,
)
from inference.forms import InferenceJobForm
from inference.job_lists import jobs_queryset, with_progress
from inference.models import InferenceJob, JobRecording
from inference.queries import (
    best_clips,
    left_unfinished,
    recording_counts,
    shown_job_recordings,
    species_summary,
    within_time_limit,
)
from inference.runtimes import DEFAULT_RUNTIME
from validation.evaluation import evaluate_job
from validation.models import ThresholdSet, Verdict

JOBS_PER_PAGE = 50
# The job page lists at most this many recordings (all of them, or the failed and running first).
RECORDING_ROWS = 200
TOP_SPECIES = 30
# The species summary of a huge job gives up rather than hold the page.
SPECIES_TIME_LIMIT_MS = 3000
# Progress asked for at once by one poll: a page of the job list.
MAX_POLLED_JOBS = 100
# A recording field lists this many paths to pick from as you type; any other is typed in full.
RECORDING_SUGGESTIONS = 200


def progress(job: InferenceJob, state: JobState | None = None) -> dict:
    """What a progress bar shows of a job; the same for the page and for the JSON the page polls. `state`: the job's
    state in words (job_state, which needs its failed and cancelled recordings counted), else its bare status."""
    state = state or job_state(job)
    return {
        "uuid": str(job.uuid),
        "status": job.status,
        "status_text": state.text,
        "status_tone": state.tone,
        "finished": job.is_finished,
        "progress": round(job.progress, 1),
        # Rounded down: a job at 99.6 % is not done.
        "percent": int(job.progress),
        "processed_clips": job.processed_clips,
        "total_clips": job.total_clips,
        "duration": duration_text(job.duration_s),
        "error_message": job.error_message,
        # What a worker does before progress counts, e.g. "preparing the model"; only while the job runs.
        "activity": job.activity if job.status == InferenceJob.Status.RUNNING else "",
    }


@require_GET
@page_login_required
def job_list(request: HttpRequest) -> HttpResponse:
    """Every job, newest first, with progress bars the page keeps up to date."""
    jobs = jobs_queryset()
    status = request.GET.get("status", "")
    if status in InferenceJob.Status.values:
        jobs = jobs.filter(status=status)
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "jobs": with_progress(page.object_list),
        "status": status,
        "status_query": urlencode({"status": status}) if status else "",
        "statuses": InferenceJob.Status.values,
        "can_start_jobs": may_start_jobs(request.user),
    }
    return render(request, "pages/jobs.html", context)


@never_cache
@require_GET
@login_required_401
def job_progress(request: HttpRequest) -> JsonResponse:
    """{"jobs": [progress of each ?job=<uuid>]}: what the pages poll every two seconds."""
    wanted = []
    for value in request.GET.getlist("job")[:MAX_POLLED_JOBS]:
        try:
            wanted.append(uuid.UUID(value))
        except ValueError:
            return JsonResponse({"job": f"{value!r} is not a job's UUID"}, status=400)
    jobs = list(InferenceJob.objects.filter(uuid__in=wanted))
    left = left_unfinished([job.pk for job in jobs])
    return JsonResponse({"jobs": [progress(job, job_state(job, *left.get(job.pk, (0, 0)))) for job in jobs]})


@require_GET
@page_login_required
def job_page(request: HttpRequest, job_uuid) -> HttpResponse:
    """A job: its progress, settings, recordings (capped) and the species it found with links to the best clips;
    with ?thresholds=<set name>, only the detections passing that threshold set."""
    job = get_object_or_404(jobs_queryset().select_related("created_by"), uuid=job_uuid)
    wanted_set = request.GET.get("thresholds", "").strip()
    threshold_set, threshold_set_names, unknown_thresholds = pick_threshold_set(wanted_set)
    # Links to the recordings keep the set applied.
    thresholds = threshold_set.name if threshold_set else None
    states = recording_counts(job)
    total = sum(state["recordings"] for state in states)
    rows = shown_job_recordings(job, total, RECORDING_ROWS)
    config = job.settings
    for row in rows:
        # A recording the job finished opens on this job's detections; any other on its newest job's.
        done = row.status == JobRecording.Status.DONE
        row.url = recording_url(row.recording.uuid, job=job.uuid if done else None, thresholds=thresholds)
        row.windows, row.windows_note = windows_text(row.status, row.processed_clips, row.total_clips)
        row.place = species_filter_place(job, config, row.recording)
    by_status = {state["status"]: state for state in states}
    left = [by_status.get(status, {}) for status in (JobRecording.Status.FAILED, JobRecording.Status.CANCELLED)]
    for state in states:
        state["windows"], state["windows_note"] = windows_text(state["status"], state["processed"], state["total"])

    def found() -> list[dict]:
        summary = list(species_summary(job, TOP_SPECIES, threshold_set))
        best = best_clips(job, [row["tag__value"] for row in summary], threshold_set=threshold_set)
        for row in summary:
            row["common_name"], row["scientific_name"] = species_names(row["tag__value"])
            row["best"] = [
                {
                    **clip,
                    "url": recording_url(
                        clip["recording_uuid"],
                        clip["start_time"],
                        clip=clip["clip_uuid"],
                        job=job.uuid,
                        thresholds=thresholds,
                    ),
                    # One recording: its times are enough; a dataset: the file's name too.
                    "label": clock(clip["start_time"])
                    if job.recording_id
                    else f"{PurePosixPath(clip['recording_path']).name} {clock(clip['start_time'])}",
                    "audio_url": reverse("clip-audio", args=[clip["clip_uuid"]]),
                }
                for clip in best.get(row["tag__value"], [])
            ]
        return summary

    context = {
        "job": job,
        "job_progress": progress(job, job_state(job, *(state.get("recordings", 0) for state in left))),
        # Windows of recordings that failed or were cancelled: counted in the total, never as processed.
        "windows_not_kept": sum(state.get("total") or 0 for state in left),
        "recording_states": states,
        "recording_total": total,
        "reused_total": sum(state["reused"] for state in states),
        "recording_rows": rows,
        "recording_rows_are_all": total <= RECORDING_ROWS,
        "species": within_time_limit(found, SPECIES_TIME_LIMIT_MS),
        "species_limit": TOP_SPECIES,
        "evaluation": within_time_limit(lambda: evaluation_table(job, threshold_set), SPECIES_TIME_LIMIT_MS),
        # Its detections against the annotations of its recordings (annotations.evaluation), at a picked threshold.
        "against_annotations": within_time_limit(
            lambda: against_annotations(job, request.GET.get("against")), SPECIES_TIME_LIMIT_MS
        ),
        "settings_words": settings_in_words(job),
        "shows_places": uses_species_filter(job, config),
        "can_change": job.can_be_changed_by(request.user),
        "can_retry": job.is_finished and any(state["status"] in ("failed", "cancelled") for state in states),
        "threshold_set": threshold_set,
        "threshold_set_names": threshold_set_names,
        "unknown_thresholds": wanted_set if unknown_thresholds else "",
        # The review and calibration pages (validation.review_pages) by path, and a set filled from this job.
        "review_url": f"/validation/jobs/{job.uuid}/review/",
        "calibration_url": f"/validation/jobs/{job.uuid}/calibration/",
        "fill_thresholds_url": reverse("threshold-sets") + "?" + urlencode({"job": job.uuid}),
    }
    return render(request, "pages/job.html", context)


def evaluation_table(job: InferenceJob, threshold_set: ThresholdSet | None) -> dict:
    """The job page's evaluation: per species with verdicts, the counts, the share correct per score bin, the
    threshold (the set's, else the job's) and the estimated precision of the detections at or above it."""
    evaluation = evaluate_job(job, threshold_set)
    rows = []
    for species in evaluation.species:
        common, scientific = species_names(species.species)
        bins = []
        for score_bin in species.bins:
            share = score_bin.share_correct
            judged = sum(n for verdict, n in score_bin.verdicts.items() if verdict != Verdict.Value.UNSURE)
            bins.append(
                {
                    "share": f"{round(100 * share)}%" if share is not None else "–",
                    "title": f"scores {score_bin.low:.2f}–{score_bin.high:.2f}: {score_bin.verdicts['correct']} of "
                    f"{judged} judged correct (unsure left out), {score_bin.detections} detections",
                }
            )
        rows.append(
            {
                "common_name": common,
                "scientific_name": scientific,
                "detections": species.detections,
                "verdicts": species.verdicts,
                "bins": bins,
                "threshold": species.threshold,
                "detections_at_threshold": species.detections_at_threshold,
                "precision": species.precision_at_threshold,
                "calibrated": species.calibration.thresholds if species.calibration else None,
                "problem": species.calibration_problem,
            }
        )
    return {"bin_edges": evaluation.bin_edges[:-1], "species": rows}


def job_action(service, done: str):
    """A POST that calls one service on a job as the person acting, then goes back to the job's page."""

    @require_POST
    @page_login_required
    def view(request: HttpRequest, job_uuid) -> HttpResponse:
        job = get_object_or_404(InferenceJob, uuid=job_uuid)
        try:  # the service decides who may (its PermissionDenied is a 403) and says why a job's state refuses
            service(job, by=request.user)
        except ConfigError as error:
            messages.error(request, "; ".join(error.errors.values()))
        else:
            messages.success(request, done)
        return redirect("job", job_uuid=job.uuid)

    view.__name__ = f"{service.__name__}_view"
    return view


start_job = job_action(services.start_job, "Started: the workers take its recordings one by one.")
cancel_job = job_action(services.cancel_job, "Cancelled: finished recordings keep their results.")
retry_job = job_action(services.retry_failed, "Retrying its failed and cancelled recordings.")


# --- Starting a job -------------------------------------------------------------------------------


class TargetForm(forms.Form):
    """What a new job runs on: a whole dataset, or one recording (by UUID or path)."""

    target = forms.ChoiceField(
        choices=[("dataset", "A dataset"), ("recording", "A recording")], initial="dataset", widget=forms.RadioSelect
    )
    dataset = forms.ModelChoiceField(Dataset.objects.all(), required=False, to_field_name="uuid")
    recording = forms.CharField(
        required=False,
        help_text="Its UUID, or its path under AUDIO_ROOT as the recording list shows it.",
        widget=forms.TextInput(attrs={"list": "recording-paths", "size": 60}),
    )

    def clean(self) -> dict:
        data = super().clean()
        if data.get("target") == "dataset":
            if not data.get("dataset"):
                self.add_error("dataset", "Pick the dataset to run the model on.")
            data["recording"] = None
        elif data.get("target") == "recording":
            data["dataset"] = None
            data["recording"] = self.find_recording(data.get("recording") or "")
        return data

    def find_recording(self, text: str) -> Recording | None:
        text = text.strip()
        if not text:
            self.add_error("recording", "Give the recording's UUID or path.")
            return None
        try:
            matches = list(Recording.objects.filter(uuid=uuid.UUID(text))[:2])
        except ValueError:
            matches = list(Recording.objects.filter(path=text).select_related("dataset")[:2])
        if len(matches) == 1:
            return matches[0]
        if matches:
            self.add_error("recording", "Recordings of several datasets have this path: give the recording's UUID.")
        else:
            self.add_error("recording", f"No recording has the UUID or path {text!r}.")
        return None


@require_http_methods(["GET", "POST"])
@page_login_required
def new_job(request: HttpRequest) -> HttpResponse:
    """The admin's job form with a target: creates the job, starts it when asked, and shows its page."""
    if not services.may_create_jobs(request.user):
        raise PermissionDenied("log in to create jobs")
    if request.method == "POST":
        target_form = TargetForm(request.POST)
        form = InferenceJobForm(request.POST)
        # Both forms are checked, and the settings by the service too: every error shows at once.
        target_parsed, settings_parsed = target_form.is_valid(), form.is_valid()
        if not (target_parsed and settings_parsed):
            form.check_the_rest()
        else:
            try:
                job = services.create_job(
                    **form.job_arguments(),
                    dataset=target_form.cleaned_data["dataset"],
                    recording=target_form.cleaned_data["recording"],
                    start=form.cleaned_data["start_now"],
                    by=request.user,
                )
            except ConfigError as error:
                target_errors = {
                    name: error.errors.pop(name) for name in ("dataset", "recording") if name in error.errors
                }
                for name, message in target_errors.items():
                    target_form.add_error(name, message)
                form.add_config_error(error)
            else:
                messages.success(request, "Started the job." if job.status != "pending" else "Created the job.")
                return redirect("job", job_uuid=job.uuid)
    else:
        initial = {}
        if request.GET.get("recording"):
            initial = {"target": "recording", "recording": request.GET["recording"]}
        elif request.GET.get("dataset"):
            initial = {"target": "dataset", "dataset": request.GET["dataset"]}
        target_form = TargetForm(initial=initial)
        form = InferenceJobForm(initial={"model_name": request.GET.get("model", DEFAULT_RUNTIME)})
    context = {
        "target_form": target_form,
        "form": form,
        "recording_paths": Recording.objects.order_by("path").values_list("path", flat=True)[:RECORDING_SUGGESTIONS],
    }
    return render(request, "pages/job_new.html", context)
