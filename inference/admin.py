"""The admin of inference jobs: "Run <model>…" on datasets and recordings, one per runtime, and the jobs' progress."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from echoroo.admin import BigTableAdmin, DatasetAdmin, DeletesInDatabase, RecordingAdmin, changelist_link, job_time
from echoroo.formatting import duration_text
from echoroo.models import ClipPrediction, Dataset, Recording, SoundEventPrediction
from inference import services
from inference.config import ConfigError
from inference.describe import job_state, settings_in_words, windows_text
from inference.forms import InferenceJobForm
from inference.models import InferenceJob, JobRecording
from inference.queries import (
    TOP_SPECIES,
    recording_counts,
    shown_job_recordings,
    species_summary,
    within_time_limit,
)
from inference.runtimes import available_runtimes, runtime_class

# One job per selected row: past this, running a whole dataset is the better action.
MAX_TARGETS = 1000
SHOWN_TARGETS = 20
# The job page lists at most this many recordings; the JobRecording list pages through the rest.
RECORDING_ROWS = 200
# The top-species summary of a huge job gives up rather than hold the page.
TOP_SPECIES_TIME_LIMIT_MS = 3000
FORM_FIELDSETS = (
    ("Detection", ("confidence_threshold", "sensitivity", "custom_species_list")),
    ("Windows", ("overlap", "batch_size", "use_gpu")),
    ("Location filter", ("use_metadata_filter", "species_filter_threshold", "latitude", "longitude", "week")),
    ("What to store", ("store_predictions", "store_embeddings")),
    (None, ("start_now",)),
)
STATUS_COLOURS = {
    "pending": "#666",
    "running": "#1f6fb2",
    "completed": "#1e7d32",
    "done": "#1e7d32",
    "failed": "#c62828",
    "cancelled": "#b26a00",
    # Completed, with recordings failed or cancelled (inference.describe.job_state).
    "partial": "#b26a00",
}


def status_html(status: str, text: str | None = None) -> str:
    """A status in its colour; `status` may be a tone of inference.describe.job_state, with its words as `text`."""
    return format_html('<strong style="color: {}">{}</strong>', STATUS_COLOURS.get(status, "inherit"), text or status)


def progress_html(percent: float) -> str:
    # Rounded down: a job at 99.6 % is not done.
    return format_html('<progress max="100" value="{}"></progress> {} %', f"{percent:.1f}", int(percent))


def clip_figures(processed: int, total: int, status: str = "") -> str:
    """ "12 / 20"; of a failed or cancelled recording, "none of 20 kept" (inference.describe.windows_text)."""
    return windows_text(status, processed, total)[0]


def admin_link(instance, text: str) -> str:
    url = reverse(f"admin:{instance._meta.app_label}_{instance._meta.model_name}_change", args=[instance.pk])
    return format_html('<a href="{}">{}</a>', url, text)


def error_reason(error: ConfigError | PermissionDenied) -> str:
    return "; ".join(error.errors.values()) if isinstance(error, ConfigError) else str(error)


# --- "Run <model>…" on datasets and recordings: one action per runtime ----------------------------


def run_model(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, *, model_name: str):
    """The action: a settings form first, then one job per selected dataset or recording."""
    label = runtime_class(model_name).display_name
    if not services.may_create_jobs(request.user):
        model_admin.message_user(request, "You may not create inference jobs.", messages.ERROR)
        return None
    targets = list(queryset[: MAX_TARGETS + 1])
    if len(targets) > MAX_TARGETS:
        model_admin.message_user(
            request,
            f"Select at most {MAX_TARGETS:,} {queryset.model._meta.verbose_name_plural} (one job each); "
            f"to run a whole dataset, select it in the dataset list.",
            messages.ERROR,
        )
        return None
    if "run" in request.POST:
        form = InferenceJobForm(request.POST, model_name=model_name)
        if not form.is_valid():
            form.check_the_rest()  # every error at once
        else:
            start = form.cleaned_data["start_now"]
            try:  # every job or none, created and started in one transaction: one bad setting fails them all alike
                jobs = services.create_jobs(**form.job_arguments(), targets=targets, start=start, by=request.user)
            except ConfigError as error:
                form.add_config_error(error)
            else:
                say_what_was_created(model_admin, request, jobs, label, started=start)
                return None
    else:
        form = InferenceJobForm(model_name=model_name)

    shown = [(name, [field for field in fields if field in form.fields]) for name, fields in FORM_FIELDSETS]
    fieldsets = [(name, {"fields": fields}) for name, fields in shown if fields]
    request.current_app = model_admin.admin_site.name
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Run {label}",
        "opts": queryset.model._meta,
        "model_label": label,
        "adminform": helpers.AdminForm(form, fieldsets, {}),
        "targets": targets[:SHOWN_TARGETS],
        "more_targets": len(targets) - SHOWN_TARGETS,
        "target_count": len(targets),
        "action_name": f"run_{model_name}",
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "admin/inference/run_model.html", context)


def say_what_was_created(model_admin, request: HttpRequest, jobs: list[InferenceJob], label: str, *, started: bool):
    """Say what was created (and started), with a link to each job."""
    links = format_html_join(", ", "{}", ((admin_link(job, str(job)),) for job in jobs[:SHOWN_TARGETS]))
    more = f" and {len(jobs) - SHOWN_TARGETS} more" if len(jobs) > SHOWN_TARGETS else ""
    what = f"{len(jobs)} {label} job" + ("" if len(jobs) == 1 else "s")
    if started:
        message = format_html("Created and started {}: {}{}", what, links, more)
    else:
        message = format_html("Created {}, pending until started from the job list: {}{}", what, links, more)
    model_admin.message_user(request, message, messages.SUCCESS)


def run_model_action(model_name: str):
    """The action "Run <model>…", named run_<name> (its value in the action form)."""

    def action(model_admin, request, queryset):
        return run_model(model_admin, request, queryset, model_name=model_name)

    action.__name__ = f"run_{model_name}"
    return admin.action(description=f"Run {runtime_class(model_name).display_name}…")(action)


class RunsModels:
    """A dataset or recording admin with one "Run <model>…" action per registered runtime, added here, where jobs
    live; read from the registry when asked, so a new runtime has its action with no change here."""

    @property
    def actions(self) -> tuple:
        return (*(super().actions or ()), *(run_model_action(name) for name in available_runtimes()))


class DatasetWithJobsAdmin(RunsModels, DatasetAdmin):
    pass


class RecordingWithJobsAdmin(RunsModels, RecordingAdmin):
    pass


admin.site.unregister(Dataset)
admin.site.register(Dataset, DatasetWithJobsAdmin)
admin.site.unregister(Recording)
admin.site.register(Recording, RecordingWithJobsAdmin)


# --- What a job found, and where it stands ------------------------------------------------------


def top_species(job: InferenceJob) -> list[dict] | None:
    """species_summary's rows (one aggregate query), or None when it takes over TOP_SPECIES_TIME_LIMIT_MS."""
    return within_time_limit(lambda: list(species_summary(job)), TOP_SPECIES_TIME_LIMIT_MS)


