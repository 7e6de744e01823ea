"""The admin of sound event annotations: list, filter, search; add, change and delete through the services.

The box and the tags are edited as plain fields and written by annotations.services, so the admin
keeps the same checks (box inside the recording, low < high <= Nyquist, known species), the same
permissions (author or staff) and the same history as the API and the pages.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import QuerySet

from annotations import services
from annotations.errors import AnnotationError
from annotations.models import AnnotationChange, SoundEventAnnotation
from echoroo.models import SPECIES
from inference.birdnet_formats import split_label


class AnnotationForm(forms.ModelForm):
    start_time = forms.FloatField(help_text="Seconds from the recording's start.")
    end_time = forms.FloatField(help_text="Seconds.")
    low_freq = forms.FloatField(required=False, help_text="Hz (empty with high freq: the whole band).")
    high_freq = forms.FloatField(required=False, help_text="Hz, at most half the sample rate.")
    species = forms.CharField(
        required=False,
        help_text="One per line: a label, scientific or common name, or eBird code.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    tags = forms.CharField(
        required=False,
        help_text='Free tags, one "key: value" per line (e.g. call_type: song).',
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    class Meta:
        model = SoundEventAnnotation
        fields = ["recording", "notes"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        annotation = self.instance
        if annotation.pk:
            event = annotation.sound_event
            for name in ("start_time", "end_time", "low_freq", "high_freq"):
                self.initial[name] = getattr(event, name)
            rows = [(row.tag.key, row.tag.value) for row in annotation.tags.select_related("tag")]
            self.initial["species"] = "\n".join(value for key, value in rows if key == SPECIES)
            self.initial["tags"] = "\n".join(f"{key}: {value}" for key, value in rows if key != SPECIES)
            self.fields["recording"].disabled = True

    def clean_species(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["species"].splitlines() if line.strip()]

    def clean_tags(self) -> list[tuple[str, str]]:
        pairs = []
        for line in self.cleaned_data["tags"].splitlines():
            if line.strip():
                key, colon, value = line.partition(":")
                if not colon:
                    raise forms.ValidationError(f'"{line.strip()}": write a tag as key: value')
                pairs.append((key.strip(), value.strip()))
        return pairs

    def clean(self) -> dict:
        """The services' own checks, shown on the form's fields."""
        data = super().clean()
        recording = self.instance.recording if self.instance.pk else data.get("recording")
        if recording is None or self.errors:
            return data
        problems = services.box_errors(
            recording, data.get("start_time"), data.get("end_time"), data.get("low_freq"), data.get("high_freq")
        )
        try:
            services.tag_pairs(data.get("species", []), data.get("tags", []))
        except AnnotationError as error:
            problems.update(error.errors)
        for name, message in problems.items():
            self.add_error(name if name in self.fields else None, message)
        return data

    def changes(self) -> dict:
        data = self.cleaned_data
        names = ("start_time", "end_time", "low_freq", "high_freq", "species", "tags", "notes")
        return {name: data.get(name) for name in names}


@admin.register(SoundEventAnnotation)
class SoundEventAnnotationAdmin(admin.ModelAdmin):
    form = AnnotationForm
    list_display = ("uuid", "recording", "span", "band", "species", "source", "created_by", "updated_at")
    list_filter = ("source", "created_by", "recording__dataset")
    list_select_related = ("recording", "sound_event", "created_by")
    search_fields = ("recording__path", "tags__tag__value")
    search_help_text = "Part of the recording's path or of a tag (a species' scientific or common name)."
    raw_id_fields = ("recording",)
    readonly_fields = (
        "uuid",
        "source",
        "import_key",
        "created_by",
        "created_at",
        "updated_by",
        "updated_at",
        "history",
    )
    ordering = ("-id",)

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).prefetch_related("tags__tag")

    @admin.display(description="time (s)", ordering="sound_event__start_time")
    def span(self, annotation: SoundEventAnnotation) -> str:
        event = annotation.sound_event
        return f"{event.start_time:.2f}–{event.end_time:.2f}"

    @admin.display(description="band (Hz)")
    def band(self, annotation: SoundEventAnnotation) -> str:
        event = annotation.sound_event
        return "whole band" if event.low_freq is None else f"{event.low_freq:.0f}–{event.high_freq:.0f}"

    @admin.display(description="species")
    def species(self, annotation: SoundEventAnnotation) -> str:
        return ", ".join(split_label(row.tag.value)[1] for row in annotation.tags.all() if row.tag.key == SPECIES)

    @admin.display(description="history")
    def history(self, annotation: SoundEventAnnotation) -> str:
        changes = AnnotationChange.objects.filter(annotation_uuid=annotation.uuid).select_related("by")
        return "; ".join(f"{change.at:%Y-%m-%d %H:%M} {change.action} by {change.by or '—'}" for change in changes)

    def has_change_permission(self, request, annotation=None) -> bool:
        allowed = super().has_change_permission(request, annotation)
        return allowed and (annotation is None or services.can_change(annotation, request.user))

    def has_delete_permission(self, request, annotation=None) -> bool:
        allowed = super().has_delete_permission(request, annotation)
        return allowed and (annotation is None or services.can_change(annotation, request.user))

    def save_model(self, request, annotation: SoundEventAnnotation, form: AnnotationForm, change: bool) -> None:
        # The form checked the box and the tags as the services do (AnnotationForm.clean).
        if change:
            saved = services.update_annotation(annotation, by=request.user, **form.changes())
        else:
            saved = services.create_annotation(form.cleaned_data["recording"], by=request.user, **form.changes())
        form.instance = saved
        annotation.pk, annotation.sound_event, annotation.recording = saved.pk, saved.sound_event, saved.recording

    def save_related(self, request, form, formsets, change) -> None:
        """The services wrote the tags."""

    def delete_model(self, request, annotation: SoundEventAnnotation) -> None:
        services.delete_annotation(annotation, by=request.user)

    def delete_queryset(self, request, queryset: QuerySet) -> None:
        for annotation in queryset.select_related("sound_event"):
            services.delete_annotation(annotation, by=request.user)
