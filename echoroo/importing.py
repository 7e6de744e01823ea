"""Import audio files under AUDIO_ROOT as Recordings: find them, read header and sha256, store in bulk.

Choices worth knowing:
- Only files whose real path (symlinks resolved) lies under AUDIO_ROOT are read, and
  Recording.path is that real path relative to AUDIO_ROOT, so one file is one recording
  however many links lead to it.
- A run is idempotent, keyed on (dataset, path): a path the dataset has already is
  "already present" and is not read again, so re-running over a large archive is cheap.
  With verify=True such files are re-hashed, and one whose sha256 no longer matches is
  reported as "changed on disk" and left as it was: a recording is never silently replaced
  (its clips and predictions belong to the old audio).
- The recording time comes from the WAV header where the recorder wrote it (GUANO's Timestamp,
  AudioMoth's comment: see echoroo.metadata), else from the file name. Times in file names, and
  header times without a zone, are the recorder's clock, read in the given time zone
  (settings.TIME_ZONE by default). AudioMoths write UTC unless configured otherwise, Song Meters
  the local time they were set to. A GUANO Loc Position is the recording's own place.
- A file whose header does not give its length (a FLAC whose STREAMINFO says 0 samples) is measured
  by decoding it; one that lasts more than echoroo.audio.MAX_DURATION_S is refused.
- With verify=True, recordings of the dataset under the given paths whose file is gone are listed
  as missing.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import soundfile
from django.conf import settings
from django.db import transaction
from django.db.models import Q

from echoroo import audio
from echoroo.cpus import usable_cpus
from echoroo.filenames import parse_recorded_at
from echoroo.metadata import WavMetadata, read_wav_metadata
from echoroo.models import Dataset, Recording, Site

AUDIO_EXTENSIONS = (".flac", ".mp3", ".ogg", ".wav")
BATCH_SIZE = 500
HASH_CHUNK_BYTES = 1 << 20
PATH_MAX_LENGTH = Recording._meta.get_field("path").max_length
NAME_MAX_LENGTH = Dataset._meta.get_field("name").max_length


class ImportRefused(Exception):
    """The import cannot start (a bad argument or path); nothing was written."""


class UnusableFile(Exception):
    """One file cannot be imported; the message is the reason shown to the person."""


class ProgressBar(Protocol):
    def update(self, n: int = 1) -> object: ...
    def close(self) -> object: ...


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str


@dataclass
class ImportReport:
    dataset: Dataset
    site: Site | None
    imported: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    # Recordings whose file is gone (listed by verify=True only).
    missing: list[str] = field(default_factory=list)
    # Imported, but part of the header's metadata could not be read (the path, and what).
    notes: list[Failure] = field(default_factory=list)


@dataclass(frozen=True)
class FoundFile:
    """A file found under the given paths; `shown` is how the person reached it."""

    shown: str
    path: str | None  # the real file, relative to AUDIO_ROOT: what Recording.path stores
    problem: str | None = None


@dataclass(frozen=True)
class AudioFacts:
    sha256: str
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    metadata: WavMetadata = WavMetadata()


def import_recordings(
    paths: Sequence[str | Path],
    *,
    dataset: str,
    site: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    timezone: str | None = None,
    verify: bool = False,
    progress: Callable[..., ProgressBar] | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Import the audio files at `paths` (files or folders under AUDIO_ROOT) into a dataset, idempotently.

    The dataset is found or created by name, the site (optional) within it; latitude and
    longitude are the site's. `progress(total=n)` may return a tqdm-like bar. Files that
    cannot be imported are reported in the result, not raised; ImportRefused means nothing
    was done.
    """
    _check_names(dataset, site)
    _check_location(site, latitude, longitude)
    zone = recorder_zone(timezone)
    root = audio_root()
    gone = _gone_paths(paths, root, dataset) if verify else []
    found = find_audio_files([path for path in paths if path not in gone], root)
    if not found and not gone:
        raise ImportRefused(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) found in {', '.join(map(str, paths))}")

    with transaction.atomic():
        dataset_row, _ = Dataset.objects.get_or_create(name=dataset)
        site_row = _site(dataset_row, site, latitude, longitude)
    report = ImportReport(dataset=dataset_row, site=site_row)

    bar = progress(total=len(found)) if progress else None
    try:
        with ThreadPoolExecutor(workers or min(8, usable_cpus())) as pool:
            for batch in _chunks(found, BATCH_SIZE):
                _import_batch(batch, root, report, zone, verify, pool, bar)
    finally:
        if bar is not None:
            bar.close()
    if verify:
        report.missing = _missing_recordings(dataset_row, paths, root, {item.path for item in found})
    return report