def recording_states(job: InferenceJob) -> dict:
    """The job's recordings counted by status, and at most RECORDING_ROWS of them: all, or the failed and running."""
    states = recording_counts(job)
    counts = {state["status"]: state["recordings"] for state in states}
    total = sum(counts.values())
    shown = shown_job_recordings(job, total, RECORDING_ROWS)
    for row in shown:
        row.status_html = status_html(row.status)
        row.clips = clip_figures(row.processed_clips, row.total_clips, row.status)
    for state in states:
        state["status_html"] = status_html(state["status"])
        state["clips"] = clip_figures(state["processed"] or 0, state["total"] or 0, state["status"])
    browse = reverse("admin:inference_jobrecording_changelist") + f"?job__id__exact={job.pk}"
    return {
        "recording_states": states,
        "recording_total": total,
        "recording_rows": shown,
        "recording_rows_are_all": total <= RECORDING_ROWS,
        "recording_browse_url": browse,
        "failed_total": counts.get(JobRecording.Status.FAILED, 0),
        "reused_total": sum(state["reused"] for state in states),
    }


@admin.register(InferenceJob)
class InferenceJobAdmin(DeletesInDatabase, BigTableAdmin):
    list_display = (
        "model_label",
        "target",
        "status_label",
        "progress_bar",
        "clips",
        "duration",
        "created_by",
        "created_at",
    )
    list_display_links = ("model_label",)
    list_filter = ("status", "model_run")
    list_select_related = ("model_run", "dataset", "recording", "created_by")
    # A small table: sorting by these is cheap.
    sortable_by = ("model_label", "status_label", "created_at")
    search_fields = ("dataset__name",)
    search_help_text = "A job's UUID, or part of its dataset's name."
    actions = ("start_jobs", "cancel_jobs", "retry_failed_jobs")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "uuid",
                    "model_run",
                    "target",
                    "status_label",
                    "progress_bar",
                    "clips",
                    "detections",
                    "error_message",
                )
            },
        ),
        ("Times", {"fields": ("created_by", "created_at", "started_at", "completed_at", "duration")}),
        ("Settings", {"fields": ("config_json",)}),
    )
    readonly_fields = tuple(name for _, options in fieldsets for name in options["fields"])

    # Jobs are created by the "Run <model>…" actions of datasets and recordings,
    # and change only through the actions below: the job page is read-only.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, job=None) -> bool:
        return job is None and super().has_change_permission(request)

    @admin.display(description="model", ordering="model_run__name")
    def model_label(self, job: InferenceJob) -> str:
        return f"{job.model_run.name} {job.model_run.version}"

    @admin.display(description="target")
    def target(self, job: InferenceJob) -> str:
        if job.dataset_id:
            return format_html("dataset {}", admin_link(job.dataset, job.dataset.name))
        return format_html("recording {}", admin_link(job.recording, job.recording.path))

    def get_queryset(self, request):
        # Subqueries, evaluated for the rows shown only: what a completed job left failed or cancelled.
        def left(status: str) -> Coalesce:
            rows = JobRecording.objects.filter(job=OuterRef("pk"), status=status).order_by().values("job")
            return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")), 0)

        return (
            super()
            .get_queryset(request)
            .annotate(failed_recordings=left(JobRecording.Status.FAILED))
            .annotate(cancelled_recordings=left(JobRecording.Status.CANCELLED))
        )

    @admin.display(description="status", ordering="status")
    def status_label(self, job: InferenceJob) -> str:
        state = job_state(job, job.failed_recordings, job.cancelled_recordings)
        return status_html(state.tone, state.text)

    @admin.display(description="progress")
    def progress_bar(self, job: InferenceJob) -> str:
        return progress_html(job.progress)

    @admin.display(description="clips processed / total")
    def clips(self, job: InferenceJob) -> str:
        return clip_figures(job.processed_clips, job.total_clips)

    @admin.display(description="detections")
    def detections(self, job: InferenceJob) -> str:
        """This job's own rows (its windows and its merged detections), not its model run's on the same recordings."""
        windows = changelist_link(ClipPrediction, "window detections", job__id__exact=job.pk)
        merged = changelist_link(SoundEventPrediction, "merged detections", job__id__exact=job.pk)
        return format_html("{} · {}", windows, merged)

    @admin.display(description="duration")
    def duration(self, job: InferenceJob) -> str:
        return duration_text(job.duration_s)

    @admin.display(description="settings")
    def config_json(self, job: InferenceJob) -> str:
        # In words, then every setting as stored, in InferenceConfig's order, those left out at their defaults.
        words = " · ".join(settings_in_words(job))
        return format_html("<p>{}</p><pre>{}</pre>", words, json.dumps(job.settings.as_json(), indent=2))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(recording_states(obj), top_species=top_species(obj), top_species_limit=TOP_SPECIES)
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- Actions: each calls its service as the person acting, and says what happened ---------

    @admin.action(description="Start the selected pending jobs", permissions=["change"])
    def start_jobs(self, request, queryset):
        self.apply(request, queryset, services.start_job, "start", "Started {}.")

    @admin.action(description="Cancel the selected jobs", permissions=["change"])
    def cancel_jobs(self, request, queryset):
        self.apply(request, queryset, services.cancel_job, "cancel", "Cancelled {}.")

    @admin.action(description="Retry the failed recordings of the selected jobs", permissions=["change"])
    def retry_failed_jobs(self, request, queryset):
        self.apply(request, queryset, services.retry_failed, "retry", "Retrying the failed recordings of {}.")

    def apply(self, request, queryset, service, verb: str, done_message: str) -> None:
        """Call the service on each job; one it refuses (its state, or who asks) is an error saying why."""
        changed = 0
        for job in queryset:
            try:
                service(job, by=request.user)
            except (ConfigError, PermissionDenied) as error:
                self.message_user(request, f"Could not {verb} {job}: {error_reason(error)}", messages.ERROR)
            else:
                changed += 1
        if changed:
            self.message_user(request, done_message.format(plural_jobs(changed)), messages.SUCCESS)


