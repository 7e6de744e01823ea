"""Deleting datasets, recordings, model runs and inference jobs in one DELETE, cascading in PostgreSQL.

The foreign keys below them cascade in the database (echoroo.cascades), so a dataset with
millions of clips, predictions and embeddings goes in one statement instead of Django reading
every row first. Used by the admin and the API. A deletion is refused while a job still works on
what would be deleted (its worker would write rows for a recording that is gone), and for a model
run that inference jobs name (they are its history; delete them first).
"""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import Model, Q

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


def _running_inference(q: Q):
    from inference.models import InferenceJob

    return InferenceJob.objects.filter(status=InferenceJob.Status.RUNNING).filter(q)


def _running_classifiers(q: Q):
    from classifiers.models import ClassifierJob

    return ClassifierJob.objects.filter(status__in=ClassifierJob.ACTIVE).filter(q)


def what_goes_with(model: type[Model], pks: list[int]) -> dict[str, int]:
    """How many rows of each kind a deletion takes with it (kinds with none left out)."""
    from annotations.models import SoundEventAnnotation
    from inference.models import InferenceJob

    if model is Dataset:
        through = {"recording__dataset__in": pks}
        counts = {"recordings": Recording.objects.filter(dataset__in=pks)}
    elif model is Recording:
        through = {"recording__in": pks}
        counts = {}
    elif model is InferenceJob:
        counts = {
            "window detections": ClipPrediction.objects.filter(job__in=pks),
            "merged detections": SoundEventPrediction.objects.filter(job__in=pks),
        }
        return {label: n for label, queryset in counts.items() if (n := queryset.count())}
    elif model is ModelRun:
        from classifiers.models import Classifier

        counts = {
            "clip predictions": ClipPrediction.objects.filter(model_run__in=pks),
            "sound event predictions": SoundEventPrediction.objects.filter(model_run__in=pks),
            "clip embeddings": ClipEmbedding.objects.filter(model_run__in=pks),
            "sound event embeddings": SoundEventEmbedding.objects.filter(model_run__in=pks),
            "classifiers": Classifier.objects.filter(Q(model_run__in=pks) | Q(source__in=pks)),
            "model runs made from it": ModelRun.objects.filter(source__in=pks),
        }
        return {label: n for label, queryset in counts.items() if (n := queryset.count())}
    else:
        raise TypeError(f"{model.__name__} is not deleted here")
    clips = {f"clip__{key}": value for key, value in through.items()}
    counts |= {
        "clips": Clip.objects.filter(**through),
        "clip predictions": ClipPrediction.objects.filter(**clips),
        "clip embeddings": ClipEmbedding.objects.filter(**clips),
        "clip annotations": ClipAnnotation.objects.filter(**clips),
        "sound events": SoundEvent.objects.filter(**through),
        "sound event annotations": SoundEventAnnotation.objects.filter(**through),
    }
    return {label: n for label, queryset in counts.items() if (n := queryset.count())}


def obstacles(model: type[Model], pks: list[int]) -> list[str]:
    """What stops the deletion now, in words (nothing: it may go ahead)."""
    from inference.models import InferenceJob

    if model is Dataset:
        running = _running_inference(
            Q(dataset__in=pks) | Q(recording__dataset__in=pks) | Q(job_recordings__recording__dataset__in=pks)
        )
    elif model is Recording:
        running = _running_inference(Q(recording__in=pks) | Q(job_recordings__recording__in=pks))
    elif model is InferenceJob:
        running = InferenceJob.objects.filter(pk__in=pks, status=InferenceJob.Status.RUNNING)
        return [f"inference job {job.uuid} is running: cancel it first" for job in running.order_by("pk")]
    elif model is ModelRun:
        named = InferenceJob.objects.filter(model_run__in=pks).order_by("pk")
        found = [f"inference job {job.uuid} ({job.status}) used this model run: delete the job first" for job in named]
        classifying = _running_classifiers(Q(classifier__model_run__in=pks) | Q(classifier__source__in=pks))
        return found + [f"classifier job {job.uuid} is {job.status}: cancel it first" for job in classifying]
    else:
        raise TypeError(f"{model.__name__} is not deleted here")
    return [f"inference job {job.uuid} is running on it: cancel it first" for job in running.distinct().order_by("pk")]


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
            if model._meta.label == "inference.InferenceJob":
                delete_sound_events_of_jobs(cursor, pks)
            if model is ModelRun:
                for kind in TABLES:
                    for pk in pks:
                        cursor.execute(f"DROP INDEX IF EXISTS {index_name(kind, pk)}")
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE id = ANY(%s)", [pks])
            return cursor.rowcount


def delete_sound_events_of_jobs(cursor, job_ids: list[int]) -> None:
    """A job's merged detections are sound events made for it: they go with it (its other rows cascade
    from the job itself; the model's raw output and the embeddings stay, they are the model run's)."""
    cursor.execute(
        "DELETE FROM echoroo_soundevent WHERE id IN "
        "(SELECT sound_event_id FROM echoroo_soundeventprediction WHERE job_id = ANY(%s))",
        [job_ids],
    )
