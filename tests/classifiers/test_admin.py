"""The admin of classifiers and apply jobs: read-only pages, "Apply" and "Cancel" actions."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from classifiers import services
from classifiers.models import Classifier, ClassifierJob

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_queue(monkeypatch):
    monkeypatch.setattr(services, "enqueue_apply", lambda *args: None)


def test_the_classifier_pages_show_the_metrics(admin_user_logged_in, classifier):
    changelist = admin_user_logged_in.get("/admin/classifiers/classifier/").content.decode()
    assert str(classifier) in changelist and f"{classifier.metrics['roc_auc']:.3f}" in changelist
    page = admin_user_logged_in.get(f"/admin/classifiers/classifier/{classifier.pk}/change/")
    assert page.status_code == 200 and "n_positive" in page.content.decode()
    assert admin_user_logged_in.get("/admin/classifiers/classifier/add/").status_code == 403


def test_a_classifier_without_held_out_figures_says_not_measured_in_the_list(admin_user_logged_in, classifier):
    metrics = {"n_positive": 5, "n_negative": 9, "not_measured": "held-out figures need…"}
    Classifier.objects.filter(pk=classifier.pk).update(metrics=metrics)
    changelist = admin_user_logged_in.get("/admin/classifiers/classifier/").content.decode()
    assert changelist.count("not measured") == 3 and "nan" not in changelist


def test_apply_and_cancel_are_admin_actions(admin_user_logged_in, classifier):
    admin_user_logged_in.post(
        "/admin/classifiers/classifier/", {"action": "apply_classifiers", ACTION_CHECKBOX_NAME: [classifier.pk]}
    )
    job = ClassifierJob.objects.get()
    assert job.status == "pending"
    assert "progress" in admin_user_logged_in.get("/admin/classifiers/classifierjob/").content.decode()
    admin_user_logged_in.post(
        "/admin/classifiers/classifierjob/", {"action": "cancel_jobs", ACTION_CHECKBOX_NAME: [job.pk]}
    )
    job.refresh_from_db()
    assert job.status == "cancelled"
