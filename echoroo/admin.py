"""The Django admin for the core domain, built to stay fast with millions of clips and predictions."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlencode

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from echoroo import deletion, services
from echoroo.formatting import band_text, clock, duration_text
from echoroo.models import (
    SPECIES,
    Clip,
    ClipAnnotation,
    ClipAnnotationTag,
    ClipPrediction,
    ClipPredictionTag,
    Dataset,
    ModelRun,
    Recording,
    Site,
    SoundEvent,
    SoundEventPrediction,
    SoundEventPredictionTag,
    Tag,
)

# Up to this many rows a count is exact; past it, PostgreSQL's estimate numbers the pages.
EXACT_COUNT_LIMIT = 10_000
TOP_TAGS = 3
SHA256 = re.compile(r"^[0-9a-f]{64}$")


# --- Counting without reading every row ------------------------------------------------


def capped_count(queryset: QuerySet, limit: int = EXACT_COUNT_LIMIT) -> int:
    """The number of rows, read no further than `limit` + 1: more than `limit` means "many"."""
    return queryset.order_by()[: limit + 1].count()


def planner_estimate(queryset: QuerySet) -> int:
    """The number of rows PostgreSQL's planner expects the query to return (pg_class.reltuples, statistics)."""
    sql, params = queryset.order_by().query.get_compiler(using=queryset.db).as_sql()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """Pages of a big table with no COUNT(*) over it: exact up to EXACT_COUNT_LIMIT rows, estimated past it.

    Unfiltered, the planner's estimate is the table size from pg_class and costs nothing; filtered,
    a count capped at the limit decides whether the exact number is worth having.
    """

    exact_limit = EXACT_COUNT_LIMIT

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_estimate = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        if not queryset.query.where:
            estimate = planner_estimate(queryset)
            if estimate > self.exact_limit:
                self.is_estimate = True
                return estimate
        exact = capped_count(queryset, self.exact_limit)
        if exact <= self.exact_limit:
            return exact
        self.is_estimate = True
        return max(exact, planner_estimate(queryset))


class BigTableAdmin(admin.ModelAdmin):
    """For tables of millions of rows: no full counts or facets, newest first by primary key."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    ordering = ("-pk",)
    # Sorting by an unindexed column sorts the whole table for one page.
    sortable_by = ("id",)
    readonly_fields = ("uuid",)

    def get_search_results(self, request, queryset, search_term):
        # A UUID finds its row through the unique index; the admin's own "=uuid" would compare text.
        if any(field.name == "uuid" for field in self.opts.concrete_fields):
            try:
                return queryset.filter(uuid=uuid.UUID(search_term.strip())), False
            except ValueError:
                pass
        return super().get_search_results(request, queryset, search_term)


def changelist_link(model, noun: str, **lookups) -> str:
    """A link to `model`'s changelist filtered by `lookups`, with a count that stops at EXACT_COUNT_LIMIT."""
    n = capped_count(model.objects.filter(**lookups))
    count = f"more than {EXACT_COUNT_LIMIT:,}" if n > EXACT_COUNT_LIMIT else f"{n:,}"
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return format_html('<a href="{}?{}">{} {}</a>', url, urlencode(lookups), count, noun)


def tag_label(tag: Tag) -> str:
    return tag.value if tag.key == SPECIES else str(tag)


def scored_tags(rows) -> str:
    return ", ".join(f"{tag_label(row.tag)} ({row.score:.2f})" for row in rows)


def top_tags_prefetch(model) -> Prefetch:
    """The best TOP_TAGS tags of each prediction on the page, in one query (a window function per prediction)."""
    best = model.objects.select_related("tag").order_by("-score", "pk")[:TOP_TAGS]
    return Prefetch("tags", queryset=best, to_attr="top_tags")


# --- Small tables ---------------------------------------------------------------------


class SiteInline(admin.TabularInline):
    model = Site
    fields = ("name", "latitude", "longitude")
    extra = 0
    show_change_link = True


