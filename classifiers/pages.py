"""The classifier pages: label sets and classifiers (/classifiers/), labelling clips, a classifier with its
metrics, its apply jobs and the clips it is least sure about. Server-rendered, behind login; the work is
in classifiers.services."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from classifiers import labels, services
from classifiers.errors import ClassifierError
from classifiers.labels import CLEAR, Polarity
from classifiers.models import Classifier, ClassifierJob
from classifiers.training import MIN_EXAMPLES, MIN_RECORDINGS
from echoroo.models import Clip, ModelRun
from echoroo.pages import page_login_required
from search.pages import clip_card, model_runs_with_embeddings

# Clips shown for labelling at once, and examples of a label set listed under them.
MAX_CLIPS_SHOWN = 100
EXAMPLES_SHOWN = 60
UNCERTAIN_SHOWN = 24
CHOICES = [(Polarity.POSITIVE, "yes"), (Polarity.NEGATIVE, "no"), ("", "skip")]


def error_text(error: ClassifierError) -> str:
    return "; ".join(error.errors.values())


def uuids_from(text: str) -> list[str]:
    """Clip uuids pasted or passed in a query: separated by commas, spaces or new lines."""
    return [part for part in text.replace(",", " ").split() if part]


@require_GET
@page_login_required
def classifier_list(request: HttpRequest) -> HttpResponse:
    classifiers = list(Classifier.objects.select_related("source", "created_by")[:200])
    latest_jobs = {}
    for job in (
        ClassifierJob.objects.filter(classifier__in=classifiers)
        .order_by("classifier_id", "-created_at")
        .distinct("classifier_id")
    ):
        latest_jobs[job.classifier_id] = job
    for classifier in classifiers:
        classifier.latest_job = latest_jobs.get(classifier.pk)
    context = {
        "label_sets": labels.label_sets(),
        "classifiers": classifiers,
        "sources": model_runs_with_embeddings().filter(kind=ModelRun.Kind.MODEL),
        "min_examples": MIN_EXAMPLES,
        "min_recordings": MIN_RECORDINGS,
    }
    return render(request, "classifiers/list.html", context)


@require_http_methods(["GET", "POST"])
@page_login_required
def label_page(request: HttpRequest) -> HttpResponse:
    """GET ?label=…&clips=uuid,uuid…: the clips as cards to mark yes/no, and the set's examples; POST saves marks."""
    if request.method == "POST":
        return save_labels(request)
    try:
        label = labels.clean_label(request.GET["label"]) if request.GET.get("label", "").strip() else ""
        wanted = services.parse_uuids(uuids_from(request.GET.get("clips", "")))[:MAX_CLIPS_SHOWN]
    except ClassifierError as error:
        messages.error(request, error_text(error))
        label, wanted = "", []
    clips = Clip.objects.select_related("recording__dataset", "recording__site").filter(uuid__in=wanted)
    order = {clip_uuid: i for i, clip_uuid in enumerate(wanted)}
    to_label = sorted(clips, key=lambda clip: order[clip.uuid])
    current = labels.current_labels(label, [clip.pk for clip in to_label]) if label else {}
    examples = list(labels.label_examples(label).order_by("-created_at")[:EXAMPLES_SHOWN]) if label else []
    context = {
        "label": label,
        "label_set": labels.label_set(label) if label else None,
        "cards": [mark_card(clip, current.get(clip.pk), request.user) for clip in to_label],
        "examples": [
            dict(
                clip_card(example.clip_annotation.clip),
                current=labels.parse_tag_value(example.tag.value)[1],
                by=example,
                # Someone else's label is theirs (or staff's) to change: shown, not offered.
                locked=not request.user.is_staff and example.created_by_id != request.user.pk,
            )
            for example in examples
        ],
        "choices": CHOICES,
        "next": request.get_full_path(),
    }
    return render(request, "classifiers/label.html", context)


def mark_card(clip: Clip, current: labels.CurrentLabel | None, user) -> dict:
    """A clip's card with its label in the set, who set it, and whether `user` may change it."""
    if current is None:
        return dict(clip_card(clip), current="")
    return dict(
        clip_card(clip),
        current=current.polarity,
        labeller=current.labeller or "a deleted user",
        locked=not labels.may_change(current, user),
    )


