"""Labelling: clips marked positive or negative as annotations with who and when; the latest mark wins."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from classifiers import labels, services
from classifiers.errors import ClassifierError
from echoroo.models import Clip, ClipAnnotation, ClipAnnotationTag, Tag
from echoroo.services import annotate_clip
from tests.classifiers.conftest import LABEL

pytestmark = pytest.mark.django_db


def test_a_label_is_an_annotation_with_one_tag_by_its_labeller(planted, user):
    before = timezone.now()
    counts = services.label_clips(planted.clip_uuids[:3], label=LABEL, polarity="positive", by=user)
    assert (counts.label, counts.positives, counts.negatives) == (LABEL, 3, 0)
    annotations = ClipAnnotation.objects.filter(clip_id__in=planted.clip_ids[:3].tolist())
    assert annotations.count() == 3
    for annotation in annotations:
        (tag,) = annotation.tags.select_related("tag")
        assert (tag.tag.key, tag.tag.value) == ("label", f"{LABEL}:positive")
        assert annotation.created_by == tag.created_by == user
        assert tag.created_at >= before


def test_labelling_again_replaces_the_earlier_label(planted, user, staff):
    services.label_clips(planted.clip_uuids[:2], label=LABEL, polarity="positive", by=user)
    counts = services.label_clips(planted.clip_uuids[:1], label=LABEL, polarity="negative", by=staff)
    assert (counts.positives, counts.negatives) == (1, 1)
    assert labels.labelled_clips(LABEL) == {planted.clip_ids[0]: "negative", planted.clip_ids[1]: "positive"}
    (example,) = labels.label_examples(LABEL, "negative")
    assert example.created_by == staff
    assert ClipAnnotation.objects.count() == 2  # the replaced annotation, left empty, is gone


def test_clear_removes_the_label_but_keeps_other_tags_of_the_annotation(planted, user):
    clip = Clip.objects.get(pk=planted.clip_ids[0])
    annotate_clip(clip, by=user, tags=[("label", f"{LABEL}:positive"), ("call type", "song")])
    counts = services.label_clips([clip.uuid], label=LABEL, polarity="clear", by=user)
    assert (counts.positives, counts.negatives) == (0, 0)
    (annotation,) = ClipAnnotation.objects.all()
    assert [t.tag.value for t in annotation.tags.all()] == ["song"]


def test_label_sets_are_kept_apart_from_each_other_and_from_species(planted, user):
    services.label_clips(planted.clip_uuids[:2], label="species", polarity="positive", by=user)
    services.label_clips(planted.clip_uuids[:3], label="Frog: type A", polarity="negative", by=user)
    sets = {s.label: (s.positives, s.negatives) for s in labels.label_sets()}
    assert sets == {"species": (2, 0), "Frog: type A": (0, 3)}
    assert not Tag.objects.filter(key="species").exists()
    assert labels.parse_tag_value("Frog: type A:negative") == ("Frog: type A", "negative")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"label": " ", "polarity": "positive"}, "label"),
        ({"label": "x" * 101, "polarity": "positive"}, "label"),
        ({"label": "a\x00b", "polarity": "positive"}, "label"),
        ({"label": LABEL, "polarity": "maybe"}, "polarity"),
    ],
)
def test_bad_labelling_is_refused_naming_the_field(planted, user, kwargs, field):
    with pytest.raises(ClassifierError) as error:
        services.label_clips(planted.clip_uuids[:1], by=user, **kwargs)
    assert field in error.value.errors
    assert not ClipAnnotationTag.objects.exists()


def test_unknown_clips_are_named_and_nothing_is_labelled(planted, user):
    unknown = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(ClassifierError, match=unknown):
        services.label_clips([planted.clip_uuids[0], unknown], label=LABEL, polarity="positive", by=user)
    assert not ClipAnnotation.objects.exists()


# Whose label it is: its labeller's or staff's to change.


@pytest.fixture
def other(django_user_model):
    return django_user_model.objects.create_user(username="birder", password="pw-birder-1")


def marks() -> dict:
    return {
        example.clip_annotation.clip_id: (labels.parse_tag_value(example.tag.value)[1], example.created_by)
        for example in labels.label_examples(LABEL)
    }


@pytest.mark.parametrize("polarity", ["negative", "clear"])
def test_another_user_may_not_flip_or_clear_a_label_and_nothing_is_written(planted, user, other, polarity):
    services.label_clips(planted.clip_uuids[:2], label=LABEL, polarity="positive", by=user)
    before = marks()
    with pytest.raises(PermissionDenied) as error:
        # One of the user's clips among two unlabelled ones: the whole request is refused.
        services.label_clips(planted.clip_uuids[1:4], label=LABEL, polarity=polarity, by=other)
    message = str(error.value)
    assert "1 of these clips is labelled 'Planted call' by ecologist" in message
    assert planted.clip_uuids[1] in message and planted.clip_uuids[0] not in message
    assert marks() == before


def test_another_user_giving_the_same_label_leaves_it_theirs_and_labels_the_rest(planted, user, other):
    services.label_clips(planted.clip_uuids[:1], label=LABEL, polarity="positive", by=user)
    services.label_clips(planted.clip_uuids[:3], label=LABEL, polarity="positive", by=other)
    ids = planted.clip_ids[:3].tolist()
    assert marks() == {ids[0]: ("positive", user), ids[1]: ("positive", other), ids[2]: ("positive", other)}


def test_the_labeller_and_staff_may_change_a_label(planted, user, other, staff):
    services.label_clips(planted.clip_uuids[:2], label=LABEL, polarity="positive", by=user)
    services.label_clips(planted.clip_uuids[:1], label=LABEL, polarity="negative", by=user)
    services.label_clips(planted.clip_uuids[1:2], label=LABEL, polarity="clear", by=staff)
    assert marks() == {planted.clip_ids[0]: ("negative", user)}
    services.label_clips(planted.clip_uuids[:1], label=LABEL, polarity="positive", by=staff)
    assert marks() == {planted.clip_ids[0]: ("positive", staff)}
    with pytest.raises(PermissionDenied):  # now staff's label
        services.label_clips(planted.clip_uuids[:1], label=LABEL, polarity="negative", by=user)


def test_a_label_of_a_deleted_user_is_staffs_to_change(planted, other, staff, django_user_model):
    gone = django_user_model.objects.create_user(username="gone", password="pw-gone-1")
    services.label_clips(planted.clip_uuids[:1], label=LABEL, polarity="positive", by=gone)
    gone.delete()
    with pytest.raises(PermissionDenied, match="by a deleted user"):
        services.label_clips(planted.clip_uuids[:1], label=LABEL, polarity="negative", by=other)
    services.label_clips(planted.clip_uuids[:1], label=LABEL, polarity="negative", by=staff)
    assert marks() == {planted.clip_ids[0]: ("negative", staff)}
