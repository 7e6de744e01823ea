"""Write a model run's detections as BirdNET-Analyzer does (see inference.exports for the formats)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from inference import exports

# ExportError.field -> the option at fault.
OPTIONS = {
    "dataset": "--dataset",
    "recording": "--recording",
    "job": "--job",
    "model_run": "--model-run",
    "format": "--format",
    "output": "--output",
}


class Command(BaseCommand):
    help = (
        "Export a model run's results on a dataset, a recording or a job's recordings: Raven selection tables "
        "(one per recording, into the folder --output), a CSV with BirdNET-Analyzer's columns (the file --output) "
        "or Audacity labels (one per recording, into the folder --output). One row per window and species, "
        "as BirdNET-Analyzer writes; --merged writes the merged detections instead."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--dataset", metavar="NAME", help="every recording of the dataset")
        target.add_argument("--recording", metavar="UUID", help="one recording")
        target.add_argument("--job", metavar="UUID", help="the recordings of an inference job, with its model run")
        parser.add_argument("--format", required=True, choices=exports.FORMATS, dest="file_format")
        parser.add_argument(
            "--output", required=True, type=Path, metavar="PATH", help="a folder (raven, audacity) or a file (csv)"
        )
        parser.add_argument(
            "--model-run",
            metavar="ID",
            help='id, UUID or name ("birdnet 2.4", "perch") of the model run; needed only where several '
            "model runs have results on these recordings",
        )
        parser.add_argument(
            "--min-score", type=float, default=0.0, metavar="X", help="only rows scoring X or more (default 0)"
        )
        parser.add_argument(
            "--merged", action="store_true", help="the merged detections (overlapping windows joined), not windows"
        )

    def handle(self, *args, dataset, recording, job, file_format, output, model_run, min_score, merged, **options):
        if not 0 <= min_score <= 1:
            raise CommandError(f"--min-score: must be in [0, 1], got {min_score:g}")
        try:
            scope = exports.scope_of(dataset=dataset, recording=recording, job=job)
            run = exports.model_run_of(scope, model_run, merged=merged)
            report = exports.export_detections(
                scope, run, file_format=file_format, output=output, min_score=min_score, merged=merged
            )
        except exports.ExportError as error:
            raise CommandError(f"{OPTIONS.get(error.field, error.field)}: {error}") from error
        what = "merged detections" if merged else "window predictions"
        where = output if file_format == "csv" else f"{len(report.files)} files in {output}"
        self.stdout.write(
            f"Wrote {report.rows} {what} of {run} on {report.recordings} recordings to {where}",
            self.style.SUCCESS,
        )
