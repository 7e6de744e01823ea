"""Sound event annotations: create, change, delete, confirm a detection, and add imported rows in bulk.

Every write goes through here (API, admin, pages, imports), in one transaction, with a history row
(AnnotationChange) saying who changed what. Anyone logged in may annotate; an annotation is changed
or deleted only by its author or by staff. Saving a box queues its embeddings (embeddings.tasks).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.db.models import Prefetch

from annotations.errors import AnnotationError
from annotations.models import AnnotationChange, SoundEventAnnotation, SoundEventAnnotationTag
from annotations.species import SpeciesNames
from echoroo.models import SPECIES, ClipPrediction, Recording, SoundEvent, SoundEventPrediction, Tag
from embeddings.models import SoundEventEmbedding

# Times a box may pass the recording's end by (float seconds written by other tools).
END_TOLERANCE_S = 1e-3
MAX_TAG_LENGTH = 300


def nyquist_hz(recording: Recording) -> float:
    return recording.samplerate / 2


def box_errors(
    recording: Recording, start_time: float, end_time: float, low_freq: float | None, high_freq: float | None
) -> dict[str, str]:
    """What is wrong with a box on this recording, by field (empty when it is fine)."""
    errors: dict[str, str] = {}
    numbers = {"start_time": start_time, "end_time": end_time, "low_freq": low_freq, "high_freq": high_freq}
    for name, value in numbers.items():
        if value is None and name in ("start_time", "end_time"):
            errors[name] = "is required"
        elif value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            errors[name] = "must be a number"
        elif value is not None and not math.isfinite(value):
            errors[name] = "must be a finite number"
    if errors:
        return errors
    if start_time < 0:
        errors["start_time"] = "must not be negative"
    elif start_time >= end_time:
        errors["end_time"] = "must be after start_time"
    elif end_time > recording.duration + END_TOLERANCE_S:
        errors["end_time"] = f"is past the recording's end ({recording.duration:g} s)"
    if (low_freq is None) != (high_freq is None):
        errors["high_freq" if high_freq is None else "low_freq"] = "give low_freq and high_freq together, or neither"
    elif low_freq is not None:
        nyquist = nyquist_hz(recording)
        if low_freq < 0:
            errors["low_freq"] = "must not be negative"
        elif low_freq >= high_freq:
            errors["high_freq"] = "must be above low_freq"
        elif high_freq > nyquist:
            errors["high_freq"] = f"is above the recording's Nyquist frequency ({nyquist:g} Hz, half its sample rate)"
    return errors


def can_change(annotation: SoundEventAnnotation, user) -> bool:
    return bool(user and user.is_authenticated and (user.is_staff or annotation.created_by_id == user.pk))


def tag_pairs(
    species: Iterable[str] = (), tags: Iterable[tuple[str, str]] = (), *, names: SpeciesNames | None = None
) -> list[tuple[str, str]]:
    """(key, value) pairs of an annotation's tags: species resolved to the model's labels, free tags as given."""
    errors: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    species = [name for name in species if str(name).strip()]
    if species:
        names = names or SpeciesNames()
        unknown = []
        for name in species:
            label = names.label(str(name))
            if label is None:
                unknown.append(str(name))
            else:
                pairs.append((SPECIES, label))
        if unknown:
            errors["species"] = (
                f"unknown species: {', '.join(unknown)} (name a model label, a scientific or common name, "
                "or an eBird code)"
            )
    for key, value in tags:
        key, value = str(key).strip(), str(value).strip()
        if not key or not value:
            errors["tags"] = "each tag needs a key and a value (e.g. call_type: song)"
        elif len(key) > 100 or len(value) > MAX_TAG_LENGTH:
            errors["tags"] = f"a tag's key may be 100 characters and its value {MAX_TAG_LENGTH}"
        elif key == SPECIES:
            errors["tags"] = 'give species in "species", not as a tag'
        else:
            pairs.append((key, value))
    if errors:
        raise AnnotationError(errors)
    return list(dict.fromkeys(pairs))


def tags_by_pair(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Tag]:
    """The Tag rows of these pairs, created where new (two queries whatever their number)."""
    pairs = list(dict.fromkeys(pairs))
    if not pairs:
        return {}
    Tag.objects.bulk_create([Tag(key=key, value=value) for key, value in pairs], ignore_conflicts=True)
    found = {}
    for tag in Tag.objects.filter(key__in={key for key, _ in pairs}, value__in={value for _, value in pairs}):
        found[(tag.key, tag.value)] = tag
    return {pair: found[pair] for pair in pairs}


def snapshot(annotation: SoundEventAnnotation) -> dict:
    """The annotation as the history keeps it."""
    event = annotation.sound_event
    return {
        "start_time": event.start_time,
        "end_time": event.end_time,
        "low_freq": event.low_freq,
        "high_freq": event.high_freq,
        "tags": sorted(f"{row.tag.key}:{row.tag.value}" for row in annotation.tags.select_related("tag")),
        "notes": annotation.notes,
    }


def with_tags():
    """Annotations with their event, recording and tags loaded (the queryset the API and pages read)."""
    return SoundEventAnnotation.objects.select_related(
        "sound_event", "recording", "created_by", "updated_by"
    ).prefetch_related(Prefetch("tags", queryset=SoundEventAnnotationTag.objects.select_related("tag", "created_by")))


def create_annotation(
    recording: Recording,
    *,
    by,
    start_time: float,
    end_time: float,
    low_freq: float | None = None,
    high_freq: float | None = None,
    species: Sequence[str] = (),
    tags: Sequence[tuple[str, str]] = (),
    notes: str = "",
    source: str = SoundEventAnnotation.Source.DRAWN,
    detection: SoundEventPrediction | None = None,
    import_key: str = "",
) -> SoundEventAnnotation:
    """A new annotation: a box on the recording with its species and tags, written with its history row."""
    errors = box_errors(recording, start_time, end_time, low_freq, high_freq)
    try:
        pairs = tag_pairs(species, tags)
    except AnnotationError as error:
        errors.update(error.errors)
    if errors:
        raise AnnotationError(errors)
    with transaction.atomic():
        event = SoundEvent.objects.create(
            recording=recording, start_time=start_time, end_time=end_time, low_freq=low_freq, high_freq=high_freq
        )
        annotation = SoundEventAnnotation.objects.create(
            sound_event=event,
            recording=recording,
            source=source,
            detection=detection,
            import_key=import_key,
            notes=notes,
            created_by=by,
            updated_by=by,
        )
        SoundEventAnnotationTag.objects.bulk_create(
            SoundEventAnnotationTag(annotation=annotation, tag=tag, created_by=by)
            for tag in tags_by_pair(pairs).values()
        )
        _record(annotation, AnnotationChange.Action.CREATED, by, before=None, after=snapshot(annotation))
        _queue_embeddings([event.pk])
    return annotation


_UNSET = object()


def update_annotation(
    annotation: SoundEventAnnotation,
    *,
    by,
    start_time=_UNSET,
    end_time=_UNSET,
    low_freq=_UNSET,
    high_freq=_UNSET,
    species=_UNSET,
    tags=_UNSET,
    notes=_UNSET,
) -> SoundEventAnnotation:
    """Move or resize the box, replace its species or tags, or change its notes; what is not given stays."""
    if not can_change(annotation, by):
        raise PermissionDenied("only staff or the annotation's author may change it")
    with transaction.atomic():
        annotation = with_tags().select_for_update(of=("self",)).get(pk=annotation.pk)
        event = annotation.sound_event
        before = snapshot(annotation)
        box = {
            "start_time": event.start_time if start_time is _UNSET else start_time,
            "end_time": event.end_time if end_time is _UNSET else end_time,
            "low_freq": event.low_freq if low_freq is _UNSET else low_freq,
            "high_freq": event.high_freq if high_freq is _UNSET else high_freq,
        }
        errors = box_errors(annotation.recording, **box)
        current = [(row.tag.key, row.tag.value) for row in annotation.tags.all()]
        pairs = None
        if species is not _UNSET or tags is not _UNSET:
            kept_species = [value for key, value in current if key == SPECIES] if species is _UNSET else species
            kept_tags = [(key, value) for key, value in current if key != SPECIES] if tags is _UNSET else tags
            try:
                pairs = tag_pairs(kept_species, kept_tags)
            except AnnotationError as error:
                errors.update(error.errors)
        if errors:
            raise AnnotationError(errors)
        moved = any(getattr(event, name) != value for name, value in box.items())
        if moved:
            for name, value in box.items():
                setattr(event, name, value)
            event.save(update_fields=list(box))
            # The old box's embeddings no longer describe it: computed again below.
            SoundEventEmbedding.objects.filter(sound_event=event).delete()
            _queue_embeddings([event.pk])
        if pairs is not None and pairs != current:
            wanted = tags_by_pair(pairs)
            annotation.tags.exclude(tag__in=list(wanted.values())).delete()
            have = set(annotation.tags.values_list("tag_id", flat=True))
            SoundEventAnnotationTag.objects.bulk_create(
                SoundEventAnnotationTag(annotation=annotation, tag=tag, created_by=by)
                for tag in wanted.values()
                if tag.pk not in have
            )
        if notes is not _UNSET:
            annotation.notes = notes or ""
        annotation.updated_by = by
        annotation.save(update_fields=["notes", "updated_by", "updated_at"])
        annotation = with_tags().get(pk=annotation.pk)
        after = snapshot(annotation)
        if after != before:
            _record(annotation, AnnotationChange.Action.CHANGED, by, before=before, after=after)
    return annotation


def delete_annotation(annotation: SoundEventAnnotation, *, by) -> None:
    """Delete the annotation and its box; the history keeps what it was."""
    if not can_change(annotation, by):
        raise PermissionDenied("only staff or the annotation's author may delete it")
    with transaction.atomic():
        annotation = with_tags().select_for_update(of=("self",)).get(pk=annotation.pk)
        _record(annotation, AnnotationChange.Action.DELETED, by, before=snapshot(annotation), after=None)
        annotation.sound_event.delete()  # the annotation, its tags and the box's embeddings go with it


def confirm_detection(prediction: SoundEventPrediction, *, by, species: str | None = None) -> SoundEventAnnotation:
    """A detection's box as an annotation of its species (or the one named): once per detection and species."""
    prediction = SoundEventPrediction.objects.select_related("sound_event__recording").get(pk=prediction.pk)
    if species is None:
        row = prediction.tags.select_related("tag").order_by("-score").first()
        if row is None:
            raise AnnotationError({"detection": "this detection has no species to confirm"})
        species = row.tag.value
    label = _label_of(species)
    event = prediction.sound_event
    box = (event.start_time, event.end_time, event.low_freq, event.high_freq)
    return _confirmed(event.recording, f"detection:{prediction.uuid}:{label}", box, label, by=by, detection=prediction)


