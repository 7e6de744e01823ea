"""Import sound event annotations into a dataset: Raven selection tables (annotations.raven) or a Whombat AOEF file."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotations import transfer
from annotations.errors import AnnotationError

# An error's field -> the option at fault.
OPTIONS = {"dataset": "--dataset", "raven": "--raven", "aoef": "--aoef", "species_column": "--species-column"}


def refused(error: AnnotationError, what: str) -> CommandError:
    """The errors of an import or export, one a line, with the option at fault named."""
    lines = [f"  {OPTIONS.get(field, field)}: {message}" for field, message in error.errors.items()]
    return CommandError(f"{what}:\n" + "\n".join(lines))


class Command(BaseCommand):
    help = (
        "Import sound event annotations into the dataset --dataset: a Raven selection table or a folder of them "
        "(--raven; BirdNET-Analyzer's combined table with its .list.txt too), or a Whombat AOEF file (--aoef). "
        "Rows are matched to the dataset's recordings by file name; species by model label, scientific or common "
        "name, or eBird code. All or nothing: any problem (an unknown species, a bad row) imports nothing and is "
        "listed. Rows imported before are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, metavar="NAME", help="the dataset's name (or UUID)")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--raven", type=Path, metavar="PATH", help="a Raven selection table, or a folder of them")
        source.add_argument("--aoef", type=Path, metavar="FILE", help="an AOEF file Whombat exported (.json)")
        parser.add_argument(
            "--species-column",
            metavar="COLUMN",
            help="Raven: the column naming the species (default: Species, Scientific Name, Common Name and "
            "Species Code, which must agree; else Annotation, Label or Class)",
        )
        parser.add_argument("--user", metavar="USERNAME", help="who the annotations are imported by (default nobody)")

    def handle(self, *args, dataset, raven, aoef, species_column, user, **options):
        if aoef is not None and species_column:
            raise CommandError("--species-column: only Raven tables (--raven) have a species column")
        by = None
        if user:
            by = get_user_model().objects.filter(username=user).first()
            if by is None:
                raise CommandError(f"--user: no user named {user!r}")
        file_format, path = ("raven", raven) if raven is not None else ("aoef", aoef)
        try:
            target = transfer.find_dataset(dataset)
            result = transfer.import_annotations(
                target, path, file_format=file_format, by=by, species_column=species_column
            )
        except AnnotationError as error:
            raise refused(error, f"Nothing imported from {path}") from error
        self.stdout.write(
            f"Added {result.added} annotations to dataset {target.name!r} from {path}; "
            f"{result.already_there} already there (skipped)",
            self.style.SUCCESS,
        )