def audio_root() -> Path:
    root = Path(settings.AUDIO_ROOT).resolve()
    if not root.is_dir():
        raise ImportRefused(
            f"AUDIO_ROOT {root} is not a folder: set AUDIO_ROOT to the folder that holds the recordings"
        )
    return root


def recorder_zone(name: str | None) -> tzinfo:
    """The time zone of the recorders' clocks: `name`, else settings.TIME_ZONE."""
    name = name or settings.TIME_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImportRefused(
            f"unknown time zone {name!r}: use an IANA name such as 'America/New_York' or 'UTC'"
        ) from None


def _real(given: str | Path) -> Path:
    return (Path.cwd() / Path(given).expanduser()).resolve()


def _gone_paths(paths: Sequence[str | Path], root: Path, dataset: str) -> list[str | Path]:
    """The given paths that no longer exist but held recordings of the dataset: verify lists those as missing."""
    gone = []
    for given in paths:
        real = _real(given)
        if not real.exists() and real.is_relative_to(root):
            recordings = Recording.objects.filter(dataset__name=dataset)
            if _under(recordings, real.relative_to(root).as_posix()).exists():
                gone.append(given)
    return gone


def _under(recordings, relative: str):
    """The recordings at `relative` (a file or folder relative to AUDIO_ROOT) or below it."""
    if relative == ".":
        return recordings
    return recordings.filter(Q(path=relative) | Q(path__startswith=f"{relative}/"))


def _missing_recordings(dataset: Dataset, paths: Sequence[str | Path], root: Path, found: set[str | None]) -> list[str]:
    """Paths of the dataset's recordings under `paths` whose file is not there any more."""
    missing: set[str] = set()
    for given in paths:
        real = _real(given)
        if not real.is_relative_to(root):
            continue
        for path in _under(dataset.recordings.all(), real.relative_to(root).as_posix()).values_list("path", flat=True):
            # Only the recordings the walk did not meet are looked at: a dataset's files are not all stat'ed again.
            if path not in found and not os.path.isfile(root / path):
                missing.add(path)
    return sorted(missing)


def find_audio_files(paths: Iterable[str | Path], root: Path) -> list[FoundFile]:
    """The audio files at `paths` (files, or folders walked in name order), each real file once.

    Hidden files and folders are skipped. A path given that is missing or outside `root`
    refuses the whole import; a link found inside a folder that leads outside is reported.
    """
    found: list[FoundFile] = []
    seen: set[str] = set()
    visited: set[Path] = set()
    for given in paths:
        real = _real(given)
        if not real.exists():
            raise ImportRefused(f"{given} does not exist")
        if not real.is_relative_to(root):
            raise ImportRefused(
                f"{given} is outside AUDIO_ROOT ({root}): only files under AUDIO_ROOT are imported; "
                "move or copy the recordings there, or set AUDIO_ROOT to a folder that contains them"
            )
        if real.is_dir():
            _walk(real, root, found, seen, visited)
        elif real.suffix.lower() in AUDIO_EXTENSIONS:
            _add_file(real, root, found, seen)
        else:
            shown = _shown(real, root)
            found.append(FoundFile(shown, None, f"not an audio file: expected {', '.join(AUDIO_EXTENSIONS)}"))
    return found


