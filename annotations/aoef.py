"""Whombat's AOEF files in and out: its annotation projects and sets become sound event annotations here, and back.

Read and written with `soundevent`, the library Whombat itself uses. What an import decides:
- Recordings are this dataset's, found by the AOEF recording's uuid (our own exports), by path (the
  file name and as many folders above it as match, since Whombat writes paths relative to its own
  audio folder, or absolute), and failing that by hash (soundevent's hash is the md5 of the file:
  our files' md5 is computed for recordings of the same duration; a 64-digit hash is our sha256).
  A path match must agree on the duration. A recording not found fails the import, naming it.
- Species are tags whose term is a scientific name ("species", "dwc:scientificName", ...) or, on a box
  without one, a common name, resolved to the model's labels; an unknown name fails the import.
  Other tags are kept as (key, value) tags with the key the file writes.
- A box is a BoundingBox or a TimeInterval; other shapes (lines, polygons) come in as the box that
  bounds them; a Point or a TimeStamp (an instant) fails the import.
- An annotation keeps its AOEF uuid (unless another dataset already holds it) and its import key
  (`aoef:<recording uuid>:<annotation uuid>`), so importing a file again, or one of our own exports,
  adds nothing twice, and an export gives Whombat back its own recording and annotation uuids.
- Annotators are our users of the same username (else of the same email, when one user has it);
  anyone else's annotations are credited to the importing user.
- Clip-level tags (a ClipAnnotation's tags, not on a box) and sequences have no place here: skipped,
  and counted in the result.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.contrib.auth import get_user_model
from pydantic import ValidationError
from soundevent import data, terms
from soundevent.io import aoef, save

from annotations.errors import AnnotationError
from annotations.models import SoundEventAnnotation
from annotations.services import ImportedAnnotation, ImportResult, add_imported, box_errors, tag_pairs, with_tags
from annotations.species import SpeciesNames
from echoroo.models import SPECIES, Dataset, Recording
from inference.runtimes.base import Label

SCIENTIFIC_NAME_KEYS = {
    "dwc:scientificname",
    "species",
    "scientific name",
    "scientific_name",
    "scientificname",
    "species name",
    "taxon",
}
COMMON_NAME_KEYS = {"dwc:vernacularname", "common name", "common_name", "vernacular name", "vernacularname"}
# Whombat and we both read a file's length from its header; decoders of compressed files may differ a little.
DURATION_TOLERANCE_S = 0.05
# Makes the uuids of what an export invents (clips, tasks, users) the same from one export to the next.
NAMESPACE = uuid.UUID("925e1770-79d3-4368-ae85-787a79bea516")
KEY_PREFIX = "aoef:"
MAX_LISTED = 20


@dataclass(frozen=True)
class AoefImportResult(ImportResult):
    clip_tags_skipped: int = 0  # tags on a clip, not on a box: no place for them here
    sequences_skipped: int = 0
    shapes_as_boxes: int = 0  # lines and polygons brought in as the box that bounds them


def import_aoef(dataset: Dataset, path, *, by) -> AoefImportResult:
    """Add a Whombat AOEF file's sound event annotations to the dataset's recordings: all of them or none."""
    collection, raw_keys = _read(path)
    if isinstance(collection, data.RecordingSet):
        # A dataset export: recordings only. Nothing to add, but its recordings must be this dataset's.
        _match_recordings(dataset, collection.recordings)
        return AoefImportResult(added=0, already_there=0, annotations=[])
    if not isinstance(collection, data.AnnotationSet):
        kind = type(collection).__name__
        raise AnnotationError(
            {"file": f"this is a {kind} export: it holds no annotations; export the annotation project from Whombat"}
        )

    boxes: dict[uuid.UUID, data.SoundEventAnnotation] = {}
    clip_tags = sequences = 0
    for clip_annotation in collection.clip_annotations:
        clip_tags += len(clip_annotation.tags)
        sequences += len(clip_annotation.sequences)
        for annotation in clip_annotation.sound_events:
            boxes.setdefault(annotation.uuid, annotation)  # one annotation may sit in several clips
    recordings = _match_recordings(
        dataset, list({box.sound_event.recording.uuid: box.sound_event.recording for box in boxes.values()}.values())
    )

    names = SpeciesNames()
    annotators = _annotators([box.created_by for box in boxes.values() if box.created_by is not None])
    held_elsewhere = set(
        SoundEventAnnotation.objects.filter(uuid__in=list(boxes))
        .exclude(recording__dataset=dataset)
        .values_list("uuid", flat=True)
    )
    rows: list[ImportedAnnotation] = []
    errors: dict[str, list[str]] = defaultdict(list)
    shapes = 0
    for box in boxes.values():
        aoef_recording = box.sound_event.recording
        recording = recordings[aoef_recording.uuid]
        where = f"annotation {box.uuid} on {recording.path}"
        geometry = box.sound_event.geometry
        if not isinstance(geometry, data.BoundingBox | data.TimeInterval):
            shapes += 1
        try:
            start_time, end_time, low_freq, high_freq = _bounds(geometry)
        except ValueError as error:
            errors["geometry"].append(f"{where}: {error}")
            continue
        problems = box_errors(recording, start_time, end_time, low_freq, high_freq)
        if problems:
            errors["boxes"].append(f"{where}: " + "; ".join(f"{name} {message}" for name, message in problems.items()))
            continue
        species, unknown, free = _species_and_tags(box.tags, names, raw_keys)
        if unknown:
            errors["species"].extend(unknown)
        try:
            pairs = [(SPECIES, label) for label in species] + tag_pairs(tags=free)
        except AnnotationError as error:
            errors["tags"].append(f"{where}: {error.errors['tags']}")
            continue
        rows.append(
            ImportedAnnotation(
                recording=recording,
                start_time=start_time,
                end_time=end_time,
                low_freq=low_freq,
                high_freq=high_freq,
                tags=pairs,
                notes="\n\n".join(note.message.strip() for note in box.notes if note.message.strip()),
                import_key=f"{KEY_PREFIX}{aoef_recording.uuid}:{box.uuid}",
                # Held by another dataset (the same file imported there): this copy gets a uuid of its own.
                uuid=None if box.uuid in held_elsewhere else str(box.uuid),
                created_by=annotators.get(box.created_by.uuid) if box.created_by else None,
                created_at=_aware(box.created_on),
            )
        )
    if errors:
        listed = {field: _listed(dict.fromkeys(found)) for field, found in errors.items()}
        if "species" in listed:
            listed["species"] = (
                f"unknown species: {listed['species']} (tag boxes with a model label, a scientific or common name, "
                "or an eBird code)"
            )
        raise AnnotationError(listed)
    result = add_imported(rows, by=by, source=SoundEventAnnotation.Source.AOEF)
    return AoefImportResult(
        added=result.added,
        already_there=result.already_there,
        annotations=result.annotations,
        clip_tags_skipped=clip_tags,
        sequences_skipped=sequences,
        shapes_as_boxes=shapes,
    )


def export_aoef(dataset: Dataset, path, *, recordings: Iterable[Recording] | None = None) -> int:
    """Write the dataset's sound event annotations to `path` as a Whombat annotation project (AOEF); returns how many.

    One clip (and one annotation task) per recording, spanning it: the recordings given, or by
    default every recording of the dataset that holds an annotation. Paths are relative to AUDIO_ROOT.
    """
    chosen = Recording.objects.filter(dataset=dataset).select_related("site").order_by("path")
    if recordings is None:
        chosen = list(chosen.filter(sound_event_annotations__isnull=False).distinct())
    else:
        wanted = {recording.pk for recording in recordings}
        chosen = list(chosen.filter(pk__in=wanted))
        if len(chosen) != len(wanted):
            raise AnnotationError({"recordings": f"some of the recordings given are not in the dataset {dataset.name}"})
    annotations = (
        with_tags()
        .filter(recording__in=[recording.pk for recording in chosen])
        .order_by("recording_id", "sound_event__start_time", "id")
        .iterator(chunk_size=2000)
    )
    by_recording: dict[int, list[SoundEventAnnotation]] = defaultdict(list)
    for annotation in annotations:
        by_recording[annotation.recording_id].append(annotation)
    users: dict[int, data.User] = {}
    clip_annotations, tasks, vocabulary = [], [], {}
    written = 0
    for recording in chosen:
        rows = by_recording.get(recording.pk, [])
        aoef_recording = _aoef_recording(recording, rows)
        clip = data.Clip(
            uuid=uuid.uuid5(NAMESPACE, f"clip:{aoef_recording.uuid}"),
            recording=aoef_recording,
            start_time=0.0,
            end_time=recording.duration,
        )
        boxes = []
        for annotation in rows:
            annotator = _aoef_user(annotation.created_by, users)
            tags = _aoef_tags(annotation)
            boxes.append(
                data.SoundEventAnnotation(
                    uuid=_aoef_uuid(annotation),
                    sound_event=data.SoundEvent(
                        uuid=annotation.sound_event.uuid,
                        recording=aoef_recording,
                        geometry=_geometry(annotation.sound_event),
                    ),
                    tags=tags,
                    notes=[data.Note(message=annotation.notes, created_by=annotator, created_on=annotation.updated_at)]
                    if annotation.notes.strip()
                    else [],
                    created_by=annotator,
                    created_on=annotation.created_at,
                )
            )
            for tag in tags:
                vocabulary.setdefault((tag.key, tag.value), tag)
        written += len(boxes)
        clip_annotations.append(
            data.ClipAnnotation(
                uuid=uuid.uuid5(NAMESPACE, f"clip-annotation:{aoef_recording.uuid}"), clip=clip, sound_events=boxes
            )
        )
        tasks.append(data.AnnotationTask(uuid=uuid.uuid5(NAMESPACE, f"task:{aoef_recording.uuid}"), clip=clip))
    project = data.AnnotationProject(
        uuid=dataset.uuid,
        name=dataset.name,
        description=dataset.description or None,
        clip_annotations=clip_annotations,
        tasks=tasks,
        annotation_tags=[vocabulary[pair] for pair in sorted(vocabulary)],
        created_on=datetime.datetime.now(datetime.UTC),
    )
    save(project, Path(path))
    return written


# --- reading ---


def _read(path) -> tuple[object, dict[tuple[str, str], str]]:
    """The file's collection as soundevent reads it, and each tag's key as the file writes it (by term and value).

    `path` may also be an open file (an upload), read as UTF-8 JSON.
    """
    name = getattr(path, "name", None) or str(path)
    try:
        text = path.read() if hasattr(path, "read") else Path(path).read_text(encoding="utf-8")
        text = text.decode("utf-8") if isinstance(text, bytes) else text
    except (OSError, UnicodeDecodeError) as error:
        raise AnnotationError({"file": f"cannot read {name}: {error}"}) from error
    try:
        # Any AOEF version whose content fits soundevent's schema is read (soundevent.io.load wants 1.1.0 exactly).
        document = aoef.AOEFObject.model_validate_json(text)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'file'}: {problem['msg']}"
            for problem in error.errors()[:3]
        )
        raise AnnotationError(
            {"file": f"{Path(name).name} is not an AOEF file soundevent can read ({problems})"}
        ) from error
    try:
        collection = aoef.to_soundevent(document)
    except (ValueError, KeyError, NotImplementedError) as error:
        raise AnnotationError({"file": f"{Path(name).name} does not hold together: {error}"}) from error
    raw_keys: dict[tuple[str, str], str] = {}
    for tag in getattr(document.data, "tags", None) or []:
        raw_keys.setdefault((data.term_from_key(tag.key).name, tag.value), tag.key)
    return collection, raw_keys


def _match_recordings(dataset: Dataset, wanted: list[data.Recording]) -> dict[uuid.UUID, Recording]:
    """This dataset's recording for each AOEF recording, by uuid, path (with its duration) or hash; else an error."""
    ours = list(Recording.objects.filter(dataset=dataset))
    by_uuid = {recording.uuid: recording for recording in ours}
    by_name: dict[str, list[Recording]] = defaultdict(list)
    for recording in ours:
        by_name[PurePosixPath(recording.path).name].append(recording)
    by_sha256 = {recording.sha256: recording for recording in ours}
    md5s: dict[int, str | None] = {}
    found: dict[uuid.UUID, Recording] = {}
    missing, refused = [], []
    for aoef_recording in wanted:
        if aoef_recording.time_expansion != 1:
            refused.append(f"{aoef_recording.path} (time-expanded x{aoef_recording.time_expansion:g}: not supported)")
            continue
        recording = by_uuid.get(aoef_recording.uuid)
        if recording is None:
            recording = _by_path(aoef_recording, by_name)
            if recording is not None and abs(recording.duration - aoef_recording.duration) > DURATION_TOLERANCE_S:
                refused.append(
                    f"{aoef_recording.path} (found {recording.path} by its path, but it lasts "
                    f"{recording.duration:g} s, not {aoef_recording.duration:g} s)"
                )
                continue
        if recording is None:
            recording = _by_hash(aoef_recording, ours, by_sha256, md5s)
        if recording is None:
            missing.append(str(aoef_recording.path))
        else:
            found[aoef_recording.uuid] = recording
    errors = {}
    if missing:
        errors["recordings"] = (
            f"not in the dataset {dataset.name} (looked up by uuid, by path and duration, and by md5 hash): "
            + _listed(missing)
        )
    if refused:
        errors["recording_mismatch"] = _listed(refused)
    if errors:
        raise AnnotationError(errors)
    return found


