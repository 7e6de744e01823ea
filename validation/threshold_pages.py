"""The threshold-set pages: list, create (by hand, from a CSV file, from a job's calibrations), edit, delete, export.

Sets are shared: anyone logged in sees, uses and creates them; only a set's creator or staff change or
delete it. Writing goes through validation.services (save_threshold_set), as the API's does.
"""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from echoroo.models import ClipPrediction
from echoroo.pages import page_login_required, species_names
from inference.job_lists import jobs_queryset
from inference.models import InferenceJob
from validation import services
from validation.calibration import TARGETS
from validation.evaluation import calibrated_thresholds
from validation.models import ThresholdSet

# A CSV of thresholds is a line per species: a few thousand lines at most.
MAX_CSV_BYTES = 1_000_000
# Jobs offered to fill a set from (those with verdicts on their detections), newest first.
JOB_CHOICES = 100
# How validation.evaluation.calibrated_thresholds says a species has no verdicts at all.
NO_VERDICTS = "no verdicts"
# The form grid's cells are narrow: long fields take their cell's width, no more.
FULL_WIDTH = "width: 100%; box-sizing: border-box"
TARGET_CHOICES = [(f"{target:g}", f"P(correct) ≥ {target:g}") for target in TARGETS]


class ThresholdSetForm(forms.Form):
    """A set typed by hand: a default and `species,threshold` lines, or the same lines from a CSV file."""

    name = forms.CharField(max_length=200)
    default_threshold = forms.FloatField(
        min_value=0, max_value=1, help_text="The threshold of every species the set does not name."
    )
    thresholds = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "style": FULL_WIDTH, "placeholder": "Hylocichla mustelina,0.62"}),
        help_text="One species,threshold per line: the scientific name or the model's full label.",
    )
    file = forms.FileField(
        required=False, help_text="Or a CSV file of species,threshold rows (a header row is optional)."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "style": FULL_WIDTH}))

    def clean(self) -> dict:
        data = super().clean()
        upload = data.get("file")
        if upload and (data.get("thresholds") or "").strip():
            self.add_error("file", "Give the thresholds as lines or as a file, not both.")
            return data
        field, text = ("file", read_upload(self, upload)) if upload else ("thresholds", data.get("thresholds") or "")
        data["source_field"] = field
        if text is None:
            return data
        try:
            data["species_thresholds"] = services.thresholds_from_csv(text)
        except services.ValidationError as error:
            self.add_error(field, "; ".join(error.errors.values()))
            return data
        return data

    def save(self, *, by, existing: ThresholdSet | None = None) -> ThresholdSet | None:
        """The set saved through the service, or None with the service's complaints added to the fields."""
        data = self.cleaned_data
        try:
            return services.save_threshold_set(
                name=data["name"],
                default_threshold=data["default_threshold"],
                thresholds=data.get("species_thresholds", {}),
                description=data.get("description", ""),
                by=by,
                existing=existing,
            )
        except services.ValidationError as error:
            for field, message in error.errors.items():
                self.add_error(data["source_field"] if field == "thresholds" else field, message)
            return None


def read_upload(form: forms.Form, upload) -> str | None:
    if upload.size > MAX_CSV_BYTES:
        form.add_error("file", f"The file is over {MAX_CSV_BYTES // 1_000_000} MB: a CSV of thresholds is smaller.")
        return None
    try:
        return upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        form.add_error("file", "The file is not UTF-8 text: save it as CSV (UTF-8).")
        return None


def jobs_with_verdicts():
    """Jobs with a verdict on at least one of their clips, newest first: those a calibration can be fitted for."""
    judged = ClipPrediction.objects.filter(job=OuterRef("pk"), clip__verdicts__isnull=False)
    return jobs_queryset().filter(Exists(judged)).order_by("-created_at", "-pk")


