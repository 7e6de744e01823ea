"""Import audio files under AUDIO_ROOT into a dataset (see echoroo.importing for the rules)."""

from functools import partial

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from echoroo import importing


class Command(BaseCommand):
    help = (
        "Import the wav, flac, mp3 and ogg files in PATHs (files or folders under AUDIO_ROOT) into a dataset: "
        "header, sha256, and the recording time (and place) from an AudioMoth or GUANO WAV header, else from "
        "AudioMoth / Song Meter file names. Re-running adds nothing; files that cannot be imported are listed "
        "with the reason."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders under AUDIO_ROOT")
        parser.add_argument("--dataset", required=True, help="dataset name; created if it does not exist")
        parser.add_argument("--site", help="site name within the dataset; created if it does not exist")
        parser.add_argument("--lat", type=float, dest="latitude", help="the site's latitude (with --lon)")
        parser.add_argument("--lon", type=float, dest="longitude", help="the site's longitude (with --lat)")
        parser.add_argument(
            "--timezone",
            help="time zone of the recorders' clocks, e.g. America/New_York (default: TIME_ZONE, UTC unless set); "
            "used for times in file names and GUANO headers that carry no zone",
        )
        parser.add_argument(
            "--verify",
            action="store_true",
            help="re-hash files already imported and report those whose contents changed (slower), and list the "
            "dataset's recordings under PATHs whose file is gone",
        )

    def handle(self, *args, paths, dataset, site, latitude, longitude, timezone, verify, **options):
        # tqdm needs the raw stream: Django's OutputWrapper would end each of its updates with a newline.
        progress = partial(
            tqdm, file=self.stderr._out, disable=None if options["verbosity"] else True, unit="file", desc="Importing"
        )
        try:
            report = importing.import_recordings(
                paths,
                dataset=dataset,
                site=site,
                latitude=latitude,
                longitude=longitude,
                timezone=timezone,
                verify=verify,
                progress=progress,
            )
        except importing.ImportRefused as refused:
            raise CommandError(str(refused)) from refused

        if options["verbosity"] >= 2:
            for path in report.imported:
                self.stdout.write(f"imported {path}")
        summary = (
            f"Imported {len(report.imported)}, already present {len(report.already_present)}, "
            f"failed {len(report.failures)}"
        )
        if verify:
            summary += f", missing {len(report.missing)}"
        troubles = report.failures or report.missing or report.notes
        self.stdout.write(summary, self.style.WARNING if troubles else self.style.SUCCESS)
        for failure in report.failures:
            self.stdout.write(f"{failure.path}: {failure.reason}")
        for path in report.missing:
            self.stdout.write(f"{path}: missing: imported, but the file is gone; restore it, or delete the recording")
        for note in report.notes:
            self.stdout.write(f"{note.path}: imported, but {note.reason} (left out)")
