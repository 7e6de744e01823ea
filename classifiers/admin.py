"""The admin of classifiers and their apply jobs: metrics at a glance, "Apply" and "Cancel" as actions.

Classifiers are made by training (the API or the /classifiers/ page), so the admin neither adds nor
edits them. Nor does it delete them: that would delete a run of possibly millions of predictions
through Django's row-by-row cascade, which is a job of its own.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.utils.html import format_html

from classifiers import services
from classifiers.errors import ClassifierError
from classifiers.models import Classifier, ClassifierJob
from inference.admin import admin_link, clip_figures, progress_html, status_html


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # The list stays reachable (for the actions); the page of one row is read-only.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _figure(classifier: Classifier, name: str, digits: int) -> str:
    """A held-out figure, or "not measured" (labels from too few recordings: the metrics say why)."""
    value = classifier.metrics.get(name)
    return "not measured" if value is None else f"{value:.{digits}f}"


@admin.register(Classifier)
class ClassifierAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "source", "roc_auc", "precision", "recall", "examples", "created_by", "created_at")
    list_filter = ("source",)
    list_select_related = ("source", "created_by")
    search_fields = ("label",)
    actions = ("apply_classifiers",)
    fields = (
        "uuid",
        "label",
        "version",
        "source",
        "run_link",
        "dimension",
        "intercept",
        "metrics_json",
        "created_by",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="ROC AUC")
    def roc_auc(self, classifier: Classifier) -> str:
        return _figure(classifier, "roc_auc", 3)

    @admin.display(description="precision")
    def precision(self, classifier: Classifier) -> str:
        return _figure(classifier, "precision", 2)

    @admin.display(description="recall")
    def recall(self, classifier: Classifier) -> str:
        return _figure(classifier, "recall", 2)

    @admin.display(description="examples + / −")
    def examples(self, classifier: Classifier) -> str:
        return f"{classifier.metrics.get('n_positive', 0)} / {classifier.metrics.get('n_negative', 0)}"

    @admin.display(description="predictions under")
    def run_link(self, classifier: Classifier) -> str:
        return admin_link(classifier.model_run, str(classifier.model_run))

    @admin.display(description="metrics")
    def metrics_json(self, classifier: Classifier) -> str:
        return format_html("<pre>{}</pre>", json.dumps(classifier.metrics, indent=2))

    @admin.action(description="Apply to every embedding of their source run", permissions=["change"])
    def apply_classifiers(self, request, queryset):
        started = 0
        for classifier in queryset:
            try:
                services.start_apply(classifier, by=request.user)
            except ClassifierError as error:
                self.message_user(request, f"Could not apply {classifier}: {error}", messages.ERROR)
            else:
                started += 1
        if started:
            self.message_user(request, f"Started {started} apply job(s).", messages.SUCCESS)


@admin.register(ClassifierJob)
class ClassifierJobAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "status_label", "progress_bar", "clips", "created_by", "created_at", "completed_at")
    list_filter = ("status",)
    list_select_related = ("classifier", "created_by")
    actions = ("cancel_jobs",)
    fields = (
        "uuid",
        "classifier",
        "status_label",
        "progress_bar",
        "clips",
        "last_clip_id",
        "error_message",
        "created_by",
        "created_at",
        "started_at",
        "completed_at",
    )
    readonly_fields = fields

    @admin.display(description="status", ordering="status")
    def status_label(self, job: ClassifierJob) -> str:
        return status_html(job.status)

    @admin.display(description="progress")
    def progress_bar(self, job: ClassifierJob) -> str:
        return progress_html(job.progress)

    @admin.display(description="embeddings scored / total")
    def clips(self, job: ClassifierJob) -> str:
        return clip_figures(job.processed_clips, job.total_clips)

    @admin.action(description="Cancel the selected jobs", permissions=["change"])
    def cancel_jobs(self, request, queryset):
        cancelled = 0
        for job in queryset:
            try:
                after = services.cancel_apply(job, by=request.user)
            except ClassifierError as error:  # already finished: nothing to cancel
                self.message_user(request, f"{job}: {' '.join(error.errors.values())}", messages.WARNING)
                continue
            except PermissionDenied as error:
                self.message_user(request, f"Could not cancel {job}: {error}", messages.ERROR)
                continue
            cancelled += after.status == ClassifierJob.Status.CANCELLED and job.status != after.status
        if cancelled:
            self.message_user(request, f"Cancelled {cancelled} job(s).", messages.SUCCESS)
