"""What classifiers mean for deleting a model run (echoroo.deletion): its classifiers go with it, unless one is busy."""

from __future__ import annotations

from django.db.models import Q

from echoroo.deletion import Rules, register
from echoroo.models import ModelRun


def _busy(pks: list[int]) -> list[str]:
    from classifiers.models import ClassifierJob

    busy = ClassifierJob.objects.filter(status__in=ClassifierJob.ACTIVE).filter(
        Q(classifier__model_run__in=pks) | Q(classifier__source__in=pks)
    )
    return [f"classifier job {job.uuid} is {job.status}: cancel it first" for job in busy.distinct().order_by("pk")]


def _classifiers(pks: list[int]) -> dict:
    from classifiers.models import Classifier

    return {"classifiers": Classifier.objects.filter(Q(model_run__in=pks) | Q(source__in=pks))}


def register_rules() -> None:
    register(Rules(ModelRun, goes_with=_classifiers, obstacles=_busy))
