"""Write one job's detections as BirdNET-Analyzer does (see inference.exports and inference.birdnet_formats)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from echoroo.formatting import count_text, duration_text
from inference import exports
from inference.models import InferenceJob

# ExportError.field -> the option at fault.
OPTIONS = {
    "dataset": "--dataset",
    "recording": "--recording",
    "job": "--job",
    "model_run": "--model-run",
    "format": "--format",
    "output": "--output",
    "thresholds": "--thresholds",
    "verified": "--verified",
    "combined": "--combined",
    "columns": "--columns",
    "min_score": "--min-score",
    "timezone": "--timezone",
}


class Command(BaseCommand):
    help = (
        "Export one job's detections as BirdNET-Analyzer writes them: the job --job, or the newest completed job on "
        "--dataset or --recording. Into the folder --output: one file per recording (Raven selection tables, CSV, "
        "Kaleidoscope CSV or Audacity labels) and BirdNET_analysis_params.csv; with --combined, one file for all "
        "recordings (raven: BirdNET_SelectionTable.txt and its list of audio files BirdNET_SelectionTable.list.txt). "
        "A csv export to a path ending in .csv writes that one file. One row per window and species, as "
        "BirdNET-Analyzer writes; --merged writes the merged detections instead. --thresholds keeps the rows "
        "passing a threshold set; --verified the windows a reviewer judged correct."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--dataset", metavar="NAME", help="the newest completed job on the dataset")
        target.add_argument(
            "--recording", metavar="UUID", help="the newest completed job that finished the recording, on it only"
        )
        target.add_argument("--job", metavar="UUID", help="this inference job, whatever its status")
        parser.add_argument("--format", required=True, choices=exports.FORMATS, dest="file_format")
        parser.add_argument(
            "--output", required=True, type=Path, metavar="PATH", help="a folder (a csv export: or a file name.csv)"
        )
        parser.add_argument(
            "--combined",
            action="store_true",
            help="one file for all recordings, as BirdNET-Analyzer's --combine_results (raven, csv, kaleidoscope)",
        )
        parser.add_argument(
            "--columns",
            metavar="NAMES",
            help=f"extra csv columns, comma-separated, written in this order: {','.join(exports.COLUMNS)}",
        )
        parser.add_argument(
            "--timezone",
            dest="time_zone",
            default="",
            metavar="ZONE",
            help="the clock of the date and time columns (an IANA name; default the TIME_ZONE setting)",
        )
        parser.add_argument(
            "--model-run",
            metavar="ID",
            help='id, UUID or name ("birdnet 2.4", "perch") of a model run: with --dataset or --recording, the '
            "newest completed job of that model run",
        )
        parser.add_argument(
            "--min-score", type=float, default=0.0, metavar="X", help="only rows scoring X or more (default 0)"
        )
        parser.add_argument(
            "--merged", action="store_true", help="the merged detections (overlapping windows joined), not windows"
        )
        parser.add_argument(
            "--thresholds",
            metavar="NAME",
            help="only rows at or above their species' threshold in this threshold set (its default for the others)",
        )
        parser.add_argument(
            "--verified",
            action="store_true",
            help='only windows a reviewer judged "correct" for the species, one row each, with a last column '
            '"Reviewer" naming who (raven, csv, kaleidoscope)',
        )

    def handle(
        self,
        *args,
        dataset,
        recording,
        job,
        file_format,
        output,
        combined,
        columns,
        time_zone,
        model_run,
        min_score,
        merged,
        thresholds,
        verified,
        **options,
    ):
        if not 0 <= min_score <= 1:
            raise CommandError(f"--min-score: must be in [0, 1], got {min_score:g}")
        try:
            threshold_set = exports.threshold_set_named(thresholds) if thresholds is not None else None
            wanted = exports.ExportOptions(
                file_format=file_format,
                combined=combined,
                columns=exports.parse_columns(columns),
                min_score=min_score,
                merged=merged,
                threshold_set=threshold_set,
                verified=verified,
                time_zone=time_zone,
            )
            scope = exports.scope_of(dataset=dataset, recording=recording, job=job, model_run=model_run)
            if scope.chosen:
                self.stdout.write(f"Exporting job {scope.job.uuid}, {scope.chosen}: {describe(scope.job)}")
            report = exports.export_detections(scope, wanted, output)
        except exports.ExportError as error:
            raise CommandError(f"{OPTIONS.get(error.field, error.field)}: {error}") from error
        noun = "merged detection" if merged else "window prediction"
        what = count_text(report.rows, f"verified {noun}" if verified else noun)
        if threshold_set is not None:
            what += f" passing the threshold set {threshold_set.name!r}"
        where = output if len(report.files) == 1 else f"{count_text(len(report.files), 'file')} in {output}"
        self.stdout.write(
            f"Wrote {what} of {scope.job.model_run} (job {scope.job.uuid}) on "
            f"{count_text(report.recordings, 'recording')} to {where}",
            self.style.SUCCESS,
        )
        if scope.unfinished:
            are = "is" if scope.unfinished == 1 else "are"
            self.stdout.write(
                f"{scope.unfinished:,} of the job's recordings {are} not done (failed, cancelled or pending): "
                "nothing exported for them",
                self.style.WARNING,
            )


def describe(job: InferenceJob) -> str:
    """A job as a person picks it out: model, when it finished, the settings that decide its detections."""
    config = job.settings
    finished = f"completed {timezone.localtime(job.completed_at):%Y-%m-%d %H:%M}" if job.completed_at else job.status
    return (
        f"{job.model_run}, {finished}, confidence threshold {config.confidence_threshold:g}, "
        f"sensitivity {config.sensitivity:g}, overlap {duration_text(config.overlap)}"
    )
