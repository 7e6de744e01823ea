"""The recording page's sound event annotations: the boxes drawn over its view and the list below it."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.postgres.aggregates import ArrayAgg
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q, Value
from django.urls import reverse
from django.utils import timezone

from annotations.models import SoundEventAnnotation
from echoroo.models import SPECIES, Recording
from inference.birdnet_formats import split_label

# The list below the viewer shows this many annotations of the recording (by time); the API lists them all.
MAX_LISTED = 200
# Annotation boxes drawn over one view at most.
MAX_DRAWN = 300
# A box whose band lies above the image's top is drawn this high (in percent) at its top edge, so it can be clicked.
MIN_HEIGHT_PCT = 2.0
# A box whose top is this near the image's top (in percent: a label's height) writes its label inside itself.
LABEL_INSIDE_PCT = 7.0


def annotation_rows(recording: Recording):
    """The recording's annotations as plain rows with their box, tags and authors, by time: one query however many."""
    texts = ArrayField(models.TextField())
    has_tag = Q(tags__isnull=False)
    return (
        SoundEventAnnotation.objects.filter(recording=recording)
        .values(
            "id",
            "uuid",
            "notes",
            "source",
            "created_at",
            "updated_at",
            "created_by_id",
            sound_event_uuid=F("sound_event__uuid"),
            start_time=F("sound_event__start_time"),
            end_time=F("sound_event__end_time"),
            low_freq=F("sound_event__low_freq"),
            high_freq=F("sound_event__high_freq"),
            created_by_name=F("created_by__username"),
            updated_by_name=F("updated_by__username"),
        )
        .annotate(
            # Keys and values in the same order (by tag row), so that they pair up.
            tag_keys=ArrayAgg("tags__tag__key", filter=has_tag, order_by="tags__id", default=Value([], texts)),
            tag_values=ArrayAgg("tags__tag__value", filter=has_tag, order_by="tags__id", default=Value([], texts)),
        )
        .order_by("sound_event__start_time", "id")
    )


def band_text(low_hz: float | None, high_hz: float | None) -> str:
    if low_hz is None or high_hz is None:
        return "whole band"
    return f"{low_hz / 1000:.1f}–{high_hz / 1000:.1f} kHz"


def placed(row: dict, view_from: float, view_to: float, top_hz: float, bottom_hz: float = 0.0) -> dict:
    """The box's CSS position over the view, in percent: time from left, frequency from the top (the image spans
    `top_hz` down to `bottom_hz`, linearly); an annotation without a band spans the whole height, and a band outside
    the image's is drawn at its top or bottom edge, MIN_HEIGHT_PCT high, so it can be clicked."""
    span = view_to - view_from
    left = max(row["start_time"], view_from)
    right = min(row["end_time"], view_to)
    if row["low_freq"] is None or row["high_freq"] is None:
        top_pct, height_pct = 0.0, 100.0
    else:
        band = top_hz - bottom_hz
        high = min(max(row["high_freq"], bottom_hz), top_hz)
        low = min(max(row["low_freq"], bottom_hz), high)
        top_pct = 100 * (top_hz - high) / band
        height_pct = max(100 * (high - low) / band, MIN_HEIGHT_PCT)
        top_pct = min(top_pct, 100 - height_pct)
    return {
        "left_pct": f"{100 * (left - view_from) / span:.3f}",
        "width_pct": f"{100 * max(right - left, 0.0) / span:.3f}",
        "top_pct": f"{top_pct:.3f}",
        "height_pct": f"{height_pct:.3f}",
        "label_inside": top_pct < LABEL_INSIDE_PCT,
    }