class FromCalibrationsForm(forms.Form):
    """A new set from a job's calibrations: each species that can be fitted at the target, the default for the rest."""

    job = forms.ModelChoiceField(
        queryset=InferenceJob.objects.none(), to_field_name="uuid", widget=forms.Select(attrs={"style": FULL_WIDTH})
    )
    target = forms.ChoiceField(choices=TARGET_CHOICES, initial="0.95")
    name = forms.CharField(max_length=200)
    default_threshold = forms.FloatField(
        min_value=0, max_value=1, help_text="For the species without enough verdicts to calibrate."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The jobs listed are those with verdicts; any job named (a link from its page) is accepted.
        self.fields["job"].queryset = jobs_queryset()
        jobs = list(jobs_with_verdicts()[:JOB_CHOICES])
        named = str(self.initial.get("job") or "")
        if named and all(str(job.uuid) != named for job in jobs):
            jobs += jobs_queryset().filter(uuid=safe_uuid(named))
        self.fields["job"].choices = [("", "pick a job")] + [(job.uuid, job_choice_label(job)) for job in jobs]


def safe_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def job_choice_label(job: InferenceJob) -> str:
    target = job.dataset.name if job.dataset_id else job.recording.path
    created = timezone.localtime(job.created_at)
    return f"{job.model_run.name} {job.model_run.version} on {target} · {created:%Y-%m-%d %H:%M}"


def delete_threshold_set(threshold_set: ThresholdSet, *, by) -> None:
    """Delete a set (its creator or staff only)."""
    if not threshold_set.can_be_changed_by(by):
        raise PermissionDenied("only staff or the set's creator may delete it")
    threshold_set.delete()


def sets_listed():
    return ThresholdSet.objects.select_related("created_by").annotate(species_count=Count("species"))


@require_http_methods(["GET", "POST"])
@page_login_required
def threshold_set_list(request: HttpRequest) -> HttpResponse:
    """Every set, a form to type or import one, and one to fill one from a job's calibrations."""
    form = ThresholdSetForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        created = form.save(by=request.user)
        if created is not None:
            messages.success(request, f"Created the threshold set {created.name!r}.")
            return redirect("threshold-set", set_uuid=created.uuid)
    initial = {"job": request.GET.get("job", ""), "default_threshold": 0.5}
    context = {
        "sets": sets_listed(),
        "form": form,
        "calibrations_form": FromCalibrationsForm(initial=initial),
    }
    return render(request, "validation/threshold_sets.html", context, status=400 if form.errors else 200)


@require_POST
@page_login_required
def from_calibrations(request: HttpRequest) -> HttpResponse:
    """Create a set from a job's calibrations at a target; say which species were skipped and why."""
    form = FromCalibrationsForm(request.POST, initial={"job": request.POST.get("job", "")})
    if form.is_valid():
        job, target = form.cleaned_data["job"], form.cleaned_data["target"]
        thresholds, skipped = calibrated_thresholds(job, target)
        # Species the job detected that nobody judged are many and say nothing: they are counted, not listed.
        unjudged = [species for species, why in skipped.items() if why == NO_VERDICTS]
        reasons = {species: why for species, why in skipped.items() if why != NO_VERDICTS}
        if not thresholds:
            why = "; ".join(f"{species}: {reason}" for species, reason in reasons.items()) or "no verdicts yet"
            form.add_error("job", f"No species of this job can be calibrated yet ({why}).")
        else:
            description = f"From the calibrations of job {job.uuid} at P(correct) ≥ {target}"
            if reasons:
                description += "; skipped: " + "; ".join(f"{species} ({why})" for species, why in reasons.items())
            try:
                created = services.save_threshold_set(
                    name=form.cleaned_data["name"],
                    default_threshold=form.cleaned_data["default_threshold"],
                    thresholds=thresholds,
                    description=description,
                    by=request.user,
                )
            except services.ValidationError as error:
                for field, message in error.errors.items():
                    form.add_error(field if field in form.fields else None, message)
            else:
                messages.success(
                    request,
                    f"Created {created.name!r}: {len(thresholds)} species calibrated at P(correct) ≥ {target}; "
                    f"{len(skipped)} take the default {created.default_threshold:g}.",
                )
                for species, why in reasons.items():
                    messages.warning(request, f"Skipped {species}: {why}.")
                if unjudged:
                    messages.info(request, f"{len(unjudged)} species of the job have no verdicts yet.")
                return redirect("threshold-set", set_uuid=created.uuid)
    context = {"sets": sets_listed(), "form": ThresholdSetForm(), "calibrations_form": form}
    return render(request, "validation/threshold_sets.html", context, status=400)


@require_http_methods(["GET", "POST"])
@page_login_required
def threshold_set_page(request: HttpRequest, set_uuid) -> HttpResponse:
    """A set: its thresholds, the CSV, and (for its creator or staff) a form to change it and a delete button."""
    threshold_set = get_object_or_404(ThresholdSet.objects.select_related("created_by"), uuid=set_uuid)
    can_change = threshold_set.can_be_changed_by(request.user)
    if request.method == "POST":
        if not can_change:
            raise PermissionDenied("only staff or the set's creator may change it")
        form = ThresholdSetForm(request.POST, request.FILES)
        if form.is_valid() and form.save(by=request.user, existing=threshold_set) is not None:
            messages.success(request, f"Saved the threshold set {threshold_set.name!r}.")
            return redirect("threshold-set", set_uuid=threshold_set.uuid)
    else:
        form = ThresholdSetForm(
            initial={
                "name": threshold_set.name,
                "default_threshold": threshold_set.default_threshold,
                "description": threshold_set.description,
                "thresholds": services.thresholds_as_csv(threshold_set),
            }
        )
    species = [
        {"value": value, "names": species_names(value), "threshold": threshold}
        for value, threshold in threshold_set.species.order_by("species__value").values_list(
            "species__value", "threshold"
        )
    ]
    context = {"threshold_set": threshold_set, "species": species, "can_change": can_change, "form": form}
    return render(request, "validation/threshold_set.html", context, status=400 if form.errors else 200)


@require_POST
@page_login_required
def delete_set(request: HttpRequest, set_uuid) -> HttpResponse:
    threshold_set = get_object_or_404(ThresholdSet, uuid=set_uuid)
    delete_threshold_set(threshold_set, by=request.user)
    messages.success(request, f"Deleted the threshold set {threshold_set.name!r}.")
    return redirect("threshold-sets")


@require_GET
@page_login_required
def export_csv(request: HttpRequest, set_uuid) -> HttpResponse:
    """The set's thresholds as `species,threshold` rows: the file the import reads."""
    threshold_set = get_object_or_404(ThresholdSet, uuid=set_uuid)
    response = HttpResponse(services.thresholds_as_csv(threshold_set), content_type="text/csv; charset=utf-8")
    filename = f"{slugify(threshold_set.name) or 'thresholds'}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


urlpatterns = [
    path("thresholds/", threshold_set_list, name="threshold-sets"),
    path("thresholds/from-calibrations/", from_calibrations, name="threshold-set-from-calibrations"),
    path("thresholds/<uuid:set_uuid>/", threshold_set_page, name="threshold-set"),
    path("thresholds/<uuid:set_uuid>/delete/", delete_set, name="threshold-set-delete"),
    path("thresholds/<uuid:set_uuid>/thresholds.csv", export_csv, name="threshold-set-csv"),
]
