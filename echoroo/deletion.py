"""Deleting datasets, recordings, model runs and inference jobs in one DELETE, cascading in PostgreSQL.

The foreign keys below them cascade in the database (echoroo.cascades), so a dataset with
millions of clips, predictions and embeddings goes in one statement instead of Django reading
every row first. Used by the admin and the API.

The core knows its own rows only. Each app that hangs rows from these models, or whose work
forbids a deletion, says so with `register` when it is ready (its `deletion_rules` module): what
goes with a deletion (counted for the confirmation), what stops it now (a job running on what would
be deleted: its worker would write rows for a recording that is gone; a model run that jobs name),
and what must be deleted first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Model, QuerySet

from echoroo.models import (
    Clip,
    ClipAnnotation,
    ClipPrediction,
    Dataset,
    ModelRun,
    Recording,
    SoundEvent,
    SoundEventPrediction,
)
from embeddings.indexes import TABLES, index_name
from embeddings.models import ClipEmbedding, SoundEventEmbedding


class DeletionRefused(Exception):
    """Why these rows cannot be deleted now."""


@dataclass(frozen=True)
class Rules:
    """An app's part in deleting rows of `model` (any callable may be left out)."""

    model: type[Model] | str  # a model, or its "app.Model" label
    goes_with: Callable[[list[int]], dict[str, QuerySet]] | None = None  # label -> the rows that go too
    obstacles: Callable[[list[int]], list[str]] | None = None  # what stops it now, in words
    before: Callable[[object, list[int]], None] | None = None  # SQL to run first, on the cursor

    def applies_to(self, model: type[Model]) -> bool:
        return self.model is model or self.model == model._meta.label


_RULES: list[Rules] = []


def register(rules: Rules) -> None:
    """Add an app's rules (from its AppConfig.ready)."""
    _RULES.append(rules)


def _of(model: type[Model]) -> list[Rules]:
    return [rules for rules in _RULES if rules.applies_to(model)]


def deletable(model: type[Model]) -> bool:
    return model in (Dataset, Recording, ModelRun) or bool(_of(model))


def what_goes_with(model: type[Model], pks: list[int]) -> dict[str, int]:
    """How many rows of each kind a deletion takes with it (kinds with none left out)."""
    if not deletable(model):
        raise TypeError(f"{model.__name__} is not deleted here")
    counts: dict[str, QuerySet] = {}
    if model in (Dataset, Recording):
        through = {"recording__dataset__in": pks} if model is Dataset else {"recording__in": pks}
        if model is Dataset:
            counts["recordings"] = Recording.objects.filter(dataset__in=pks)
        clips = {f"clip__{key}": value for key, value in through.items()}
        counts |= {
            "clips": Clip.objects.filter(**through),
            "clip predictions": ClipPrediction.objects.filter(**clips),
            "clip embeddings": ClipEmbedding.objects.filter(**clips),
            "clip annotations": ClipAnnotation.objects.filter(**clips),
            "sound events": SoundEvent.objects.filter(**through),
        }
    elif model is ModelRun:
        counts |= {
            "clip predictions": ClipPrediction.objects.filter(model_run__in=pks),
            "sound event predictions": SoundEventPrediction.objects.filter(model_run__in=pks),
            "clip embeddings": ClipEmbedding.objects.filter(model_run__in=pks),
            "sound event embeddings": SoundEventEmbedding.objects.filter(model_run__in=pks),
            "model runs made from it": ModelRun.objects.filter(source__in=pks),
        }
    for rules in _of(model):
        if rules.goes_with is not None:
            counts |= rules.goes_with(pks)
    return {label: n for label, queryset in counts.items() if (n := queryset.count())}


def obstacles(model: type[Model], pks: list[int]) -> list[str]:
    """What stops the deletion now, in words (nothing: it may go ahead)."""
    if not deletable(model):
        raise TypeError(f"{model.__name__} is not deleted here")
    found: list[str] = []
    for rules in _of(model):
        if rules.obstacles is not None:
            found += rules.obstacles(pks)
    return found


def delete(model: type[Model], pks: list[int]) -> int:
    """Delete these rows and everything hanging from them, in one statement; how many were deleted."""
    pks = [int(pk) for pk in pks]
    if not pks:
        return 0
    with transaction.atomic():
        # Lock the rows first, so no job starts on them between the check and the delete.
        list(model.objects.select_for_update().filter(pk__in=pks).values_list("pk", flat=True))
        refused = obstacles(model, pks)
        if refused:
            raise DeletionRefused("; ".join(refused))
        with connection.cursor() as cursor:
            for rules in _of(model):
                if rules.before is not None:
                    rules.before(cursor, pks)
            if model is ModelRun:
                for kind in TABLES:
                    for pk in pks:
                        cursor.execute(f"DROP INDEX IF EXISTS {index_name(kind, pk)}")
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE id = ANY(%s)", [pks])
            return cursor.rowcount
