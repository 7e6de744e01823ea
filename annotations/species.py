"""Species names as people write them -> the model's labels ("Scientific_Common"), for annotations and imports.

A species is named by its full label, its scientific name, its common name (any case) or its eBird
code. The labels are those of the installed models that know theirs without loading (BirdNET's
label file), and the species tags already in the database (Perch's classes, once seen).
"""

from __future__ import annotations

from functools import cache

from django.conf import settings

from echoroo.models import SPECIES, Tag
from inference.birdnet_formats import ebird_codes
from inference.runtimes import available_runtimes, runtime_class
from inference.runtimes.base import Label


@cache
def model_labels() -> tuple[str, ...]:
    """Every label of the installed models that are known without loading them, sorted."""
    found: set[str] = set()
    for name in available_runtimes():
        labels = runtime_class(name).known_labels(settings)
        if labels:
            found.update(label.name for label in labels)
    return tuple(sorted(found))


class SpeciesNames:
    """Looks names up among the labels; built once per import, then every lookup is a dict read."""

    def __init__(self) -> None:
        labels = set(model_labels())
        labels.update(Tag.objects.filter(key=SPECIES).values_list("value", flat=True))
        self.labels = labels
        self.by_name: dict[str, str | None] = {}
        ambiguous: set[str] = set()
        for label in sorted(labels):
            parsed = Label.parse(label)
            for name in {label, parsed.scientific_name, parsed.common_name} - {""}:
                key = name.casefold()
                if key in self.by_name and self.by_name[key] != label:
                    ambiguous.add(key)
                self.by_name[key] = label
        for label, code in ebird_codes().items():
            if label in labels:
                self.by_name.setdefault(code.casefold(), label)
        for key in ambiguous:
            self.by_name[key] = None  # two labels share the name: only the full label names either

    def label(self, name: str) -> str | None:
        """The label `name` stands for, or None when it names no label (or more than one)."""
        name = (name or "").strip()
        if name in self.labels:
            return name
        return self.by_name.get(name.casefold())


def matching(prefix: str, *, limit: int = 20) -> list[str]:
    """Labels whose scientific or common name (or full label) starts with the prefix, or holds it; for type-ahead."""
    wanted = (prefix or "").strip().casefold()
    if not wanted:
        return []
    labels = sorted(set(model_labels()) | set(Tag.objects.filter(key=SPECIES).values_list("value", flat=True)))
    starts, holds = [], []
    for label in labels:
        parsed = Label.parse(label)
        names = [part.casefold() for part in (parsed.scientific_name, parsed.common_name) if part]
        if any(name.startswith(wanted) for name in names) or label.casefold().startswith(wanted):
            starts.append(label)
        elif wanted in label.casefold():
            holds.append(label)
    return (starts + holds)[:limit]