class DeletesInDatabase:
    """Delete in one statement that cascades in PostgreSQL (echoroo.deletion), never through Django's
    collector, which reads every row hanging from a dataset first; the confirmation page counts what
    goes instead of listing it, and names what stops the deletion (a job running on it)."""

    def get_deleted_objects(self, objs, request):
        objs = list(objs)
        pks = [obj.pk for obj in objs]
        names = self.model._meta.verbose_name, self.model._meta.verbose_name_plural
        counts = {(names[0] if len(objs) == 1 else names[1]): len(objs), **deletion.what_goes_with(self.model, pks)}
        listed = [f"{names[0].capitalize()}: {obj}" for obj in objs]
        listed.append([f"{count:,} {label}" for label, count in counts.items() if label not in names])
        return listed, counts, set(), deletion.obstacles(self.model, pks)

    def delete_model(self, request, obj) -> None:
        deletion.delete(self.model, [obj.pk])

    def delete_queryset(self, request, queryset) -> None:
        deletion.delete(self.model, list(queryset.values_list("pk", flat=True)))


# inference/admin.py re-registers DatasetAdmin and RecordingAdmin with its "Run <model>…" actions, one per model.
@admin.register(Dataset)
class DatasetAdmin(DeletesInDatabase, admin.ModelAdmin):
    list_display = ("name", "recording_count", "hours", "created_at")
    search_fields = ("name",)
    autocomplete_fields = ("created_by",)
    readonly_fields = ("uuid", "created_at", "recordings")
    inlines = (SiteInline,)

    def get_queryset(self, request):
        # Subqueries rather than a join: PostgreSQL evaluates them only for the rows on the page.
        recordings = Recording.objects.filter(dataset=OuterRef("pk")).order_by().values("dataset")
        return (
            super()
            .get_queryset(request)
            .annotate(
                recording_count=Coalesce(Subquery(recordings.annotate(n=Count("pk")).values("n")), 0),
                duration_s=Coalesce(Subquery(recordings.annotate(s=Sum("duration")).values("s")), 0.0),
            )
        )

    @admin.display(description="recordings", ordering="recording_count")
    def recording_count(self, dataset: Dataset) -> int:
        return dataset.recording_count

    @admin.display(description="hours", ordering="duration_s")
    def hours(self, dataset: Dataset) -> str:
        return f"{dataset.duration_s / 3600:,.1f}"

    @admin.display(description="recordings")
    def recordings(self, dataset: Dataset) -> str:
        return changelist_link(Recording, "recordings", dataset__id__exact=dataset.pk) if dataset.pk else "-"


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "dataset", "latitude", "longitude")
    list_filter = ("dataset",)
    list_select_related = ("dataset",)
    search_fields = ("name",)
    autocomplete_fields = ("dataset",)
    readonly_fields = ("uuid", "created_at", "recordings")

    @admin.display(description="recordings")
    def recordings(self, site: Site) -> str:
        return changelist_link(Recording, "recordings", site__id__exact=site.pk) if site.pk else "-"


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("key", "value")
    list_filter = ("key",)
    search_fields = ("value", "key")
    readonly_fields = ("uuid",)


@admin.register(ModelRun)
class ModelRunAdmin(DeletesInDatabase, admin.ModelAdmin):
    list_display = ("name", "version", "embedding_dimension", "window", "sample_rate", "created_at")
    search_fields = ("name", "version")
    readonly_fields = ("uuid", "created_at", "clip_predictions", "sound_event_predictions")

    @admin.display(description="window", ordering="segment_duration")
    def window(self, run: ModelRun) -> str:
        return duration_text(run.segment_duration)

    @admin.display(description="clip predictions")
    def clip_predictions(self, run: ModelRun) -> str:
        return changelist_link(ClipPrediction, "clip predictions", model_run__id__exact=run.pk) if run.pk else "-"

    @admin.display(description="sound event predictions")
    def sound_event_predictions(self, run: ModelRun) -> str:
        if not run.pk:
            return "-"
        return changelist_link(SoundEventPrediction, "sound event predictions", model_run__id__exact=run.pk)


