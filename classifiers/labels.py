"""The label scheme: a clip marked positive or negative for a label set, as a ClipAnnotation with one tag.

    Tag(key="label", value="<label>:positive")   or   Tag(key="label", value="<label>:negative")

The key "label" keeps label sets apart from species and every other tag key (a label named
"species" stays a label); the polarity is what follows the value's last colon, so a label may
itself contain colons. A clip has at most one label per label set: labelling it again replaces
the earlier one (services.label_clips), so the annotation's who and when are the latest word.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, QuerySet, TextChoices

from classifiers.errors import ClassifierError
from classifiers.models import MAX_LABEL_LENGTH
from echoroo.models import ClipAnnotationTag, Tag

LABEL_KEY = "label"


class Polarity(TextChoices):
    POSITIVE = "positive"
    NEGATIVE = "negative"


# Labelling with this instead of a polarity removes the clips' labels for the label set.
CLEAR = "clear"


@dataclass(frozen=True)
class LabelSet:
    """A label and how many clips are marked for it."""

    label: str
    positives: int
    negatives: int
    last_labelled_at: datetime | None


def clean_label(label: object) -> str:
    """The label with surrounding spaces removed; a ClassifierError naming "label" if it cannot be one."""
    if not isinstance(label, str) or not label.strip():
        raise ClassifierError({"label": "give the label's name, e.g. 'Wood frog' or 'Quail call type B'"})
    label = " ".join(label.split())
    if any(ord(character) < 32 or ord(character) == 127 for character in label):
        raise ClassifierError({"label": "no control characters in a label's name"})
    if len(label) > MAX_LABEL_LENGTH:
        raise ClassifierError({"label": f"at most {MAX_LABEL_LENGTH} characters (this one has {len(label)})"})
    return label


def tag_value(label: str, polarity: str) -> str:
    return f"{label}:{polarity}"


def parse_tag_value(value: str) -> tuple[str, str] | None:
    """(label, polarity) of a "label" tag's value, or None if it is not one."""
    label, _, polarity = value.rpartition(":")
    return (label, polarity) if label and polarity in Polarity.values else None


def label_tags(label: str) -> dict[str, Tag]:
    """The positive and negative tags of a label set, created if new."""
    return {
        polarity: Tag.objects.get_or_create(key=LABEL_KEY, value=tag_value(label, polarity))[0]
        for polarity in Polarity.values
    }


def label_examples(label: str, polarity: str | None = None) -> QuerySet[ClipAnnotationTag]:
    """A label set's examples (one ClipAnnotationTag per clip), with their clips, recordings and labellers."""
    polarities = [polarity] if polarity else Polarity.values
    return ClipAnnotationTag.objects.filter(
        tag__key=LABEL_KEY, tag__value__in=[tag_value(label, p) for p in polarities]
    ).select_related(
        "tag", "created_by", "clip_annotation__clip__recording__dataset", "clip_annotation__clip__recording__site"
    )


@dataclass(frozen=True)
class CurrentLabel:
    """A clip's label in a set, and who set it (None: a labeller since deleted, or a command)."""

    polarity: str
    labeller_id: int | None
    labeller: str | None


def current_labels(label: str, clip_ids: list[int]) -> dict[int, CurrentLabel]:
    """Clip id -> its label in the set and its labeller, for these clips (one query)."""
    rows = (
        label_examples(label)
        .filter(clip_annotation__clip_id__in=clip_ids)
        .values_list("clip_annotation__clip_id", "tag__value", "created_by_id", "created_by__username")
    )
    return {
        clip_id: CurrentLabel(parse_tag_value(value)[1], labeller_id, username)
        for clip_id, value, labeller_id, username in rows
    }


def may_change(current: CurrentLabel, user) -> bool:
    """Whether `user` may change or clear this label: its labeller or staff (a label set is shared ground truth:
    someone else's yes or no is theirs to change)."""
    return bool(user.is_staff or (current.labeller_id is not None and current.labeller_id == user.pk))


def labelled_clips(label: str) -> dict[int, str]:
    """Clip id -> polarity, for every clip labelled in the label set."""
    rows = label_examples(label).values_list("clip_annotation__clip_id", "tag__value")
    return {clip_id: parse_tag_value(value)[1] for clip_id, value in rows}


def label_sets() -> list[LabelSet]:
    """Every label set with its counts, in alphabetical order (one aggregate query)."""
    rows = (
        ClipAnnotationTag.objects.filter(tag__key=LABEL_KEY)
        .values("tag__value")
        .annotate(clips=Count("id"), last=Max("created_at"))
        .order_by()
    )
    counts: dict[str, dict] = {}
    for row in rows:
        parsed = parse_tag_value(row["tag__value"])
        if parsed is None:
            continue
        label, polarity = parsed
        entry = counts.setdefault(label, {Polarity.POSITIVE: 0, Polarity.NEGATIVE: 0, "last": None})
        entry[polarity] += row["clips"]
        entry["last"] = max(filter(None, (entry["last"], row["last"])), default=None)
    return [
        LabelSet(label, entry[Polarity.POSITIVE], entry[Polarity.NEGATIVE], entry["last"])
        for label, entry in sorted(counts.items(), key=lambda item: item[0].casefold())
    ]


def label_set(label: str) -> LabelSet:
    """One label set's counts."""
    rows = dict(
        label_examples(label)
        .values("tag__value")
        .annotate(clips=Count("id"))
        .order_by()
        .values_list("tag__value", "clips")
    )
    last = label_examples(label).aggregate(last=Max("created_at"))["last"]
    return LabelSet(
        label,
        rows.get(tag_value(label, Polarity.POSITIVE), 0),
        rows.get(tag_value(label, Polarity.NEGATIVE), 0),
        last,
    )
