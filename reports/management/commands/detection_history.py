"""Write a species' detection history (site x occasion, 1/0/NA), its effort and its long table (reports.history)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from reports import history
from reports.selection import ReportError, dataset_by_name, parse_score, parse_zone, select

# ReportError.field -> the option at fault.
OPTIONS = {
    "dataset": "--dataset",
    "job": "--job",
    "species": "--species",
    "occasion_days": "--occasion-days",
    "hours": "--hours",
    "start": "--start",
    "end": "--end",
    "min_score": "--threshold",
    "thresholds": "--thresholds",
    "timezone": "--timezone",
}


class Command(BaseCommand):
    help = (
        "Write a species' detection history for occupancy models: a row per site of --dataset, a column per "
        "occasion (--occasion-days days each, named by its first date), cells 1 (detected), 0 (audio, no "
        "detection) or NA (no audio). Reads one job's detections: --job, or the newest completed job on the "
        "dataset. --effort writes the minutes of audio behind each cell, --long a row per site and occasion."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, metavar="NAME")
        parser.add_argument(
            "--species", required=True, metavar="NAME", help="a scientific name, or the model's full label"
        )
        parser.add_argument("--occasion-days", type=int, default=1, metavar="N", help="days per occasion (default 1)")
        parser.add_argument("--output", required=True, type=Path, metavar="FILE.csv", help="the detection matrix")
        parser.add_argument("--effort", type=Path, metavar="FILE.csv", help="the effort matrix, minutes of audio")
        parser.add_argument(
            "--long", type=Path, metavar="FILE.csv", help="site,occasion,n_detections,max_conf,max_conf_clip"
        )
        parser.add_argument("--job", metavar="UUID", help="this job's detections (default: the newest completed)")
        parser.add_argument(
            "--threshold", metavar="X", help="only detections scoring X or more (default: all the job's, at its own)"
        )
        parser.add_argument(
            "--thresholds", metavar="NAME", help="only detections at or above their species' threshold in this set"
        )
        parser.add_argument("--verified", action="store_true", help="only windows a reviewer judged correct")
        parser.add_argument("--start", metavar="YYYY-MM-DD", help="the first occasion's first day")
        parser.add_argument("--end", metavar="YYYY-MM-DD", help="the last day (default: the last day with audio)")
        parser.add_argument(
            "--hours", metavar="H-H", help="only this window of each day, e.g. 4-9 or 20:30-6 (past midnight)"
        )
        parser.add_argument(
            "--timezone", metavar="ZONE", help="the clock days are read on, e.g. Europe/Berlin (default TIME_ZONE)"
        )

    def handle(self, *args, **options):
        outputs = {"detections": options["output"], "effort": options["effort"], "long": options["long"]}
        try:
            occasions = history.occasions_from(
                days=options["occasion_days"], hours=options["hours"], start=options["start"], end=options["end"]
            )
            selection = select(
                dataset=dataset_by_name(options["dataset"]),
                job=options["job"],
                thresholds=options["thresholds"],
                min_score=parse_score(options["threshold"], "min_score"),
                verified=options["verified"],
                zone=parse_zone(options["timezone"]),
            )
            species = history.species_of(options["species"], selection)
            found = history.detection_history(selection, species, occasions)
        except ReportError as error:
            raise CommandError(f"{OPTIONS.get(error.field, error.field)}: {error}") from error
        for matrix, path in outputs.items():
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("w", newline="", encoding="utf-8") as out:
                    history.write(found, matrix, out)
        job = selection.job
        self.stdout.write(
            f"{species.value}: {len(found.sites)} sites x {len(found.occasions)} occasions of "
            f"{occasions.days} day(s){' (' + occasions.hours + ' each day)' if occasions.hours else ''}, from job "
            f"{job.uuid} ({job.model_run}{', ' + selection.chosen if selection.chosen else ''}), days on "
            f"{selection.zone}; wrote {', '.join(str(path) for path in outputs.values() if path)}",
            self.style.SUCCESS,
        )
        left_out = {why: count for why, count in found.left_out.items() if count}
        if left_out:
            self.stdout.write(
                "Left out, as they cannot be placed: "
                + ", ".join(f"{count} recording(s) with {why}" for why, count in left_out.items()),
                self.style.WARNING,
            )
