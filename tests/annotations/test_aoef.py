"""Whombat's AOEF in and out: files written by soundevent itself import, our exports read back with soundevent."""

from __future__ import annotations

import datetime
import hashlib
import uuid
from pathlib import Path, PurePosixPath

import pytest
import soundevent.io
import soundfile
from soundevent import data, terms

from annotations import services
from annotations.aoef import export_aoef, import_aoef
from annotations.errors import AnnotationError
from annotations.models import SoundEventAnnotation
from echoroo.models import SoundEvent
from tests.conftest import import_field_recordings

GROUSE = "Bonasa umbellus_Ruffed Grouse"
ROBIN = "Turdus migratorius_American Robin"


@pytest.fixture
def grouse_recording(field_dataset):
    """rugr_drum.wav: ten seconds of ruffed grouse drumming (32 kHz)."""
    return field_dataset.recordings.get(path__endswith="rugr_drum.wav")


@pytest.fixture
def second_dataset(field_dataset, audio_root):
    """The same two files, copied into another folder and imported as another dataset."""
    return import_field_recordings(audio_root, ["1min.wav", "rugr_drum.wav"], dataset="Second season")


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes(), usedforsecurity=False).hexdigest()


def whombat_recording(recording, *, path=None, with_hash=True) -> data.Recording:
    """The recording as Whombat registers it: its own uuid, the header's duration, the file's md5."""
    info = soundfile.info(str(recording.absolute_path))
    return data.Recording(
        uuid=uuid.uuid4(),
        path=path or recording.absolute_path,
        duration=info.frames / info.samplerate,
        samplerate=info.samplerate,
        channels=info.channels,
        hash=md5(recording.absolute_path) if with_hash else None,
    )


def box(recording: data.Recording, geometry, tags, **fields) -> data.SoundEventAnnotation:
    return data.SoundEventAnnotation(
        sound_event=data.SoundEvent(recording=recording, geometry=geometry), tags=tags, **fields
    )


def project_file(tmp_path, clips: list[tuple[data.Recording, list]], *, audio_dir=None, clip_tags=()) -> Path:
    """An annotation project written by soundevent's own saver: one clip (and task) per recording, with these boxes."""
    clip_annotations = [
        data.ClipAnnotation(
            clip=data.Clip(recording=recording, start_time=0.0, end_time=recording.duration),
            sound_events=boxes,
            tags=list(clip_tags),
        )
        for recording, boxes in clips
    ]
    path = tmp_path / "whombat_project.json"
    tasks = [data.AnnotationTask(clip=clip_annotation.clip) for clip_annotation in clip_annotations]
    project = data.AnnotationProject(name="Grouse survey", clip_annotations=clip_annotations, tasks=tasks)
    soundevent.io.save(project, path, audio_dir=audio_dir)
    return path


def summary(dataset) -> list[tuple]:
    """The dataset's annotations as a person compares them: file, box, tags, notes, author."""
    return sorted(
        (
            PurePosixPath(annotation.recording.path).name,
            annotation.sound_event.start_time,
            annotation.sound_event.end_time,
            annotation.sound_event.low_freq,
            annotation.sound_event.high_freq,
            tuple(sorted((row.tag.key, row.tag.value) for row in annotation.tags.all())),
            annotation.notes,
            annotation.created_by.username,
        )
        for annotation in services.with_tags().filter(recording__dataset=dataset)
    )


