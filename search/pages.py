"""The search page: clips and sound events similar to a clip, a sound event (a box: "find similar") or an uploaded
snippet, as cards to look at and hear; sound events show their box on a spectrogram of their surroundings."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from echoroo.media import MAX_SPECTROGRAM_S
from echoroo.models import SPECIES, Clip, ClipPredictionTag, Dataset, ModelRun, Recording, Site, SoundEvent
from echoroo.pages import clock, page_login_required, recording_url, species_names
from echoroo.spectrogram import SpectrogramParams
from inference.runtimes import available_runtimes
from search import services
from search.errors import SearchError
from search.snippets import snippet_card

# Where each of the service's error fields shows on the form.
ERROR_FIELDS = {"model_name": "model", "model_version": "model", "file": "file", "target": "target"}
MAX_RESULTS = 100
TARGET_CHOICES = [("clips", "clips"), ("sound_events", "sound events"), ("both", "both")]
# How much of a recording a sound event's spectrogram shows around its box: the query's a few
# seconds of context, a result's its span and a little either side.
QUERY_VIEW = (6.0, 1.0)  # (at least this many seconds, at least this much either side of the box)
RESULT_VIEW = (3.0, 0.5)
# The top of the spectrograms drawn (echoroo.spectrogram), unless the recording's Nyquist frequency is lower.
SPECTROGRAM_TOP_HZ = SpectrogramParams(width_px=1).max_freq_hz


def model_runs_with_embeddings(kinds: tuple[str, ...] = ("clip",)) -> QuerySet[ModelRun]:
    """Model runs with embeddings of any of these kinds ("clip", "sound_event"), by name."""
    found = services.with_embeddings(ModelRun.objects.all(), kinds)
    return ModelRun.objects.filter(pk__in=[run.pk for run in found]).order_by("name")


class SearchForm(forms.Form):
    clip = forms.UUIDField(required=False, widget=forms.HiddenInput)
    sound_event = forms.UUIDField(required=False, widget=forms.HiddenInput)
    target = forms.ChoiceField(
        choices=TARGET_CHOICES, required=False, initial=services.DEFAULT_TARGET, label="Find", widget=forms.RadioSelect
    )
    file = forms.FileField(required=False, label="Or a snippet", help_text="wav, flac, mp3 or ogg; at most 60 s.")
    model = forms.ModelChoiceField(
        ModelRun.objects.none(),
        required=False,
        to_field_name="uuid",
        empty_label="automatic",
        help_text="Whose embeddings to compare. Automatic: a clip's or a box's own; for a snippet, the only model "
        "with embeddings (pick one when there are several).",
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
    # On by default, as in the API: the other windows of the query's recording share its background and often
    # its very animal, and would fill the results with what the user is listening to already.
    exclude_own_recording = forms.BooleanField(
        required=False, initial=True, label="Leave out the query's own recording"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = model_runs_with_embeddings(("clip", "sound_event"))
        self.fields["site"].label_from_instance = lambda site: f"{site.dataset.name} / {site.name}"

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("clip") and not data.get("sound_event") and not data.get("file"):
            raise forms.ValidationError(
                "Pick a clip or a box (“find similar” on a recording's page) or upload a snippet."
            )
        if data.get("clip") and data.get("sound_event"):
            raise forms.ValidationError("Search by a clip or by a sound event, not both.")
        if data.get("file"):
            data["snippet_model"] = self._snippet_model(data.get("model"))
        return data

    def _snippet_model(self, run: ModelRun | None) -> tuple[str, str | None] | None:
        """(model name, version or None for the latest) to embed a snippet with: the run picked, else the only
        installed model that has embeddings; None, with an error on the field, when there is no one such model."""
        if run is not None:
            return run.name, run.version
        names = sorted({run.name for run in self.fields["model"].queryset} & set(available_runtimes()))
        if len(names) == 1:
            return names[0], None
        if names:
            self.add_error("model", f"Several models have embeddings ({', '.join(names)}): pick one for the snippet.")
        else:
            self.add_error(
                "model", "No model that embeds audio has embeddings yet: run a job with store_embeddings first."
            )
        return None

    def options(self) -> dict:
        """The search service's keyword arguments for the filters."""
        data = self.cleaned_data
        day_start = dt.time.min
        return {
            "target": data["target"] or services.DEFAULT_TARGET,
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
        "target": "clip",
    }


def event_view(event: SoundEvent, recording: Recording, at_least_s: float, context_s: float) -> tuple[float, float]:
    """The range of the recording (start_s, end_s) a spectrogram of the event shows: the box with context around it."""
    duration = event.end_time - event.start_time
    half = max(at_least_s / 2, duration / 2 + context_s)
    centre = (event.start_time + event.end_time) / 2
    start_s, end_s = max(0.0, centre - half), min(recording.duration, centre + half)
    if end_s - start_s > MAX_SPECTROGRAM_S:  # a box longer than the longest image: its start
        start_s, end_s = event.start_time, min(recording.duration, event.start_time + MAX_SPECTROGRAM_S)
    return start_s, end_s


def box_position(event: SoundEvent, recording: Recording, start_s: float, end_s: float) -> dict[str, str]:
    """Where the box lies on the spectrogram of [start_s, end_s], in percent (CSS left, width, bottom, height).

    The image is linear in time and in frequency, from 0 Hz to its top; a box without a band
    (a detection) covers the whole height.
    """
    span = end_s - start_s
    top_hz = min(SPECTROGRAM_TOP_HZ, recording.samplerate / 2)
    left = max(event.start_time, start_s)
    right = min(event.end_time, end_s)
    low = min(max(event.low_freq or 0.0, 0.0), top_hz)
    high = min(event.high_freq if event.high_freq is not None else top_hz, top_hz)

    def percent(value: float) -> str:
        return f"{100 * value:.2f}%"

    return {
        "left": percent((left - start_s) / span),
        "width": percent(max(right - left, 0.0) / span),
        "bottom": percent(low / top_hz),
        "height": percent(max(high - low, 0.0) / top_hz),
    }


