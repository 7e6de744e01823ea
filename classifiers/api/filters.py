"""Query-string filters of the classifiers API; related rows are named by uuid."""

from __future__ import annotations

from django_filters import rest_framework as filters

from classifiers.models import Classifier, ClassifierJob
from echoroo.api.filters import uuid_of


class ClassifierFilter(filters.FilterSet):
    source = uuid_of("source", "model run whose embeddings it scores")

    class Meta:
        model = Classifier
        fields = ["label"]


class ClassifierJobFilter(filters.FilterSet):
    classifier = uuid_of("classifier", "classifier")

    class Meta:
        model = ClassifierJob
        fields = ["status"]