def _path_parts(path) -> tuple[str, ...]:
    """An AOEF path's parts, relative to AUDIO_ROOT where it lies under it (Windows separators too)."""
    text = str(path).replace("\\", "/")
    posix = PurePosixPath(text)
    root = PurePosixPath(str(settings.AUDIO_ROOT))
    if posix.is_absolute() and posix.is_relative_to(root):
        posix = posix.relative_to(root)
    return tuple(part for part in posix.parts if part not in ("/", "", "."))


def _by_path(aoef_recording: data.Recording, by_name: dict[str, list[Recording]]) -> Recording | None:
    """The one recording whose path ends like the AOEF path (file name and the most folders above it), if one."""
    parts = _path_parts(aoef_recording.path)
    if not parts:
        return None
    scored: dict[int, list[Recording]] = defaultdict(list)
    for recording in by_name.get(parts[-1], []):
        ours = PurePosixPath(recording.path).parts
        common = 0
        while common < min(len(ours), len(parts)) and ours[-1 - common] == parts[-1 - common]:
            common += 1
        scored[common].append(recording)
    if not scored:
        return None
    best = scored[max(scored)]
    return best[0] if len(best) == 1 else None


def _by_hash(
    aoef_recording: data.Recording, ours: list[Recording], by_sha256: dict[str, Recording], md5s: dict[int, str | None]
) -> Recording | None:
    """The recording whose file has the AOEF hash: our sha256, or the md5 soundevent and Whombat compute."""
    digest = (aoef_recording.hash or "").strip().lower()
    if len(digest) == 64:
        return by_sha256.get(digest)
    if len(digest) != 32:
        return None
    for recording in ours:
        if abs(recording.duration - aoef_recording.duration) > DURATION_TOLERANCE_S:
            continue
        if recording.pk not in md5s:
            md5s[recording.pk] = file_md5(recording.absolute_path)
        if md5s[recording.pk] == digest:
            return recording
    return None