def band_text(event: SoundEvent) -> str:
    """The box's band as text ("2.1–4.5 kHz"), empty when it has none."""
    if event.low_freq is None and event.high_freq is None:
        return ""
    low = f"{(event.low_freq or 0) / 1000:.1f}"
    high = f"{event.high_freq / 1000:.1f}" if event.high_freq is not None else "…"
    return f"{low}–{high} kHz"


def sound_event_card(
    event: SoundEvent,
    annotation_uuid=None,
    species: tuple[str, ...] = (),
    similarity: float | None = None,
    *,
    view: tuple[float, float] = RESULT_VIEW,
) -> dict:
    """What a result card (or the query's card) shows of a sound event: its box drawn on its surroundings."""
    recording = event.recording
    start_s, end_s = event_view(event, recording, *view)
    spectrogram = reverse("recording-spectrogram", args=[recording.uuid])
    return {
        "target": "sound_event",
        "sound_event": event,
        "recording": recording,
        "similarity": similarity,
        "kind": "annotation" if annotation_uuid is not None else "detection",
        "annotation_uuid": annotation_uuid,
        "species": [species_names(label)[0] for label in species],
        "clock": f"{clock(event.start_time)} – {clock(event.end_time)}",
        "band": band_text(event),
        "spectrogram_url": f"{spectrogram}?start={start_s:g}&end={end_s:g}",
        "view": (start_s, end_s),
        "box": box_position(event, recording, start_s, end_s),
        # An annotation's box is highlighted on the recording page.
        "recording_url": recording_url(recording.uuid, event.start_time, annotation=annotation_uuid),
        "similar_url": reverse("search") + f"?sound_event={event.uuid}&target=both",
    }


def result_cards(results: list, model_run: ModelRun) -> list[dict]:
    """The cards of a search's results, in their order: clips with their best species, sound events with their box."""
    clip_ids = [result.clip.pk for result in results if result.target == "clip"]
    labels = best_species(clip_ids, model_run) if clip_ids else {}
    cards = []
    for result in results:
        if result.target == "clip":
            cards.append(clip_card(result.clip, result.similarity, *labels.get(result.clip.pk, ("", None))))
        else:
            cards.append(
                sound_event_card(result.sound_event, result.annotation_uuid, result.species, result.similarity)
            )
    return cards


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
    """GET ?clip=<uuid> or ?sound_event=<uuid> searches by a clip or a box; a POST uploads a snippet.

    The results show as cards: clips with a thumbnail and a player, sound events with their box.
    """
    asked = request.method == "POST" or "clip" in request.GET or "sound_event" in request.GET
    data = (request.POST if request.method == "POST" else request.GET).copy()
    # A "find similar" link gives the query (and model) only: the other fields take their defaults;
    # from a box, the default is to find both clips and sound events.
    for name in ("min_similarity", "limit"):
        if not data.get(name):
            data[name] = SearchForm.base_fields[name].initial
    if request.method == "GET" and "exclude_own_recording" not in data:
        data["exclude_own_recording"] = "on"  # (a link's default; the form sends the box's state)
    if not data.get("target"):
        data["target"] = "both" if data.get("sound_event") else services.DEFAULT_TARGET
    form = SearchForm(data, request.FILES) if asked else SearchForm()
    query_card, cards, model_run = None, None, None
    if asked and form.is_valid():
        data = form.cleaned_data
        try:
            if data["file"]:
                model_name, model_version = data["snippet_model"]
                results = services.search_by_audio(
                    data["file"], model_name=model_name, model_version=model_version, **form.options()
                )
                query_card = snippet_card(data["file"])
            elif data["sound_event"]:
                found = SoundEvent.objects.filter(uuid=data["sound_event"]).values_list("pk", flat=True).first()
                if found is None:
                    raise SearchError({"sound_event_uuid": "no sound event has this UUID (deleted since?)"})
                event, annotation_uuid, species = services.sound_event_details([found])[found]
                query_card = sound_event_card(event, annotation_uuid, species, view=QUERY_VIEW)
                results = services.search_similar(
                    sound_event=event,
                    model_run=data["model"],
                    exclude_own_recording=data["exclude_own_recording"],
                    **form.options(),
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
            cards = result_cards(results, model_run)
    clip_cards = [card for card in cards or [] if card["target"] == "clip"]
    uploaded = request.FILES.get("file")
    context = {
        "form": form,
        # A chosen file the search did not run with: a browser cannot keep it across pages, so say so.
        "dropped_file": uploaded.name if uploaded is not None and cards is None else "",
        "query": query_card,
        "cards": cards,
        "clip_cards": clip_cards,
        "model_run": model_run,
        "found": _found_text(cards, form),
    }
    return render(request, "pages/search.html", context)


def _found_text(cards: list[dict] | None, form: SearchForm) -> str:
    """The results' heading: "3 similar clips", "1 similar sound event", "5 similar clips and sound events"."""
    if cards is None:  # (cards come from a valid form only)
        return ""
    target = form.cleaned_data.get("target")
    nouns = {"clips": ("clip", "clips"), "sound_events": ("sound event", "sound events")}
    one, many = nouns.get(target or services.DEFAULT_TARGET, ("clip or sound event", "clips and sound events"))
    return f"{len(cards)} similar {one if len(cards) == 1 else many}"