# --- Recordings, clips, sound events ----------------------------------------------------


class SiteListFilter(admin.RelatedFieldListFilter):
    """Sites named with their dataset: site names repeat across datasets."""

    def field_choices(self, field, request, model_admin):
        sites = Site.objects.select_related("dataset").order_by("dataset__name", "name")
        return [(site.pk, f"{site.dataset.name} / {site.name}") for site in sites]


class SampleRateListFilter(admin.SimpleListFilter):
    """The usual sample rates: a plain field filter would SELECT DISTINCT over every recording."""

    title = "sample rate"
    parameter_name = "samplerate"
    rates_hz = (8000, 16000, 22050, 24000, 32000, 44100, 48000, 96000, 192000)

    def lookups(self, request, model_admin):
        return [(str(rate), f"{rate / 1000:g} kHz") for rate in self.rates_hz] + [("other", "other")]

    def queryset(self, request, queryset):
        if self.value() == "other":
            return queryset.exclude(samplerate__in=self.rates_hz)
        if self.value() and self.value().isdigit():
            return queryset.filter(samplerate=int(self.value()))
        return queryset


@admin.register(Recording)
class RecordingAdmin(DeletesInDatabase, BigTableAdmin):
    list_display = ("path", "dataset", "site", "length", "samplerate", "channels", "recorded_at")
    list_filter = (
        "dataset",
        ("site", SiteListFilter),
        SampleRateListFilter,
        # Ranges on an indexed column; a date_hierarchy would SELECT DISTINCT over the table.
        ("recorded_at", admin.DateFieldListFilter),
    )
    list_select_related = ("dataset", "site")
    sortable_by = ("recorded_at",)
    search_fields = ("^path",)
    search_help_text = "A path prefix, a recording's UUID or its SHA-256."
    autocomplete_fields = ("dataset", "site")
    readonly_fields = ("uuid", "created_at", "clips", "sound_events")

    def get_search_results(self, request, queryset, search_term):
        if SHA256.match(search_term.strip()):
            return queryset.filter(sha256=search_term.strip()), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="duration")
    def length(self, recording: Recording) -> str:
        return duration_text(recording.duration)

    @admin.display(description="clips")
    def clips(self, recording: Recording) -> str:
        return changelist_link(Clip, "clips", recording__id__exact=recording.pk) if recording.pk else "-"

    @admin.display(description="sound events")
    def sound_events(self, recording: Recording) -> str:
        return changelist_link(SoundEvent, "sound events", recording__id__exact=recording.pk) if recording.pk else "-"


class SpanColumns:
    """A clip's or sound event's start and end as times into its recording (m:ss.s), not bare seconds."""

    @admin.display(description="start")
    def start(self, row: Clip | SoundEvent) -> str:
        return clock(row.start_time)

    @admin.display(description="end")
    def end(self, row: Clip | SoundEvent) -> str:
        return clock(row.end_time)


@admin.register(Clip)
class ClipAdmin(SpanColumns, BigTableAdmin):
    list_display = ("id", "recording", "start", "end")
    list_filter = ("recording__dataset",)
    list_select_related = ("recording",)
    search_fields = ("^recording__path",)
    search_help_text = "A recording's path prefix, or a clip's UUID."
    autocomplete_fields = ("recording",)
    readonly_fields = ("uuid", "predictions", "annotations")

    @admin.display(description="predictions")
    def predictions(self, clip: Clip) -> str:
        return changelist_link(ClipPrediction, "predictions", clip__id__exact=clip.pk) if clip.pk else "-"

    @admin.display(description="annotations")
    def annotations(self, clip: Clip) -> str:
        return changelist_link(ClipAnnotation, "annotations", clip__id__exact=clip.pk) if clip.pk else "-"