def test_a_project_written_by_soundevent_imports_its_boxes_species_tags_notes_and_annotators(
    tmp_path, audio_root, field_dataset, field_recording, grouse_recording, user, staff
):
    minute, drum = whombat_recording(field_recording), whombat_recording(grouse_recording)
    drumming = box(
        drum,
        data.BoundingBox(coordinates=[1.0, 50.0, 3.5, 400.0]),
        [data.Tag(key="species", value="Bonasa umbellus"), data.Tag(key="call_type", value="drum")],
        notes=[data.Note(message="clear drum")],
        created_by=data.User(username="ecologist"),
        created_on=datetime.datetime(2024, 5, 1, 6, 30),
    )
    song = box(
        minute,
        data.TimeInterval(coordinates=[10.0, 12.5]),
        [data.Tag(term=terms.scientific_name, value="Turdus migratorius")],
        created_by=data.User(username="someone_in_whombat", email="someone@example.org"),
    )
    outline = box(
        minute,
        data.Polygon(coordinates=[[[20.0, 2000.0], [21.0, 4000.0], [22.0, 2500.0], [20.0, 2000.0]]]),
        [data.Tag(term=terms.common_name, value="American Robin")],
    )
    path = project_file(
        tmp_path,
        [(minute, [song, outline]), (drum, [drumming])],
        audio_dir=audio_root / "Field_season",
        clip_tags=[data.Tag(key="quality", value="A")],
    )

    result = import_aoef(field_dataset, path, by=staff)

    assert (result.added, result.already_there) == (3, 0)
    assert (result.clip_tags_skipped, result.shapes_as_boxes) == (2, 1)  # the clip tag, once on each clip
    found = {annotation.uuid: annotation for annotation in services.with_tags()}
    drummed, sung, outlined = found[drumming.uuid], found[song.uuid], found[outline.uuid]
    assert drummed.recording == grouse_recording and sung.recording == outlined.recording == field_recording
    events = [
        (a.sound_event.start_time, a.sound_event.end_time, a.sound_event.low_freq, a.sound_event.high_freq)
        for a in (drummed, sung, outlined)
    ]
    assert events == [(1.0, 3.5, 50.0, 400.0), (10.0, 12.5, None, None), (20.0, 22.0, 2000.0, 4000.0)]
    assert sorted((row.tag.key, row.tag.value) for row in drummed.tags.all()) == [
        ("call_type", "drum"),
        ("species", GROUSE),
    ]
    assert [(row.tag.key, row.tag.value) for row in sung.tags.all()] == [("species", ROBIN)]
    assert [(row.tag.key, row.tag.value) for row in outlined.tags.all()] == [("species", ROBIN)]
    assert drummed.notes == "clear drum" and drummed.source == SoundEventAnnotation.Source.AOEF
    # The annotator known here by username keeps the box; the one who is not is credited to the importer.
    assert (drummed.created_by, sung.created_by, outlined.created_by) == (user, staff, staff)
    # When it was made in Whombat (soundevent writes UTC), not when it came here.
    assert drummed.created_at == datetime.datetime(2024, 5, 1, 6, 30, tzinfo=datetime.UTC)


def test_importing_the_same_file_again_adds_nothing(tmp_path, field_dataset, field_recording, staff):
    minute = whombat_recording(field_recording)
    song = box(minute, data.TimeInterval(coordinates=[10.0, 12.5]), [data.Tag(key="species", value="American Robin")])
    path = project_file(tmp_path, [(minute, [song])])
    import_aoef(field_dataset, path, by=staff)
    before = (SoundEventAnnotation.objects.count(), SoundEvent.objects.count())

    again = import_aoef(field_dataset, path, by=staff)

    assert (again.added, again.already_there) == (0, 1)
    assert (SoundEventAnnotation.objects.count(), SoundEvent.objects.count()) == before


@pytest.mark.parametrize("digest", ["md5", "sha256"])
def test_a_recording_whombat_holds_under_another_path_is_found_by_its_hash(
    tmp_path, field_dataset, field_recording, staff, digest
):
    moved = whombat_recording(field_recording, path=Path("/srv/whombat/audio/take_07.wav"))
    moved.hash = hashlib.new(digest, field_recording.absolute_path.read_bytes()).hexdigest()
    path = project_file(tmp_path, [(moved, [box(moved, data.TimeInterval(coordinates=[1.0, 2.0]), [])])])

    result = import_aoef(field_dataset, path, by=staff)

    assert result.added == 1 and result.annotations[0].recording == field_recording


def test_a_file_with_recordings_not_in_the_dataset_names_them_and_writes_nothing(
    tmp_path, field_dataset, field_recording, staff
):
    minute = whombat_recording(field_recording)
    ghost = data.Recording(path=Path("elsewhere/ghost.wav"), duration=30.0, samplerate=32000, channels=1)
    lookalike = data.Recording(path=Path("other_site/1min.wav"), duration=59.0, samplerate=32000, channels=1)
    path = project_file(
        tmp_path,
        [
            (minute, [box(minute, data.TimeInterval(coordinates=[1.0, 2.0]), [])]),
            (ghost, [box(ghost, data.TimeInterval(coordinates=[1.0, 2.0]), [])]),
            (lookalike, [box(lookalike, data.TimeInterval(coordinates=[3.0, 4.0]), [])]),
        ],
    )

    with pytest.raises(AnnotationError) as refused:
        import_aoef(field_dataset, path, by=staff)

    assert "elsewhere/ghost.wav" in refused.value.errors["recordings"]
    assert "other_site/1min.wav" in refused.value.errors["recording_mismatch"]
    assert "lasts 60 s, not 59 s" in refused.value.errors["recording_mismatch"]
    assert not SoundEventAnnotation.objects.exists() and not SoundEvent.objects.exists()