def decorated(row: dict, user, clock, recording_url) -> dict:
    """What the box, the list and the edit form show of one annotation; `data` is what the page's script reads."""
    pairs = list(zip(row["tag_keys"], row["tag_values"], strict=True))
    labels = [value for key, value in pairs if key == SPECIES]
    free_tags = [{"key": key, "value": value} for key, value in pairs if key != SPECIES]
    names = [split_label(label) for label in labels]
    common_names = [common for _, common in names]
    species = [
        {"label": label, "common_name": common, "scientific_name": scientific}
        for label, (scientific, common) in zip(labels, names, strict=True)
    ]
    can_change = bool(user.is_staff or (row["created_by_id"] is not None and row["created_by_id"] == user.pk))
    created_at = timezone.localtime(row["created_at"])
    updated_at = timezone.localtime(row["updated_at"])
    similar_url = reverse("search") + "?" + urlencode({"sound_event": row["sound_event_uuid"], "target": "both"})
    uuid = str(row["uuid"])
    what = ", ".join(common_names) or ", ".join(f"{tag['key']}: {tag['value']}" for tag in free_tags) or "no species"
    return {
        **row,
        "uuid": uuid,
        "species": species,
        "free_tags": free_tags,
        "what": what,
        "clock": clock(row["start_time"]),
        "end_clock": clock(row["end_time"]),
        "band": band_text(row["low_freq"], row["high_freq"]),
        "can_change": can_change,
        "similar_url": similar_url,
        "url": recording_url(row["start_time"], annotation=uuid),
        "data": {
            "uuid": uuid,
            "sound_event": str(row["sound_event_uuid"]),
            "start_time": row["start_time"],
            "end_time": row["end_time"],
            "low_freq": row["low_freq"],
            "high_freq": row["high_freq"],
            "species": labels,
            "species_names": common_names,
            "tags": free_tags,
            "notes": row["notes"],
            "source": row["source"],
            "created_by": row["created_by_name"],
            "created_at": f"{created_at:%Y-%m-%d %H:%M}",
            "updated_by": row["updated_by_name"],
            "updated_at": f"{updated_at:%Y-%m-%d %H:%M}",
            "edited": (row["updated_at"] - row["created_at"]).total_seconds() > 1,
            "can_change": can_change,
            "similar_url": similar_url,
        },
    }


def annotations_context(
    recording: Recording,
    view_from: float,
    view_to: float,
    top_hz: float,
    user,
    clock,
    recording_url,
    bottom_hz: float = 0.0,
) -> dict:
    """The annotations the recording page draws in its view (`top_hz` to `bottom_hz` high) and lists below it.

    The list is the recording's first MAX_LISTED annotations by time; the boxes, those of the view:
    read from the list when it holds every annotation (one query), else by a query of their own.
    `clock` formats seconds, `recording_url(start_s, **params)` links a time of this recording.
    """
    rows = list(annotation_rows(recording)[: MAX_LISTED + 1])
    more = len(rows) > MAX_LISTED
    rows = rows[:MAX_LISTED]
    overlapping = [row for row in rows if row["start_time"] < view_to and row["end_time"] > view_from]
    if more:
        in_view = annotation_rows(recording).filter(
            sound_event__start_time__lt=view_to, sound_event__end_time__gt=view_from
        )
        overlapping = list(in_view[:MAX_DRAWN])
    listed = [decorated(row, user, clock, recording_url) for row in rows]
    by_uuid = {row["uuid"]: row for row in listed}
    drawn = []
    for row in overlapping[:MAX_DRAWN]:
        shown = by_uuid.get(str(row["uuid"])) or decorated(row, user, clock, recording_url)
        drawn.append(
            {**shown, **placed(row, view_from, view_to, top_hz, bottom_hz), "mine": row["created_by_id"] == user.pk}
        )
    drawn_uuids = {box["uuid"] for box in drawn}
    for row in listed:
        row["in_view"] = row["uuid"] in drawn_uuids
    return {
        "annotation_boxes": drawn,
        "annotations": listed,
        "annotations_more": more,
        "annotations_data": {box["uuid"]: box["data"] for box in [*listed, *drawn]},
    }