def save_labels(request: HttpRequest) -> HttpResponseRedirect:
    """The form's marks: one field per clip, mark-<uuid>, valued positive, negative, clear or empty (skip),
    beside was-<uuid>, the clip's label when the page was drawn."""
    label = request.POST.get("label", "")
    marked: dict[str, list[str]] = {}
    for field, value in request.POST.items():
        clip_uuid = field.removeprefix("mark-")
        # A mark left as it was is not saved again: the labeller and time stay those of whoever set it.
        if (
            field.startswith("mark-")
            and value in (*Polarity.values, CLEAR)
            and value != request.POST.get(f"was-{clip_uuid}")
        ):
            marked.setdefault(value, []).append(clip_uuid)
    try:
        with transaction.atomic():  # the form's marks are saved all or none
            for polarity, clip_uuids in marked.items():
                counts = services.label_clips(clip_uuids, label=label, polarity=polarity, by=request.user)
    except ClassifierError as error:
        messages.error(request, f"Nothing saved: {error_text(error)}")
    except PermissionDenied as error:
        messages.error(request, f"Nothing saved: {error}")
    else:
        if marked:
            messages.success(
                request,
                f"Saved {sum(map(len, marked.values()))} label(s) for “{counts.label}”: "
                f"{counts.positives} positive and {counts.negatives} negative clips in all.",
            )
    return HttpResponseRedirect(safe_next(request, reverse("classifier-label") + "?" + urlencode({"label": label})))


def safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    allowed = url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure())
    return target if target and allowed else default


@require_POST
@page_login_required
def train(request: HttpRequest) -> HttpResponse:
    try:
        source = None
        if request.POST.get("source"):
            (source_uuid,) = services.parse_uuids([request.POST["source"]], field="model_run", what="model run")
            source = get_object_or_404(ModelRun, uuid=source_uuid)
        classifier = services.train_classifier(label=request.POST.get("label", ""), source=source, by=request.user)
    except ClassifierError as error:
        messages.error(request, f"Not trained: {error_text(error)}")
        return redirect(safe_next(request, reverse("classifiers")))
    metrics = classifier.metrics
    if "not_measured" in metrics:
        messages.warning(request, f"Trained {classifier}, without held-out figures: {metrics['not_measured']}.")
    else:
        messages.success(
            request,
            f"Trained {classifier}: ROC AUC {metrics['roc_auc']:.3f}, precision {metrics['precision']:.2f}, "
            f"recall {metrics['recall']:.2f} on {metrics['n_test']} clips of {metrics['n_test_recordings']} "
            "held-out recordings.",
        )
    return redirect("classifier", classifier_uuid=classifier.uuid)


@require_GET
@page_login_required
def classifier_page(request: HttpRequest, classifier_uuid) -> HttpResponse:
    classifier = get_object_or_404(
        Classifier.objects.select_related("source", "model_run", "created_by"), uuid=classifier_uuid
    )
    uncertain = services.uncertain_clips(classifier, limit=UNCERTAIN_SHOWN)
    context = {
        "classifier": classifier,
        "metrics": classifier.metrics,
        "jobs": classifier.jobs.select_related("created_by")[:10],
        "active": classifier.jobs.filter(status__in=ClassifierJob.ACTIVE).exists(),
        "uncertain": uncertain,
        "cards": [clip_card(item.clip, None, classifier.label, item.score) for item in uncertain.clips],
        "choices": CHOICES,
        "predictions_url": reverse("clip-prediction-list") + "?" + urlencode({"model_run": classifier.model_run.uuid}),
        "next": request.get_full_path(),
    }
    return render(request, "classifiers/classifier.html", context)


@require_POST
@page_login_required
def apply(request: HttpRequest, classifier_uuid) -> HttpResponse:
    classifier = get_object_or_404(Classifier, uuid=classifier_uuid)
    try:
        services.start_apply(classifier, by=request.user)
    except ClassifierError as error:
        messages.error(request, error_text(error))
    else:
        messages.success(request, f"Applying {classifier} to every {classifier.source} embedding.")
    return redirect("classifier", classifier_uuid=classifier.uuid)


@require_POST
@page_login_required
def cancel(request: HttpRequest, job_uuid) -> HttpResponse:
    job = get_object_or_404(ClassifierJob.objects.select_related("classifier"), uuid=job_uuid)
    try:
        services.cancel_apply(job, by=request.user)
    except PermissionDenied as error:
        messages.error(request, str(error))
    except ClassifierError as error:
        messages.error(request, error_text(error))
    return redirect("classifier", classifier_uuid=job.classifier.uuid)
