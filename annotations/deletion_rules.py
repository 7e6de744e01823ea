"""What sound event annotations mean for deleting a dataset or a recording: they go with it (counted)."""

from __future__ import annotations

from echoroo.deletion import Rules, register
from echoroo.models import Dataset, Recording


def _annotations(field: str):
    def goes_with(pks: list[int]) -> dict:
        from annotations.models import SoundEventAnnotation

        return {"sound event annotations": SoundEventAnnotation.objects.filter(**{field: pks})}

    return goes_with


def register_rules() -> None:
    register(Rules(Dataset, goes_with=_annotations("recording__dataset__in")))
    register(Rules(Recording, goes_with=_annotations("recording__in")))