def test_unknown_species_are_named_and_nothing_is_written(tmp_path, field_dataset, field_recording, staff):
    minute = whombat_recording(field_recording)
    boxes = [
        box(minute, data.TimeInterval(coordinates=[1.0, 2.0]), [data.Tag(key="species", value="Bonasa umbellus")]),
        box(minute, data.TimeInterval(coordinates=[3.0, 4.0]), [data.Tag(key="species", value="Raphus cucullatus")]),
    ]
    path = project_file(tmp_path, [(minute, boxes)])

    with pytest.raises(AnnotationError) as refused:
        import_aoef(field_dataset, path, by=staff)

    assert list(refused.value.errors) == ["species"]
    assert refused.value.errors["species"].startswith("unknown species: Raphus cucullatus (")
    assert not SoundEventAnnotation.objects.exists()


def test_an_annotation_set_and_an_uploaded_file_import_alike(tmp_path, field_dataset, field_recording, staff):
    minute = whombat_recording(field_recording)
    song = box(minute, data.TimeInterval(coordinates=[10.0, 12.5]), [data.Tag(key="species", value="amerob")])
    clip = data.Clip(recording=minute, start_time=0.0, end_time=minute.duration)
    path = tmp_path / "set.json"
    soundevent.io.save(data.AnnotationSet(clip_annotations=[data.ClipAnnotation(clip=clip, sound_events=[song])]), path)

    with open(path, "rb") as upload:
        result = import_aoef(field_dataset, upload, by=staff)

    (annotation,) = result.annotations
    assert str(annotation.uuid) == str(song.uuid) and result.added == 1
    assert [(row.tag.key, row.tag.value) for row in annotation.tags.all()] == [("species", ROBIN)]


def test_an_instant_or_a_box_past_the_recording_is_refused_naming_the_annotation(
    tmp_path, field_dataset, field_recording, staff
):
    minute = whombat_recording(field_recording)
    instant = box(minute, data.TimeStamp(coordinates=5.0), [])
    too_long = box(minute, data.BoundingBox(coordinates=[59.0, 100.0, 61.0, 200.0]), [])
    path = project_file(tmp_path, [(minute, [instant, too_long])])

    with pytest.raises(AnnotationError) as refused:
        import_aoef(field_dataset, path, by=staff)

    assert str(instant.uuid) in refused.value.errors["geometry"] and "TimeStamp" in refused.value.errors["geometry"]
    assert str(too_long.uuid) in refused.value.errors["boxes"] and "recording's end" in refused.value.errors["boxes"]
    assert not SoundEventAnnotation.objects.exists()


def test_files_without_annotations_are_refused_or_add_nothing(tmp_path, field_dataset, field_recording, staff):
    not_json = tmp_path / "notes.json"
    not_json.write_text("these are not annotations")
    with pytest.raises(AnnotationError) as refused:
        import_aoef(field_dataset, not_json, by=staff)
    assert "not an AOEF file" in refused.value.errors["file"]

    predictions = tmp_path / "predictions.json"
    soundevent.io.save(data.PredictionSet(clip_predictions=[]), predictions)
    with pytest.raises(AnnotationError) as refused:
        import_aoef(field_dataset, predictions, by=staff)
    assert "PredictionSet" in refused.value.errors["file"]

    whombat_dataset = tmp_path / "dataset.json"
    soundevent.io.save(data.Dataset(name="Field", recordings=[whombat_recording(field_recording)]), whombat_dataset)
    result = import_aoef(field_dataset, whombat_dataset, by=staff)
    assert (result.added, result.already_there) == (0, 0)