def inspect_audio_file(path: Path, *, read_header: bool = True) -> AudioFacts:
    """The sha256 and (unless read_header is False) the header of one file; UnusableFile says why not."""
    try:
        status = os.stat(path)
    except OSError as error:
        raise UnusableFile(f"cannot read ({error.strerror or error})") from None
    if not stat.S_ISREG(status.st_mode):
        raise UnusableFile("cannot read (not a regular file)")
    if status.st_size == 0:
        raise UnusableFile("empty file")
    try:
        with open(path, "rb") as file:
            if not read_header:
                return AudioFacts(sha256=_sha256(file))
            duration_s, sample_rate, channels = _read_header(file)
            metadata = read_wav_metadata(file)
            file.seek(0)
            return AudioFacts(_sha256(file), duration_s, sample_rate, channels, metadata)
    except OSError as error:
        raise UnusableFile(f"cannot read ({error.strerror or error})") from None


def _import_batch(
    batch: list[FoundFile],
    root: Path,
    report: ImportReport,
    zone: tzinfo,
    verify: bool,
    pool: ThreadPoolExecutor,
    bar: ProgressBar | None,
) -> None:
    """Inspect the batch's new files in parallel and insert them with one statement."""
    dataset = report.dataset
    candidate_paths = [found.path for found in batch if found.problem is None]
    stored = dict(Recording.objects.filter(dataset=dataset, path__in=candidate_paths).values_list("path", "sha256"))
    to_read = [found for found in batch if found.problem is None and (verify or found.path not in stored)]
    results = pool.map(
        lambda found: _inspect_or_reason(root / found.path, read_header=found.path not in stored), to_read
    )

    new: list[Recording] = []
    for found in batch:
        if found.problem is not None:
            report.failures.append(Failure(found.shown, found.problem))
        elif found.path in stored and not verify:
            report.already_present.append(found.path)
        else:
            facts = next(results)
            if isinstance(facts, str):
                report.failures.append(Failure(found.shown, facts))
            elif found.path in stored:
                if facts.sha256 == stored[found.path]:
                    report.already_present.append(found.path)
                else:
                    reason = "changed on disk since it was imported (sha256 differs); the recording was not updated"
                    report.failures.append(Failure(found.shown, reason))
            else:
                new.append(_recording(found, facts, report, zone))
                report.notes.extend(Failure(found.shown, problem) for problem in facts.metadata.problems)
        if bar is not None:
            bar.update(1)

    if not new:
        return
    with transaction.atomic():
        # ignore_conflicts: another import may have stored some of these paths since the query
        # above; the uuids that made it in say which rows are ours.
        Recording.objects.bulk_create(new, ignore_conflicts=True)
        inserted = set(Recording.objects.filter(uuid__in=[r.uuid for r in new]).values_list("uuid", flat=True))
    for recording in new:
        (report.imported if recording.uuid in inserted else report.already_present).append(recording.path)


def _inspect_or_reason(path: Path, *, read_header: bool) -> AudioFacts | str:
    try:
        return inspect_audio_file(path, read_header=read_header)
    except UnusableFile as unusable:
        return str(unusable)


def _recording(found: FoundFile, facts: AudioFacts, report: ImportReport, zone: tzinfo) -> Recording:
    metadata = facts.metadata
    recorded_at = metadata.recorded_at or parse_recorded_at(PurePosixPath(found.shown).name)
    if recorded_at is not None and recorded_at.tzinfo is None:
        recorded_at = recorded_at.replace(tzinfo=zone)
    return Recording(
        dataset=report.dataset,
        site=report.site,
        path=found.path,
        sha256=facts.sha256,
        duration=facts.duration_s,
        samplerate=facts.sample_rate,
        channels=facts.channels,
        recorded_at=recorded_at,
        latitude=metadata.latitude,
        longitude=metadata.longitude,
    )


def _read_header(file: BinaryIO) -> tuple[float, int, int]:
    """Duration (s), sample rate (Hz) and channels from the header; decoded only where it does not give the length."""
    try:
        frames, sample_rate, channels = audio.measure(file)
    except (soundfile.SoundFileError, RuntimeError, ValueError, TypeError) as error:
        reason = getattr(error, "error_string", "") or str(error)
        raise UnusableFile(f"not a readable audio file ({reason.strip().rstrip('.')})") from None
    if sample_rate <= 0 or channels <= 0:
        raise UnusableFile(f"not a readable audio file ({sample_rate} Hz, {channels} channels)")
    if frames <= 0:
        raise UnusableFile("no audio samples")
    duration_s = frames / sample_rate
    if problem := audio.duration_problem(duration_s):
        raise UnusableFile(problem)
    return duration_s, sample_rate, channels