def confirm_window(clip_prediction: ClipPrediction, species: str, *, by) -> SoundEventAnnotation:
    """A window detection confirmed: the job's merged detection of that species holding the window, else the window."""
    label = _label_of(species)
    clip = clip_prediction.clip
    if clip_prediction.job_id is not None:
        merged = (
            SoundEventPrediction.objects.filter(
                job_id=clip_prediction.job_id,
                sound_event__recording_id=clip.recording_id,
                sound_event__start_time__lte=clip.start_time,
                sound_event__end_time__gte=clip.end_time,
                tags__tag__key=SPECIES,
                tags__tag__value=label,
            )
            .order_by("sound_event__start_time")
            .first()
        )
        if merged is not None:
            return confirm_detection(merged, by=by, species=label)
    box = (clip.start_time, clip.end_time, None, None)
    return _confirmed(clip.recording, f"window:{clip_prediction.uuid}:{label}", box, label, by=by)


def _label_of(species: str) -> str:
    label = SpeciesNames().label(species)
    if label is None:
        raise AnnotationError({"species": f"unknown species: {species}"})
    return label


def _confirmed(recording: Recording, key: str, box: tuple, label: str, *, by, detection=None) -> SoundEventAnnotation:
    """The annotation a confirmation made: the one with this key if there is one, else a new one."""
    existing = SoundEventAnnotation.objects.filter(recording=recording, import_key=key).first()
    if existing is not None:
        return existing
    start_time, end_time, low_freq, high_freq = box
    try:
        with transaction.atomic():
            return create_annotation(
                recording,
                by=by,
                start_time=start_time,
                end_time=end_time,
                low_freq=low_freq,
                high_freq=high_freq,
                species=[label],
                source=SoundEventAnnotation.Source.DETECTION,
                detection=detection,
                import_key=key,
            )
    except IntegrityError:  # the same confirmation, sent twice at once: the other one is kept
        return SoundEventAnnotation.objects.get(recording=recording, import_key=key)


