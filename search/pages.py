"""The search page: clips similar to a clip ("find similar") or to an uploaded snippet, as cards to look at and hear."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from echoroo.models import SPECIES, Clip, ClipPredictionTag, Dataset, ModelRun, Site
from echoroo.pages import clock, page_login_required, recording_url, species_names
from embeddings.models import ClipEmbedding
from search import services
from search.errors import SearchError

# Where each of the service's error fields shows on the form.
ERROR_FIELDS = {"model_name": "model", "model_version": "model", "file": "file"}
MAX_RESULTS = 100


def model_runs_with_embeddings():
    return ModelRun.objects.filter(Exists(ClipEmbedding.objects.filter(model_run=OuterRef("pk")))).order_by("name")


class SearchForm(forms.Form):
    clip = forms.UUIDField(required=False, widget=forms.HiddenInput)
    file = forms.FileField(required=False, label="Or a snippet", help_text="wav, flac, mp3 or ogg; at most 60 s.")
    model = forms.ModelChoiceField(
        ModelRun.objects.none(),
        required=False,
        to_field_name="uuid",
        empty_label="the query clip's model",
        help_text="Whose embeddings to compare; a snippet needs one.",
    )
    dataset = forms.ModelChoiceField(Dataset.objects.all(), required=False, to_field_name="uuid", empty_label="any")
    site = forms.ModelChoiceField(
        Site.objects.select_related("dataset").order_by("dataset__name", "name"),
        required=False,
        to_field_name="uuid",
        empty_label="any",
    )
    recorded_after = forms.DateField(
        required=False, label="Recorded from", widget=forms.DateInput(attrs={"type": "date"})
    )
    recorded_before = forms.DateField(required=False, label="until", widget=forms.DateInput(attrs={"type": "date"}))
    min_similarity = forms.FloatField(
        required=False,
        initial=services.DEFAULT_MIN_SIMILARITY,
        min_value=-1,
        max_value=1,
        widget=forms.NumberInput(attrs={"step": 0.05}),
    )
    limit = forms.IntegerField(
        required=False, initial=services.DEFAULT_LIMIT, min_value=1, max_value=MAX_RESULTS, label="Results"
    )
    exclude_own_recording = forms.BooleanField(required=False, label="Leave out the query clip's own recording")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = model_runs_with_embeddings()
        self.fields["site"].label_from_instance = lambda site: f"{site.dataset.name} / {site.name}"

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("clip") and not data.get("file"):
            raise forms.ValidationError("Pick a clip (“find similar” on a recording's page) or upload a snippet.")
        if data.get("file") and not data.get("model"):
            self.add_error("model", "Pick the model to embed the snippet with.")
        return data

    def options(self) -> dict:
        """The search service's keyword arguments for the filters."""
        data = self.cleaned_data
        day_start = dt.time.min
        return {
            "limit": data["limit"] or services.DEFAULT_LIMIT,
            "min_similarity": services.DEFAULT_MIN_SIMILARITY
            if data["min_similarity"] is None
            else data["min_similarity"],
            "dataset": data["dataset"],
            "site": data["site"],
            "recorded_after": _aware(data["recorded_after"], day_start),
            "recorded_before": _aware(data["recorded_before"], dt.time.max),
        }


def _aware(day: dt.date | None, at: dt.time) -> dt.datetime | None:
    return timezone.make_aware(dt.datetime.combine(day, at)) if day else None


def clip_card(clip: Clip, similarity: float | None = None, species: str = "", score: float | None = None) -> dict:
    """What a result card (or the query's card) shows of a clip."""
    recording = clip.recording
    return {
        "clip": clip,
        "recording": recording,
        "similarity": similarity,
        "clock": f"{clock(clip.start_time)} – {clock(clip.end_time)}",
        "species": species_names(species)[0] if species else "",
        "score": score,
        "audio_url": reverse("clip-audio", args=[clip.uuid]),
        "spectrogram_url": reverse("clip-spectrogram", args=[clip.uuid]),
        "recording_url": recording_url(recording.uuid, clip.start_time, clip=clip.uuid),
    }


def best_species(clip_ids: list[int], model_run: ModelRun) -> dict[int, tuple[str, float]]:
    """Each clip's highest-scored species any job of the model run detected, if one did (one query)."""
    # Only jobs' detections: a classifier run's rows (no job) score its own labels, which are not species.
    rows = (
        ClipPredictionTag.objects.filter(
            clip_prediction__clip_id__in=clip_ids,
            clip_prediction__model_run=model_run,
            clip_prediction__job__isnull=False,
            tag__key=SPECIES,
        )
        .order_by("clip_prediction__clip_id", "-score")
        .distinct("clip_prediction__clip_id")
        .values_list("clip_prediction__clip_id", "tag__value", "score")
    )
    return {clip_id: (species, score) for clip_id, species, score in rows}


@require_http_methods(["GET", "POST"])
@page_login_required
def search_page(request: HttpRequest) -> HttpResponse:
    """GET ?clip=<uuid> searches by a clip; a POST uploads a snippet. Both show the results as cards."""
    asked = request.method == "POST" or "clip" in request.GET
    data = (request.POST if request.method == "POST" else request.GET).copy()
    # A "find similar" link gives the clip (and model) only: the other fields take their defaults.
    for name in ("min_similarity", "limit"):
        if not data.get(name):
            data[name] = SearchForm.base_fields[name].initial
    form = SearchForm(data, request.FILES) if asked else SearchForm()
    query_card, cards, model_run = None, None, None
    if asked and form.is_valid():
        data = form.cleaned_data
        try:
            if data["file"]:
                run = data["model"]
                results = services.search_by_audio(
                    data["file"], model_name=run.name, model_version=run.version, **form.options()
                )
            else:
                clip = (
                    Clip.objects.select_related("recording__dataset", "recording__site")
                    .filter(uuid=data["clip"])
                    .first()
                )
                if clip is None:
                    raise SearchError({"clip_uuid": "no clip has this UUID (deleted since?)"})
                query_card = clip_card(clip)
                results = services.search_similar(
                    clip=clip,
                    model_run=data["model"],
                    exclude_own_recording=data["exclude_own_recording"],
                    **form.options(),
                )
        except SearchError as error:
            for field, message in error.errors.items():
                form.add_error(ERROR_FIELDS.get(field, None), f"{field.replace('_', ' ')}: {message}")
        else:
            model_run = results[0].model_run if results else data["model"]
            labels = best_species([result.clip.pk for result in results], model_run) if results else {}
            cards = [
                clip_card(result.clip, result.similarity, *labels.get(result.clip.pk, ("", None))) for result in results
            ]
    context = {"form": form, "query": query_card, "cards": cards, "model_run": model_run}
    return render(request, "pages/search.html", context)
