"""Annotations in and out of a dataset by format (Raven selection tables, Whombat's AOEF): what the commands and the
API call, so that both find datasets, check rights and name formats alike.

Who may import into a dataset: staff, or the person who created the dataset (Dataset.created_by): an import
writes many annotations at once, under the dataset's owner's control. Anyone logged in may export. The commands
are run by whoever runs the server, so they check nothing (`--user` only names who the import is by).
"""

from __future__ import annotations

import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from annotations.errors import AnnotationError
from annotations.models import SoundEventAnnotation
from annotations.raven import export_raven, import_raven
from annotations.services import ImportResult
from echoroo.models import Dataset

FORMATS = ("raven", "aoef")
# An uploaded zip of tables is refused beyond this, unpacked (a zip bomb's guard).
MAX_UNZIPPED_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class ExportSummary:
    annotations: int  # annotations written
    files: tuple[Path, ...]


def find_dataset(wanted: str) -> Dataset:
    """A dataset by name or UUID, or an error naming the datasets there are."""
    wanted = str(wanted).strip()
    try:
        found = Dataset.objects.filter(uuid=uuid.UUID(wanted)).first()
    except ValueError:
        found = None
    found = found or Dataset.objects.filter(name=wanted).first()
    if found is None:
        names = list(Dataset.objects.order_by("name").values_list("name", flat=True)[:20])
        listed = ", ".join(repr(name) for name in names) or "none yet"
        raise AnnotationError({"dataset": f"no dataset named {wanted!r} (or with that UUID); the datasets: {listed}"})
    return found


def can_import(dataset: Dataset, user) -> bool:
    return bool(user and user.is_authenticated and (user.is_staff or dataset.created_by_id == user.pk))


def import_annotations(
    dataset: Dataset, path: Path, *, file_format: str, by, species_column: str | None = None
) -> ImportResult:
    """Import a Raven table (or a folder of them) or an AOEF file into the dataset: all of it, or nothing."""
    path = Path(path)
    if not path.exists():
        raise AnnotationError({file_format: f"{path} does not exist"})
    if file_format == "raven":
        return import_raven(dataset, path, by=by, species_column=species_column)
    if file_format == "aoef":
        if species_column:
            raise AnnotationError({"species_column": "only Raven tables have a species column"})
        if not path.is_file():
            raise AnnotationError({"aoef": f"{path} is not a file: give an AOEF (.json) file Whombat exported"})
        from annotations.aoef import import_aoef

        return import_aoef(dataset, path, by=by)
    raise AnnotationError({"format": f"unknown format {file_format!r}; the formats: {', '.join(FORMATS)}"})


def export_annotations(dataset: Dataset, path: Path, *, file_format: str) -> ExportSummary:
    """Write the dataset's annotations: raven, one table per recording under the folder `path`; aoef, one file."""
    path = Path(path)
    if file_format == "raven":
        files = export_raven(dataset, path)
        count = SoundEventAnnotation.objects.filter(recording__dataset=dataset).count()
        return ExportSummary(count, tuple(files))
    if file_format == "aoef":
        if path.is_dir():
            raise AnnotationError({"aoef": f"{path} is a folder: give the AOEF file's name (e.g. annotations.json)"})
        from annotations.aoef import export_aoef

        return ExportSummary(export_aoef(dataset, path), (path,))
    raise AnnotationError({"format": f"unknown format {file_format!r}; the formats: {', '.join(FORMATS)}"})


def unpack_zip(archive: Path, folder: Path) -> None:
    """Unpack an uploaded zip of tables into `folder`, refusing names that leave it and oversized contents."""
    try:
        with zipfile.ZipFile(archive) as opened:
            members = [member for member in opened.infolist() if not member.is_dir()]
            if sum(member.file_size for member in members) > MAX_UNZIPPED_BYTES:
                raise AnnotationError({"file": f"the zip unpacks to more than {MAX_UNZIPPED_BYTES // 1024**3} GB"})
            for member in members:
                name = PurePosixPath(member.filename.replace("\\", "/"))
                if name.is_absolute() or ".." in name.parts:
                    raise AnnotationError({"file": f"the zip holds {member.filename!r}, a path outside its folder"})
                target = folder.joinpath(*name.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with opened.open(member) as source, target.open("wb") as out:
                    while chunk := source.read(1 << 20):
                        out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as error:
        raise AnnotationError({"file": f"not a readable zip file ({error})"}) from None