@dataclass
class ImportedAnnotation:
    """One row an import brings: a box on a recording, its tags, and the key a re-import recognises it by."""

    recording: Recording
    start_time: float
    end_time: float
    low_freq: float | None
    high_freq: float | None
    tags: list[tuple[str, str]] = field(default_factory=list)  # species already resolved to labels
    notes: str = ""
    import_key: str = ""
    uuid: str | None = None  # kept when given (an AOEF annotation's own uuid), so a round trip matches
    created_by: object | None = None  # the annotator named by the file, if known here
    created_at: datetime | None = None  # when the file says it was made (else: now)


@dataclass(frozen=True)
class ImportResult:
    added: int
    already_there: int
    annotations: Sequence[SoundEventAnnotation]  # those added, in order (a queryset: read only if needed)


def add_imported(rows: Sequence[ImportedAnnotation], *, by, source: str) -> ImportResult:
    """Add imported annotations in bulk, in one transaction: all of them or none; rows already imported are skipped.

    A row is already there when its recording holds an annotation with its import key (or its
    uuid). Every box is checked first; the first bad one fails the whole import with its field.
    """
    errors: dict[str, str] = {}
    for number, row in enumerate(rows, 1):
        problems = box_errors(row.recording, row.start_time, row.end_time, row.low_freq, row.high_freq)
        if problems:
            errors[f"row {number}"] = "; ".join(f"{name} {message}" for name, message in problems.items())
            if len(errors) >= 20:
                break
    if errors:
        raise AnnotationError(errors)
    with transaction.atomic():
        seen_keys = set(
            SoundEventAnnotation.objects.filter(
                recording__in={row.recording.pk for row in rows if row.import_key},
                import_key__in={row.import_key for row in rows if row.import_key},
            ).values_list("recording_id", "import_key")
        )
        seen_uuids = {
            str(value)
            for value in SoundEventAnnotation.objects.filter(
                uuid__in=[row.uuid for row in rows if row.uuid]
            ).values_list("uuid", flat=True)
        }
        new: list[ImportedAnnotation] = []
        for row in rows:
            key = (row.recording.pk, row.import_key)
            if (row.import_key and key in seen_keys) or (row.uuid and str(row.uuid) in seen_uuids):
                continue
            if row.import_key:
                seen_keys.add(key)
            if row.uuid:
                seen_uuids.add(str(row.uuid))
            new.append(row)
        event_ids, annotation_ids = _write_imported(new, by=by, source=source)
        _queue_embeddings(event_ids)
    annotations = SoundEventAnnotation.objects.filter(pk__in=annotation_ids).order_by("pk")
    return ImportResult(added=len(new), already_there=len(rows) - len(new), annotations=annotations)


