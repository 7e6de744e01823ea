"""Write one job's detections as BirdNET-Analyzer does (see inference.exports for the formats)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

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
}


class Command(BaseCommand):
    help = (
        "Export one job's detections: the job --job, or the newest completed job on --dataset or --recording. "
        "Raven selection tables (one per recording, into the folder --output), a CSV with BirdNET-Analyzer's "
        "columns (the file --output) or Audacity labels (one per recording, into the folder --output). One row "
        "per window and species, as BirdNET-Analyzer writes; --merged writes the merged detections instead. "
        "--thresholds keeps the rows passing a threshold set; --verified the windows a reviewer judged correct."
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
            "--output", required=True, type=Path, metavar="PATH", help="a folder (raven, audacity) or a file (csv)"
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
            '"Reviewer" naming who (raven, csv)',
        )

    def handle(
        self,
        *args,
        dataset,
        recording,
        job,
        file_format,
        output,
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
            scope = exports.scope_of(dataset=dataset, recording=recording, job=job, model_run=model_run)
            if scope.chosen:
                self.stdout.write(f"Exporting job {scope.job.uuid}, {scope.chosen}: {describe(scope.job)}")
            report = exports.export_detections(
                scope,
                file_format=file_format,
                output=output,
                min_score=min_score,
                merged=merged,
                threshold_set=threshold_set,
                verified=verified,
            )
        except exports.ExportError as error:
            raise CommandError(f"{OPTIONS.get(error.field, error.field)}: {error}") from error
        what = "merged detections" if merged else "window predictions"
        if verified:
            what = f"verified {what}"
        if threshold_set is not None:
            what += f" passing the threshold set {threshold_set.name!r}"
        where = output if file_format == "csv" else f"{len(report.files)} files in {output}"
        self.stdout.write(
            f"Wrote {report.rows} {what} of {scope.job.model_run} (job {scope.job.uuid}) on {report.recordings} "
            f"recordings to {where}",
            self.style.SUCCESS,
        )
        if scope.unfinished:
            self.stdout.write(
                f"{scope.unfinished} of the job's recordings are not done (failed, cancelled or pending): "
                "nothing exported for them",
                self.style.WARNING,
            )


def describe(job: InferenceJob) -> str:
    """A job as a person picks it out: model, when it finished, the settings that decide its detections."""
    config = job.settings
    finished = f"completed {timezone.localtime(job.completed_at):%Y-%m-%d %H:%M}" if job.completed_at else job.status
    return (
        f"{job.model_run}, {finished}, confidence threshold {config.confidence_threshold:g}, "
        f"sensitivity {config.sensitivity:g}, overlap {config.overlap:g} s"
    )