def _sha256(file: BinaryIO) -> str:
    digest = hashlib.sha256()
    chunk = bytearray(HASH_CHUNK_BYTES)
    view = memoryview(chunk)
    while size := file.readinto(chunk):
        digest.update(view[:size])
    return digest.hexdigest()


def _walk(directory: Path, root: Path, found: list[FoundFile], seen: set[str], visited: set[Path]) -> None:
    real_directory = directory.resolve()
    if real_directory in visited:  # a link back up the tree, or a folder reached twice
        return
    visited.add(real_directory)
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as error:
        found.append(FoundFile(_shown(directory, root), None, f"cannot read folder ({error.strerror or error})"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            _walk(path, root, found, seen, visited)
        elif entry.is_symlink() and _is_dir(path):
            target = path.resolve()
            if target.is_relative_to(root):
                _walk(path, root, found, seen, visited)
            else:
                found.append(FoundFile(_shown(path, root), None, f"outside AUDIO_ROOT (links to {target})"))
        elif path.suffix.lower() in AUDIO_EXTENSIONS:
            _add_file(path, root, found, seen)


def _add_file(path: Path, root: Path, found: list[FoundFile], seen: set[str]) -> None:
    shown = _shown(path, root)
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop
        found.append(FoundFile(shown, None, f"cannot read ({error})"))
        return
    if not real.is_relative_to(root):
        found.append(FoundFile(shown, None, f"outside AUDIO_ROOT (links to {real})"))
        return
    relative = real.relative_to(root).as_posix()
    if relative in seen:
        return
    seen.add(relative)
    found.append(FoundFile(shown, relative, _path_problem(relative)))


def _path_problem(relative: str) -> str | None:
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        return "the file name is not valid UTF-8: rename the file"
    if len(relative) > PATH_MAX_LENGTH:
        return f"the path is longer than {PATH_MAX_LENGTH} characters"
    return None


def _shown(path: Path, root: Path) -> str:
    shown = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    # File names that are not UTF-8 still print.
    return shown.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _check_names(dataset: str, site: str | None) -> None:
    names = {"dataset": dataset} if site is None else {"dataset": dataset, "site": site}
    for what, name in names.items():
        if not name.strip():
            raise ImportRefused(f"the {what} name is empty")
        if len(name) > NAME_MAX_LENGTH:
            raise ImportRefused(f"the {what} name is longer than {NAME_MAX_LENGTH} characters")


def _check_location(site: str | None, latitude: float | None, longitude: float | None) -> None:
    if latitude is None and longitude is None:
        return
    if latitude is None or longitude is None:
        raise ImportRefused("give both latitude and longitude of the site, or neither")
    if site is None:
        raise ImportRefused("latitude and longitude are a site's location: give the site's name with them")
    if not (math.isfinite(latitude) and -90 <= latitude <= 90):
        raise ImportRefused(f"latitude {latitude} is not between -90 and 90")
    if not (math.isfinite(longitude) and -180 <= longitude <= 180):
        raise ImportRefused(f"longitude {longitude} is not between -180 and 180")


def _site(dataset: Dataset, name: str | None, latitude: float | None, longitude: float | None) -> Site | None:
    """The named site of the dataset, created if new; a site without a location gets the one given."""
    if name is None:
        return None
    site, created = Site.objects.select_for_update().get_or_create(
        dataset=dataset, name=name, defaults={"latitude": latitude, "longitude": longitude}
    )
    if created or latitude is None:
        return site
    if site.latitude is None:
        site.latitude, site.longitude = latitude, longitude
        site.save(update_fields=["latitude", "longitude"])
    elif (site.latitude, site.longitude) != (latitude, longitude):
        raise ImportRefused(
            f"site {name!r} of dataset {dataset.name!r} is at latitude {site.latitude}, longitude "
            f"{site.longitude}, not {latitude}, {longitude}: leave the location out to use the site as it "
            "is, or give another site name"
        )
    return site


def _chunks(items: list[FoundFile], size: int) -> Iterator[list[FoundFile]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
