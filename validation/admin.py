"""The admin of the validation app: verdicts (filtered and searched by species) and threshold sets with their rows."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet

from validation.models import SpeciesThreshold, ThresholdSet, Verdict


@admin.register(Verdict)
class VerdictAdmin(admin.ModelAdmin):
    list_display = ("clip", "species", "verdict", "other_species", "reviewer", "bulk", "updated_at")
    list_filter = ("verdict", "bulk", "reviewer")
    list_select_related = ("clip__recording", "species", "other_species", "reviewer")
    search_fields = ("species__value",)
    search_help_text = "Part of the species' label: scientific or common name."
    autocomplete_fields = ("species", "other_species")
    # A clip is one of millions: a box for its id, not a <select> of them all.
    raw_id_fields = ("clip", "like_clip")
    readonly_fields = ("uuid", "created_at", "updated_at")
    ordering = ("-updated_at", "-id")


class SpeciesThresholdInline(admin.TabularInline):
    model = SpeciesThreshold
    fields = ("species", "threshold")
    autocomplete_fields = ("species",)
    extra = 1


@admin.register(ThresholdSet)
class ThresholdSetAdmin(admin.ModelAdmin):
    list_display = ("name", "default_threshold", "species_count", "created_by", "updated_at")
    search_fields = ("name",)
    list_select_related = ("created_by",)
    readonly_fields = ("uuid", "created_by", "created_at", "updated_at")
    inlines = [SpeciesThresholdInline]

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).annotate(species_count=Count("species"))

    @admin.display(description="species", ordering="species_count")
    def species_count(self, threshold_set: ThresholdSet) -> int:
        return threshold_set.species_count

    def save_model(self, request, threshold_set: ThresholdSet, form, change: bool) -> None:
        if not change:
            threshold_set.created_by = request.user
        super().save_model(request, threshold_set, form, change)