@admin.register(SoundEvent)
class SoundEventAdmin(SpanColumns, BigTableAdmin):
    list_display = ("id", "recording", "start", "end", "band")
    list_filter = ("recording__dataset",)
    list_select_related = ("recording",)
    search_fields = ("^recording__path",)
    search_help_text = "A recording's path prefix, or a sound event's UUID."
    autocomplete_fields = ("recording",)
    readonly_fields = ("uuid", "created_at", "predictions")

    @admin.display(description="band")
    def band(self, event: SoundEvent) -> str:
        return band_text(event.low_freq, event.high_freq)

    @admin.display(description="predictions")
    def predictions(self, event: SoundEvent) -> str:
        if not event.pk:
            return "-"
        return changelist_link(SoundEventPrediction, "predictions", sound_event__id__exact=event.pk)


# --- Predictions and annotations ----------------------------------------------------------

# The job filter lists this many jobs, newest first; the job's admin page links to any job's rows.
JOB_FILTER_CHOICES = 50


class JobListFilter(admin.RelatedFieldListFilter):
    """The newest jobs, named by model and target in one query (the plain filter reads each job's target
    separately), and "no job": a classifier run's scores."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.empty_value_display = "no job (a classifier's scores)"

    def field_choices(self, field, request, model_admin):
        jobs = field.related_model.objects.select_related("model_run", "dataset", "recording")
        newest = jobs.order_by("-created_at", "-pk")[:JOB_FILTER_CHOICES]
        return [(job.pk, f"{job}, {job_time(job)}") for job in newest]


def job_time(job) -> str:
    """When a job was created, as the admin names a job among others of its model (not by its database id)."""
    return f"{timezone.localtime(job.created_at):%Y-%m-%d %H:%M}"


def link_to_job(prediction: ClipPrediction | SoundEventPrediction) -> str:
    """The job whose detection this is, by model and creation time (read with the row); a classifier's score has
    none."""
    if prediction.job_id is None:
        return "-"
    url = reverse("admin:inference_inferencejob_change", args=[prediction.job_id])
    return format_html('<a href="{}">{} {}</a>', url, prediction.job.model_run, job_time(prediction.job))


class ClipPredictionTagInline(admin.TabularInline):
    model = ClipPredictionTag
    autocomplete_fields = ("tag",)
    extra = 0


@admin.register(ClipPrediction)
class ClipPredictionAdmin(BigTableAdmin):
    list_display = ("id", "clip", "model_run", "job_link", "top_tags", "created_at")
    list_filter = ("model_run", ("job", JobListFilter), "clip__recording__dataset")
    list_select_related = ("clip__recording", "model_run", "job__model_run")
    search_fields = ("^clip__recording__path",)
    search_help_text = "A recording's path prefix, or a prediction's UUID."
    raw_id_fields = ("clip", "job")
    autocomplete_fields = ("model_run",)
    readonly_fields = ("uuid", "created_at")
    inlines = (ClipPredictionTagInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related(top_tags_prefetch(ClipPredictionTag))

    @admin.display(description="job")
    def job_link(self, prediction: ClipPrediction) -> str:
        return link_to_job(prediction)

    @admin.display(description=f"top {TOP_TAGS} tags")
    def top_tags(self, prediction: ClipPrediction) -> str:
        return scored_tags(prediction.top_tags)


class SoundEventPredictionTagInline(admin.TabularInline):
    model = SoundEventPredictionTag
    autocomplete_fields = ("tag",)
    extra = 0


@admin.register(SoundEventPrediction)
class SoundEventPredictionAdmin(BigTableAdmin):
    list_display = ("id", "sound_event", "model_run", "job_link", "top_tags", "created_at")
    list_filter = ("model_run", ("job", JobListFilter), "sound_event__recording__dataset")
    list_select_related = ("sound_event__recording", "model_run", "job__model_run")
    search_fields = ("^sound_event__recording__path",)
    search_help_text = "A recording's path prefix, or a prediction's UUID."
    raw_id_fields = ("sound_event", "job")
    autocomplete_fields = ("model_run",)
    readonly_fields = ("uuid", "created_at")
    inlines = (SoundEventPredictionTagInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related(top_tags_prefetch(SoundEventPredictionTag))

    @admin.display(description="job")
    def job_link(self, prediction: SoundEventPrediction) -> str:
        return link_to_job(prediction)

    @admin.display(description=f"top {TOP_TAGS} tags")
    def top_tags(self, prediction: SoundEventPrediction) -> str:
        return scored_tags(prediction.top_tags)


class ClipAnnotationTagInline(admin.TabularInline):
    model = ClipAnnotationTag
    autocomplete_fields = ("tag",)
    readonly_fields = ("created_by", "created_at")
    extra = 1


@admin.register(ClipAnnotation)
class ClipAnnotationAdmin(BigTableAdmin):
    list_display = ("id", "clip", "tags", "created_by", "created_at")
    list_filter = ("clip__recording__dataset",)
    list_select_related = ("clip__recording", "created_by")
    # Annotations grow at the pace of people, so scanning their notes stays cheap.
    search_fields = ("^clip__recording__path", "notes")
    search_help_text = "A recording's path prefix, words from the notes, or an annotation's UUID."
    raw_id_fields = ("clip",)
    # Whoever adds an annotation in the admin is its author (save_model).
    readonly_fields = ("uuid", "created_by", "created_at")
    inlines = (ClipAnnotationTagInline,)

    def get_queryset(self, request):
        tags = ClipAnnotationTag.objects.select_related("tag").order_by("pk")
        return super().get_queryset(request).prefetch_related(Prefetch("tags", queryset=tags))

    @admin.display(description="tags")
    def tags(self, annotation: ClipAnnotation) -> str:
        return ", ".join(tag_label(row.tag) for row in annotation.tags.all())

    def save_model(self, request, annotation, form, change):
        if not change and annotation.created_by_id is None:
            annotation.created_by = request.user
        super().save_model(request, annotation, form, change)

    def save_formset(self, request, form, formset, change):
        """The tags added, changed and removed in the inline, written by the service (echoroo.services)."""
        rows = formset.save(commit=False)
        added = [row.tag for row in rows]
        # A row whose tag was changed: its old tag comes off.
        removed = [ClipAnnotationTag.objects.get(pk=row.pk).tag for row in rows if row.pk is not None]
        removed += [row.tag for row in formset.deleted_objects]
        services.retag_clip_annotation(form.instance, by=request.user, add=added, remove=removed)


# --- The tag rows themselves, for browsing one species across runs ---------------------------


@admin.register(ClipPredictionTag)
class ClipPredictionTagAdmin(BigTableAdmin):
    list_display = ("id", "clip_prediction", "tag", "score")
    list_filter = ("clip_prediction__model_run",)
    list_select_related = ("clip_prediction__clip__recording", "clip_prediction__model_run", "tag")
    search_fields = ("^tag__value",)
    search_help_text = "The start of a tag's value (a species' scientific name)."
    raw_id_fields = ("clip_prediction",)
    autocomplete_fields = ("tag",)
    readonly_fields = ()


@admin.register(SoundEventPredictionTag)
class SoundEventPredictionTagAdmin(ClipPredictionTagAdmin):
    list_display = ("id", "sound_event_prediction", "tag", "score")
    list_filter = ("sound_event_prediction__model_run",)
    list_select_related = ("sound_event_prediction__sound_event__recording", "sound_event_prediction__model_run", "tag")
    raw_id_fields = ("sound_event_prediction",)


@admin.register(ClipAnnotationTag)
class ClipAnnotationTagAdmin(ClipPredictionTagAdmin):
    list_display = ("id", "clip_annotation", "tag", "created_by", "created_at")
    list_filter = ()
    list_select_related = ("clip_annotation__clip__recording", "tag", "created_by")
    raw_id_fields = ("clip_annotation",)
    autocomplete_fields = ("tag", "created_by")
    readonly_fields = ("created_at",)