def file_md5(path) -> str | None:
    """The md5 of a file's bytes, as soundevent writes in a recording's hash; None when it cannot be read."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with open(path, "rb") as audio:
            while chunk := audio.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _bounds(geometry) -> tuple[float, float, float | None, float | None]:
    """(start_time, end_time, low_freq, high_freq) of a geometry: a box or interval as is, another shape's bounds."""
    if isinstance(geometry, data.BoundingBox):
        start_time, low_freq, end_time, high_freq = geometry.coordinates
        return start_time, end_time, low_freq, high_freq
    if isinstance(geometry, data.TimeInterval):
        start_time, end_time = geometry.coordinates
        return start_time, end_time, None, None
    if isinstance(geometry, data.TimeStamp | data.Point):
        raise ValueError(f"a {geometry.type} marks an instant, not a span of time: draw it as a box in Whombat")
    points = list(_points(geometry.coordinates))
    times = [time for time, _ in points]
    freqs = [freq for _, freq in points]
    if not points or min(times) == max(times):
        raise ValueError(f"a {geometry.type} that spans no time cannot be a box")
    return min(times), max(times), min(freqs), max(freqs)


def _points(coordinates):
    """The (time, frequency) pairs of a line, polygon or multi-shape, however deeply nested."""
    if len(coordinates) == 2 and all(isinstance(value, int | float) for value in coordinates):
        yield float(coordinates[0]), float(coordinates[1])
        return
    for item in coordinates:
        yield from _points(item)


