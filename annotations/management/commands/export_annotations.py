"""Export a dataset's sound event annotations: Raven selection tables (one per recording) or a Whombat AOEF file."""

from pathlib import Path

from django.core.management.base import BaseCommand

from annotations import transfer
from annotations.errors import AnnotationError
from annotations.management.commands.import_annotations import refused


class Command(BaseCommand):
    help = (
        "Export the sound event annotations of the dataset --dataset: as Raven selection tables, one per recording "
        "with annotations, under the recordings' folders in the folder --raven (<file>.Table.1.selections.txt, "
        "which import_annotations --raven reads back), or as one Whombat AOEF file --aoef."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, metavar="NAME", help="the dataset's name (or UUID)")
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--raven", type=Path, metavar="DIR", help="a folder for the tables")
        target.add_argument("--aoef", type=Path, metavar="FILE", help="the AOEF file to write (.json)")

    def handle(self, *args, dataset, raven, aoef, **options):
        file_format, path = ("raven", raven) if raven is not None else ("aoef", aoef)
        try:
            found = transfer.find_dataset(dataset)
            summary = transfer.export_annotations(found, path, file_format=file_format)
        except AnnotationError as error:
            raise refused(error, f"Nothing exported to {path}") from error
        where = f"{len(summary.files)} tables in {path}" if file_format == "raven" else str(path)
        self.stdout.write(
            f"Wrote {summary.annotations} annotations of dataset {found.name!r} to {where}", self.style.SUCCESS
        )