def _write_imported(rows: list[ImportedAnnotation], *, by, source: str) -> tuple[list[int], list[int]]:
    """Write the rows' boxes, annotations, tags and history in five set-based statements; (event ids, annotation ids).

    Arrays unnested by PostgreSQL, ids drawn from the sequences first: no Django object per row
    (bulk_create of 100,000 annotations spent most of an import building and quoting them).
    """
    if not rows:
        return [], []
    count = len(rows)
    by_id = by.pk if by is not None and by.is_authenticated else None
    authors = [row.created_by.pk if row.created_by is not None else by_id for row in rows]
    tags = tags_by_pair(pair for row in rows for pair in row.tags)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('echoroo_soundevent', 'id')),"
            " nextval(pg_get_serial_sequence('annotations_soundeventannotation', 'id'))"
            " FROM generate_series(1, %s)",
            [count],
        )
        event_ids, annotation_ids = (list(column) for column in zip(*cursor.fetchall(), strict=True))
        cursor.execute(
            "INSERT INTO echoroo_soundevent (id, uuid, recording_id, start_time, end_time, low_freq, high_freq,"
            " created_at) SELECT id, gen_random_uuid(), recording_id, s, e, low, high, now()"
            " FROM unnest(%s::bigint[], %s::bigint[], %s::float8[], %s::float8[], %s::float8[], %s::float8[])"
            " AS d(id, recording_id, s, e, low, high)",
            [
                event_ids,
                [row.recording.pk for row in rows],
                [float(row.start_time) for row in rows],
                [float(row.end_time) for row in rows],
                [None if row.low_freq is None else float(row.low_freq) for row in rows],
                [None if row.high_freq is None else float(row.high_freq) for row in rows],
            ],
        )
        cursor.execute(
            "INSERT INTO annotations_soundeventannotation (id, uuid, sound_event_id, recording_id, source, import_key,"
            " notes, created_by_id, created_at, updated_by_id, updated_at)"
            " SELECT id, coalesce(u, gen_random_uuid()), event_id, recording_id, %s, k, n, author,"
            " coalesce(made, now()), %s, now()"
            " FROM unnest(%s::bigint[], %s::uuid[], %s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::bigint[],"
            " %s::timestamptz[]) AS d(id, u, event_id, recording_id, k, n, author, made)",
            [
                source,
                by_id,
                annotation_ids,
                [str(row.uuid) if row.uuid else None for row in rows],
                event_ids,
                [row.recording.pk for row in rows],
                [row.import_key for row in rows],
                [row.notes for row in rows],
                authors,
                [row.created_at for row in rows],
            ],
        )
        pairs = [
            (annotation_id, tags[pair].pk, author)
            for row, annotation_id, author in zip(rows, annotation_ids, authors, strict=True)
            for pair in dict.fromkeys(row.tags)
        ]
        if pairs:
            cursor.execute(
                "INSERT INTO annotations_soundeventannotationtag (annotation_id, tag_id, created_by_id, created_at)"
                " SELECT a, t, author, now() FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS d(a, t, author)",
                [list(column) for column in zip(*pairs, strict=True)],
            )
        cursor.execute(
            "INSERT INTO annotations_annotationchange (annotation_uuid, recording_id, action, by_id, at, after)"
            " SELECT a.uuid, a.recording_id, %s, %s, now(), d.after FROM unnest(%s::bigint[], %s::jsonb[])"
            " AS d(id, after) JOIN annotations_soundeventannotation a ON a.id = d.id",
            [
                AnnotationChange.Action.CREATED,
                by_id,
                annotation_ids,
                [
                    json.dumps(
                        {
                            "start_time": row.start_time,
                            "end_time": row.end_time,
                            "low_freq": row.low_freq,
                            "high_freq": row.high_freq,
                            "tags": sorted(f"{key}:{value}" for key, value in dict.fromkeys(row.tags)),
                            "notes": row.notes,
                            "source": source,
                        }
                    )
                    for row in rows
                ],
            ],
        )
    return event_ids, annotation_ids


def _record(annotation: SoundEventAnnotation, action: str, by, *, before: dict | None, after: dict | None) -> None:
    AnnotationChange.objects.create(
        annotation_uuid=annotation.uuid,
        recording_id=annotation.recording_id,
        action=action,
        by=by if by is not None and by.is_authenticated else None,
        before=before,
        after=after,
    )


def _queue_embeddings(sound_event_ids: list[int]) -> None:
    """Once the transaction commits, the workers embed the boxes with every installed model."""
    if sound_event_ids:
        transaction.on_commit(lambda: _enqueue(sound_event_ids), robust=True)


def _enqueue(sound_event_ids: list[int]) -> None:
    from embeddings.tasks import queue_sound_event_embeddings

    queue_sound_event_embeddings(sound_event_ids)