def _species_and_tags(
    tags: list[data.Tag], names: SpeciesNames, raw_keys: dict[tuple[str, str], str]
) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """A box's species labels, the species names not known here, and its other tags as (key, value)."""
    scientific, common, free = [], [], []
    for tag in tags:
        key = raw_keys.get((tag.key, tag.value), tag.key)
        value = tag.value.strip()
        if tag.key.casefold() in SCIENTIFIC_NAME_KEYS or key.casefold() in SCIENTIFIC_NAME_KEYS:
            scientific.append(value)
        elif tag.key.casefold() in COMMON_NAME_KEYS or key.casefold() in COMMON_NAME_KEYS:
            common.append((key, value))
        else:
            free.append((key, value))
    labels, unknown = [], []
    if scientific:
        for name in scientific:
            # Two labels may share a scientific name; the common name beside it tells them apart.
            label = names.label(name) or next(
                (found for _, value in common if (found := names.label(f"{name}_{value}"))), None
            )
            (labels if label else unknown).append(label or name)
        said = {Label.parse(label).common_name.casefold() for label in labels}
        free.extend((key, value) for key, value in common if value.casefold() not in said)
    else:
        for _, value in common:
            label = names.label(value)
            (labels if label else unknown).append(label or value)
    return list(dict.fromkeys(labels)), unknown, free


