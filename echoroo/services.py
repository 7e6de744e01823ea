"""Services of the core domain: the writes that touch several models, one function per user action."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from echoroo.models import Clip, ClipAnnotation, ClipAnnotationTag, Tag


def annotate_clip(
    clip: Clip, *, by: AbstractBaseUser, notes: str = "", tags: Iterable[tuple[str, str]] = ()
) -> ClipAnnotation:
    """Record a person's annotation of a clip, with its (key, value) tags, creating tags that are new."""
    with transaction.atomic():
        annotation = ClipAnnotation.objects.create(clip=clip, created_by=by, notes=notes)
        # dict.fromkeys: a tag given twice is one row (clip_annotation_tag_unique), in the order given.
        for key, value in dict.fromkeys(tags):
            tag, _ = Tag.objects.get_or_create(key=key, value=value)
            ClipAnnotationTag.objects.create(clip_annotation=annotation, tag=tag, created_by=by)
    return annotation


def retag_clip_annotation(
    annotation: ClipAnnotation, *, by: AbstractBaseUser, add: Iterable[Tag] = (), remove: Iterable[Tag] = ()
) -> None:
    """Take tags off a person's clip annotation and put others on (a tag it already has stays one row)."""
    with transaction.atomic():
        ClipAnnotationTag.objects.filter(clip_annotation=annotation, tag__in=list(remove)).delete()
        have = set(ClipAnnotationTag.objects.filter(clip_annotation=annotation).values_list("tag_id", flat=True))
        ClipAnnotationTag.objects.bulk_create(
            ClipAnnotationTag(clip_annotation=annotation, tag=tag, created_by=by)
            for tag in dict.fromkeys(add)
            if tag.pk not in have
        )
