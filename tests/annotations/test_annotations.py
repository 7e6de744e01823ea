"""Sound event annotations: the box's constraints, species names, permissions and history, through the services."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from annotations import services
from annotations.errors import AnnotationError
from annotations.models import AnnotationChange, SoundEventAnnotation
from annotations.species import SpeciesNames, matching
from echoroo.models import SoundEvent

GROUSE = "Bonasa umbellus_Ruffed Grouse"
ROBIN = "Turdus migratorius_American Robin"


def draw(recording, user, **box):
    values = {"start_time": 1.0, "end_time": 2.5, "low_freq": 500.0, "high_freq": 4000.0, "species": [GROUSE]}
    return services.create_annotation(recording, by=user, **(values | box))


def test_a_box_is_stored_with_its_species_tags_and_author(field_recording, user):
    annotation = draw(field_recording, user, tags=[("call_type", "drum")], notes="faint")
    event = annotation.sound_event
    assert (event.start_time, event.end_time, event.low_freq, event.high_freq) == (1.0, 2.5, 500.0, 4000.0)
    assert event.recording == field_recording == annotation.recording
    assert sorted((row.tag.key, row.tag.value) for row in annotation.tags.all()) == [
        ("call_type", "drum"),
        ("species", GROUSE),
    ]
    assert annotation.created_by == user and annotation.notes == "faint"


@pytest.mark.parametrize(
    ("box", "field", "words"),
    [
        ({"start_time": -0.5}, "start_time", "negative"),
        ({"start_time": 3.0, "end_time": 3.0}, "end_time", "after start_time"),
        ({"end_time": 60.5}, "end_time", "past the recording's end"),
        ({"low_freq": 4000.0, "high_freq": 4000.0}, "high_freq", "above low_freq"),
        ({"high_freq": 16_001.0}, "high_freq", "Nyquist"),  # 1min.wav is 32 kHz
        ({"low_freq": -1.0}, "low_freq", "negative"),
        ({"high_freq": None}, "high_freq", "together"),
        ({"end_time": float("nan")}, "end_time", "finite"),
        ({"species": ["Dodo"]}, "species", "unknown species: Dodo"),
    ],
)
def test_a_bad_box_is_refused_naming_the_field_and_writes_nothing(field_recording, user, box, field, words):
    with pytest.raises(AnnotationError) as refused:
        draw(field_recording, user, **box)
    assert words in refused.value.errors[field]
    assert not SoundEventAnnotation.objects.exists() and not SoundEvent.objects.exists()


def test_a_box_may_reach_exactly_the_end_and_the_nyquist_frequency(field_recording, user):
    annotation = draw(field_recording, user, start_time=58.0, end_time=60.0, high_freq=16_000.0)
    assert annotation.sound_event.high_freq == 16_000.0


def test_a_box_without_frequencies_covers_the_whole_band(field_recording, user):
    annotation = draw(field_recording, user, low_freq=None, high_freq=None)
    assert annotation.sound_event.low_freq is None and annotation.sound_event.high_freq is None


@pytest.mark.parametrize("name", [GROUSE, "Bonasa umbellus", "Ruffed Grouse", "ruffed grouse", "rufgro"])
def test_species_are_named_by_label_scientific_or_common_name_or_ebird_code(db, name):
    assert SpeciesNames().label(name) == GROUSE


def test_type_ahead_finds_labels_by_the_start_of_either_name(db):
    found = matching("ruffed")
    assert found[0] == GROUSE
    assert ROBIN in matching("american rob")
    assert matching("") == []


def test_moving_a_box_keeps_its_tags_and_records_the_change(field_recording, user):
    annotation = draw(field_recording, user)
    moved = services.update_annotation(annotation, by=user, start_time=4.0, end_time=5.0)
    assert (moved.sound_event.start_time, moved.sound_event.end_time) == (4.0, 5.0)
    assert [row.tag.value for row in moved.tags.all()] == [GROUSE]
    changes = list(AnnotationChange.objects.filter(annotation_uuid=annotation.uuid))
    assert [change.action for change in changes] == ["created", "changed"]
    assert changes[1].before["start_time"] == 1.0 and changes[1].after["start_time"] == 4.0
    assert changes[1].by == user


def test_retagging_replaces_the_species_and_keeps_the_free_tags(field_recording, user):
    annotation = draw(field_recording, user, tags=[("call_type", "song")])
    changed = services.update_annotation(annotation, by=user, species=["American Robin"])
    assert sorted(row.tag.value for row in changed.tags.all()) == [ROBIN, "song"]


def test_a_bad_change_writes_nothing(field_recording, user):
    annotation = draw(field_recording, user)
    with pytest.raises(AnnotationError):
        services.update_annotation(annotation, by=user, start_time=10.0, species=["Dodo"])
    annotation.sound_event.refresh_from_db()
    assert annotation.sound_event.start_time == 1.0
    assert AnnotationChange.objects.count() == 1


def test_only_the_author_or_staff_may_change_or_delete(field_recording, user, staff, django_user_model):
    annotation = draw(field_recording, user)
    other = django_user_model.objects.create_user(username="another", password="pw-another-1")
    with pytest.raises(PermissionDenied):
        services.update_annotation(annotation, by=other, notes="mine now")
    with pytest.raises(PermissionDenied):
        services.delete_annotation(annotation, by=other)
    services.update_annotation(annotation, by=staff, notes="checked")
    services.delete_annotation(annotation, by=staff)
    assert not SoundEventAnnotation.objects.exists() and not SoundEvent.objects.exists()
    deleted = AnnotationChange.objects.get(action="deleted")
    assert deleted.by == staff and deleted.before["notes"] == "checked"


def test_several_annotators_annotate_the_same_call(field_recording, user, staff):
    draw(field_recording, user)
    draw(field_recording, staff, species=["American Robin"])
    assert sorted(SoundEventAnnotation.objects.values_list("created_by__username", flat=True)) == [
        "curator",
        "ecologist",
    ]


def test_an_import_adds_every_row_or_none_and_never_twice(field_recording, user):
    rows = [
        services.ImportedAnnotation(field_recording, 1.0, 2.0, 100.0, 2000.0, [("species", GROUSE)], import_key="a"),
        services.ImportedAnnotation(field_recording, 3.0, 4.0, None, None, [("species", ROBIN)], import_key="b"),
    ]
    first = services.add_imported(rows, by=user, source="raven")
    assert (first.added, first.already_there) == (2, 0)
    again = services.add_imported(rows, by=user, source="raven")
    assert (again.added, again.already_there) == (0, 2)
    bad = [*rows, services.ImportedAnnotation(field_recording, 5.0, 99.0, None, None, import_key="c")]
    with pytest.raises(AnnotationError) as refused:
        services.add_imported(bad, by=user, source="raven")
    assert "row 3" in refused.value.errors
    assert SoundEventAnnotation.objects.count() == 2


def test_deleting_the_dataset_takes_its_annotations_tags_and_history(field_dataset, field_recording, user):
    from annotations.models import SoundEventAnnotationTag
    from echoroo import deletion
    from echoroo.models import Dataset

    draw(field_recording, user, tags=[("call_type", "drum")])
    assert deletion.what_goes_with(Dataset, [field_dataset.pk])["sound event annotations"] == 1
    deletion.delete(Dataset, [field_dataset.pk])
    assert not SoundEventAnnotation.objects.exists()
    assert not SoundEventAnnotationTag.objects.exists() and not AnnotationChange.objects.exists()