def _annotators(people: list[data.User]) -> dict[uuid.UUID, object]:
    """Our user for each AOEF annotator: the same username, else the one user with the same email."""
    User = get_user_model()
    usernames = {person.username for person in people if person.username}
    emails = {person.email.lower() for person in people if person.email}
    by_username = {user.username: user for user in User.objects.filter(username__in=usernames)}
    by_email: dict[str, list] = defaultdict(list)
    for user in User.objects.filter(email__in=emails) if emails else []:
        by_email[user.email.lower()].append(user)
    found = {}
    for person in people:
        user = by_username.get(person.username or "")
        if user is None and person.email and len(by_email.get(person.email.lower(), [])) == 1:
            user = by_email[person.email.lower()][0]
        if user is not None:
            found[person.uuid] = user
    return found


def _listed(items) -> str:
    items = list(items)
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


# --- writing ---


def _aoef_uuid(annotation: SoundEventAnnotation) -> uuid.UUID:
    """The uuid Whombat knows an annotation by: its AOEF uuid when it came from a file, else ours."""
    return _key_uuids(annotation.import_key)[1] or annotation.uuid


def _key_uuids(import_key: str) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    if not import_key.startswith(KEY_PREFIX):
        return None, None
    try:
        recording_uuid, annotation_uuid = import_key.removeprefix(KEY_PREFIX).split(":")
        return uuid.UUID(recording_uuid), uuid.UUID(annotation_uuid)
    except ValueError:
        return None, None


def _aoef_recording(recording: Recording, annotations: list[SoundEventAnnotation]) -> data.Recording:
    """The recording as AOEF writes it: under the uuid Whombat gave it when its annotations came from Whombat."""
    from_files = Counter(
        found for annotation in annotations if (found := _key_uuids(annotation.import_key)[0]) is not None
    )
    site = recording.site
    return data.Recording(
        uuid=from_files.most_common(1)[0][0] if from_files else recording.uuid,
        path=Path(recording.path),
        duration=recording.duration,
        samplerate=recording.samplerate,
        channels=recording.channels,
        hash=file_md5(recording.absolute_path),
        latitude=recording.latitude if recording.latitude is not None else (site.latitude if site else None),
        longitude=recording.longitude if recording.longitude is not None else (site.longitude if site else None),
    )


def _aoef_user(user, users: dict[int, data.User]) -> data.User | None:
    if user is None:
        return None
    if user.pk not in users:
        fields = {
            "uuid": uuid.uuid5(NAMESPACE, f"user:{user.get_username()}"),
            "username": user.get_username(),
            "name": user.get_full_name() or None,
        }
        try:
            users[user.pk] = data.User(**fields, email=user.email or None)
        except ValidationError:  # an address pydantic will not take: the annotator without it
            users[user.pk] = data.User(**fields)
    return users[user.pk]


def _aoef_tags(annotation: SoundEventAnnotation) -> list[data.Tag]:
    """Species as soundevent's scientific and common name terms; other tags under their own key."""
    tags = []
    for row in annotation.tags.all():
        key, value = row.tag.key, row.tag.value
        if key == SPECIES:
            label = Label.parse(value)
            tags.append(data.Tag(term=terms.scientific_name, value=label.scientific_name))
            if label.common_name:
                tags.append(data.Tag(term=terms.common_name, value=label.common_name))
        else:
            # A term of the key's own name, so that the file keeps the key exactly (not a registered alias's term).
            tags.append(data.Tag(term=data.Term(name=key, label=key, definition="Unknown"), value=value))
    return tags


def _geometry(event) -> data.Geometry:
    if event.low_freq is None or event.high_freq is None:
        return data.TimeInterval(coordinates=[event.start_time, event.end_time])
    return data.BoundingBox(coordinates=[event.start_time, event.low_freq, event.end_time, event.high_freq])


def _aware(moment: datetime.datetime | None) -> datetime.datetime | None:
    """soundevent writes naive times in UTC (its default is utcnow): read them as such."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=datetime.UTC)