def draw_two(field_recording, grouse_recording, user, staff):
    services.create_annotation(
        grouse_recording,
        by=user,
        start_time=1.25,
        end_time=3.5,
        low_freq=40.0,
        high_freq=420.5,
        species=[GROUSE],
        tags=[("call_type", "drum"), ("quality", "A")],
        notes="second drum roll",
    )
    services.create_annotation(field_recording, by=staff, start_time=10.0, end_time=12.5, species=[ROBIN])


def test_our_export_reads_back_with_soundevent_and_holds_our_annotations(
    tmp_path, field_dataset, field_recording, grouse_recording, user, staff
):
    draw_two(field_recording, grouse_recording, user, staff)
    path = tmp_path / "out" / "project.json"

    written = export_aoef(field_dataset, path)

    assert written == 2
    project = soundevent.io.load(path, type="annotation_project")
    assert isinstance(project, data.AnnotationProject) and project.name == field_dataset.name
    assert len(project.tasks) == len(project.clip_annotations) == 2
    ours = {annotation.uuid: annotation for annotation in services.with_tags()}
    for clip_annotation in project.clip_annotations:
        clip, recording = clip_annotation.clip, clip_annotation.clip.recording
        here = field_dataset.recordings.get(path=str(recording.path))
        assert not recording.path.is_absolute() and recording.hash == md5(here.absolute_path)
        assert (recording.duration, recording.samplerate, recording.channels) == (here.duration, 32000, 1)
        assert (clip.start_time, clip.end_time) == (0.0, here.duration)
        for exported in clip_annotation.sound_events:
            annotation = ours[exported.uuid]
            event = annotation.sound_event
            assert exported.sound_event.recording.uuid == here.uuid == annotation.recording.uuid
            scientific, _, common = [row.tag.value for row in annotation.tags.all() if row.tag.key == "species"][
                0
            ].partition("_")
            assert data.find_tag(exported.tags, term=terms.scientific_name).value == scientific
            assert data.find_tag(exported.tags, term=terms.common_name).value == common
            assert exported.created_by.username == annotation.created_by.username
            if event.low_freq is None:
                assert exported.sound_event.geometry == data.TimeInterval(
                    coordinates=[event.start_time, event.end_time]
                )
            else:
                assert exported.sound_event.geometry.coordinates == [
                    event.start_time,
                    event.low_freq,
                    event.end_time,
                    event.high_freq,
                ]
                assert data.find_tag(exported.tags, key="call_type").value == "drum"
                assert [note.message for note in exported.notes] == ["second drum roll"]


def test_an_export_imported_into_another_dataset_of_the_same_recordings_equals_the_original(
    tmp_path, field_dataset, second_dataset, field_recording, grouse_recording, user, staff
):
    draw_two(field_recording, grouse_recording, user, staff)
    path = tmp_path / "project.json"
    export_aoef(field_dataset, path)

    result = import_aoef(second_dataset, path, by=staff)

    assert (result.added, result.already_there) == (2, 0)
    assert summary(second_dataset) == summary(field_dataset)
    assert import_aoef(second_dataset, path, by=staff).added == 0
    assert import_aoef(field_dataset, path, by=staff).added == 0  # our own annotations, by their uuids
    # Exported again from the second dataset, the annotations keep the uuids Whombat would know them by.
    again = tmp_path / "again.json"
    export_aoef(second_dataset, again)
    exported = {box.uuid for clip in soundevent.io.load(again).clip_annotations for box in clip.sound_events}
    assert exported == set(
        SoundEventAnnotation.objects.filter(recording__dataset=field_dataset).values_list("uuid", flat=True)
    )


def test_an_export_gives_whombat_back_its_own_recording_uuids(tmp_path, field_dataset, field_recording, staff):
    minute = whombat_recording(field_recording)
    song = box(
        minute, data.TimeInterval(coordinates=[10.0, 12.5]), [data.Tag(key="species", value="Turdus migratorius")]
    )
    import_aoef(field_dataset, project_file(tmp_path, [(minute, [song])]), by=staff)
    path = tmp_path / "back.json"

    assert export_aoef(field_dataset, path, recordings=[field_recording]) == 1

    (clip_annotation,) = soundevent.io.load(path).clip_annotations
    assert clip_annotation.clip.recording.uuid == minute.uuid
    assert [exported.uuid for exported in clip_annotation.sound_events] == [song.uuid]