def plural_jobs(n: int) -> str:
    return f"{n} job" if n == 1 else f"{n} jobs"


@admin.register(JobRecording)
class JobRecordingAdmin(BigTableAdmin):
    """Read-only pages through a job's recordings, linked from the job page (filtered to the job)."""

    list_display = (
        "recording",
        "job_link",
        "status_label",
        "clips",
        "reused",
        "attempts",
        "error_message",
        "finished_at",
    )
    list_filter = ("status", "reused")
    list_select_related = ("recording", "job__model_run")
    search_fields = ("^recording__path",)
    search_help_text = "A recording's path prefix."
    readonly_fields = ()

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, job_recording=None) -> bool:
        return False

    def has_delete_permission(self, request, job_recording=None) -> bool:
        return False

    @admin.display(description="job")
    def job_link(self, job_recording: JobRecording) -> str:
        url = reverse("admin:inference_inferencejob_change", args=[job_recording.job_id])
        return format_html('<a href="{}">{} {}</a>', url, job_recording.job.model_run, job_time(job_recording.job))

    @admin.display(description="status")
    def status_label(self, job_recording: JobRecording) -> str:
        return status_html(job_recording.status)

    @admin.display(description="clips processed / total")
    def clips(self, job_recording: JobRecording) -> str:
        return clip_figures(job_recording.processed_clips, job_recording.total_clips, job_recording.status)
