"""Run a model over a dataset or a recording: create and start an inference job, and optionally follow it."""

import threading
import uuid
from contextlib import suppress
from pathlib import Path
from time import sleep

from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.db.models import Count
from tqdm import tqdm

from echoroo.formatting import count_text, duration_text
from echoroo.models import Dataset, Recording
from inference import services
from inference.config import ConfigError, InferenceConfig, help_of
from inference.describe import job_state
from inference.exports import detection_counts
from inference.models import InferenceJob, JobRecording
from inference.runtimes import available_runtimes

# Each InferenceConfig field -> its option (whose dest is the field's name) and the option's type (None: a flag
# that turns the setting off). What a value option does is the config's own help (inference.config.help_of).
CONFIG_OPTIONS = {
    "confidence_threshold": ("--confidence-threshold", float),
    "overlap": ("--overlap", float),
    "batch_size": ("--batch-size", int),
    "sensitivity": ("--sensitivity", float),
    "species_filter_threshold": ("--species-filter-threshold", float),
    "latitude": ("--lat", float),
    "longitude": ("--lon", float),
    "week": ("--week", int),
    "custom_species_list": ("--species-list", Path),
    "store_embeddings": ("--no-embeddings", None),
    "store_predictions": ("--no-predictions", None),
    "use_metadata_filter": ("--no-metadata-filter", None),
    "use_gpu": ("--no-gpu", None),
}
FLAG_HELP = {
    "store_embeddings": "store no embeddings",
    "store_predictions": "store no predictions (embeddings only)",
    "use_metadata_filter": "no location filter by place and week",
    "use_gpu": "never use a GPU",
}
SPECIES_LIST_HELP = (
    "a FILE of the only species to report, one a line: a label, scientific name, common name or eBird code; "
    "'#' starts a comment"
)
# ConfigError fields that are not config fields -> the option at fault.
OTHER_OPTIONS = {
    "model_name": "--model",
    "model_version": "--model",
    "dataset": "--dataset",
    "recording": "--recording",
}

POLL_S = 1.0
SHOWN_FAILURES = 20


class Command(BaseCommand):
    help = (
        "Create an inference job on a dataset or a recording and start it: queued for the workers (qcluster) "
        "by default, --wait to follow it with a progress bar, --sync to run it in this process without a worker. "
        "Config options left out take InferenceConfig's defaults."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--model", required=True, choices=available_runtimes(), dest="model_name", help="the model to run"
        )
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--dataset", metavar="NAME", help="every recording of the dataset")
        target.add_argument("--recording", metavar="UUID", help="one recording")
        follow = parser.add_argument_group("how to run it")
        follow.add_argument("--wait", action="store_true", help="show the job's progress until it ends")
        follow.add_argument(
            "--sync", action="store_true", help="run the job in this process, without a worker, and wait for it"
        )

        config = parser.add_argument_group("config (left out: InferenceConfig's default)")
        default = InferenceConfig()
        for field, (option, kind) in CONFIG_OPTIONS.items():
            if kind is None:
                config.add_argument(option, action="store_false", dest=field, default=None, help=FLAG_HELP[field])
                continue
            what = SPECIES_LIST_HELP if kind is Path else help_of(field).rstrip(".")
            shown = getattr(default, field)
            what += f" (default {shown})" if shown is not None else ""
            metavar = {"--lat": "LAT", "--lon": "LON"}.get(option) or {Path: "FILE", int: "N"}.get(kind, "X")
            config.add_argument(option, type=kind, dest=field, metavar=metavar, help=what)

    def handle(self, *args, model_name, dataset, recording, wait, sync, **options):
        target = {"dataset": _dataset(dataset)} if dataset is not None else {"recording": _recording(recording)}
        config = {field: options[field] for field in CONFIG_OPTIONS if options[field] is not None}
        if "custom_species_list" in config:
            config["custom_species_list"] = _species_list(config["custom_species_list"])
        try:
            # Created and started in one call: a refused job leaves nothing behind. With --sync its recordings
            # are not queued: this process runs them.
            job = services.create_job(model_name=model_name, config=config, start=True, queue=not sync, **target)
        except ConfigError as error:
            raise CommandError(_options_named(error)) from error
        self.stdout.write(f"Job {job.uuid}: {job}")
        show_progress = options["verbosity"] > 0

        if sync:
            job = self._run_here(job, show_progress)
        else:
            recordings = job.job_recordings.count()
            queued = f"{count_text(recordings, 'recording')} ({count_text(job.total_clips, 'window')})"
            self.stdout.write(f"Queued {queued} for the workers.")
            if not wait:
                self.stdout.write(f"Follow it with GET /api/v1/inference/jobs/{job.uuid}/ or in the admin.")
                return
            job = self._wait(job, show_progress)
        self._summarise(job)

    def _run_here(self, job: InferenceJob, show_progress: bool) -> InferenceJob:
        bar = self._bar(job, show_progress)
        stop = threading.Event()
        # The job runs in this thread; a second one (with its own connection) reads its progress.
        follower = None if bar.disable else threading.Thread(target=_follow, args=(job.pk, bar, stop), daemon=True)
        if follower:
            follower.start()
        try:
            return services.run_here(job)
        except KeyboardInterrupt:
            with suppress(ConfigError):  # it may have just finished
                services.cancel_job(job)
            raise CommandError(
                f"Interrupted: job {job.uuid} is cancelled; the recordings finished so far keep their results.",
                returncode=130,
            ) from None
        finally:
            stop.set()
            if follower:
                follower.join()
            bar.close()

    def _wait(self, job: InferenceJob, show_progress: bool) -> InferenceJob:
        bar = self._bar(job, show_progress)
        try:
            while True:
                job.refresh_from_db()
                _show(bar, job.processed_clips, job.total_clips)
                if job.is_finished:
                    return job
                sleep(POLL_S)
        except KeyboardInterrupt:
            raise CommandError(
                f"Stopped waiting; job {job.uuid} goes on in the workers. Cancel it with "
                f"DELETE /api/v1/inference/jobs/{job.uuid}/ or the admin's cancel action.",
                returncode=130,
            ) from None
        finally:
            bar.close()

    def _bar(self, job: InferenceJob, show_progress: bool) -> tqdm:
        # tqdm needs the raw stream: Django's OutputWrapper would end each of its updates with a newline.
        return tqdm(
            total=job.total_clips or None,
            unit="window",
            desc=str(job.model_run),
            file=self.stderr._out,
            disable=None if show_progress else True,
        )

    def _summarise(self, job: InferenceJob) -> None:
        states = _recording_states(job)
        done, failed = states.get(JobRecording.Status.DONE, 0), states.get(JobRecording.Status.FAILED, 0)
        cancelled = states.get(JobRecording.Status.CANCELLED, 0)
        windows, detections = detection_counts(job)
        clean = job.status == InferenceJob.Status.COMPLETED and not failed
        stored = f"{count_text(windows, 'window prediction')}, {count_text(detections, 'merged detection')}"
        self.stdout.write(
            f"Job {job.uuid} {job_state(job, failed, cancelled).text} in {duration_text(job.duration_s)}: "
            f"{count_text(done, 'recording')} done, {failed:,} failed, {cancelled:,} cancelled. "
            f"Stored for them by {job.model_run}: {stored}.",
            self.style.SUCCESS if clean else self.style.WARNING,
        )
        failures = JobRecording.objects.filter(job=job, status=JobRecording.Status.FAILED).order_by("id")
        for path, error in failures.values_list("recording__path", "error_message")[:SHOWN_FAILURES]:
            self.stdout.write(f"  failed: {path}: {error}")
        if failed > SHOWN_FAILURES:
            self.stdout.write(f"  ... and {failed - SHOWN_FAILURES:,} more (see the admin)")
        if job.status in (InferenceJob.Status.FAILED, InferenceJob.Status.CANCELLED):
            raise CommandError(f"job {job.uuid} {job.status}" + (f": {job.error_message}" if job.error_message else ""))


def _recording_states(job: InferenceJob) -> dict[str, int]:
    by_status = JobRecording.objects.filter(job=job).order_by().values("status").annotate(n=Count("id"))
    return dict(by_status.values_list("status", "n"))


def _show(bar: tqdm, processed: int, total: int) -> None:
    if total and bar.total != total:
        bar.total = total
    bar.n = processed
    bar.refresh()


def _follow(job_id: int, bar: tqdm, stop: threading.Event) -> None:
    try:
        stopping = False
        while not stopping:
            stopping = stop.wait(POLL_S)  # once stopped, one last look: the final figures
            figures = InferenceJob.objects.filter(pk=job_id).values_list("processed_clips", "total_clips").first()
            if figures:
                _show(bar, *figures)
    finally:
        connections.close_all()  # this thread's own


def _dataset(name: str) -> Dataset:
    found = Dataset.objects.filter(name=name).first()
    if found is None:
        names = ", ".join(Dataset.objects.order_by("name").values_list("name", flat=True)[:20]) or "none yet"
        raise CommandError(f"--dataset: no dataset named {name!r}; the datasets are: {names}")
    return found


def _recording(text: str) -> Recording:
    try:
        found = Recording.objects.filter(uuid=uuid.UUID(text)).first()
    except ValueError:
        raise CommandError(f"--recording: {text!r} is not a UUID") from None
    if found is None:
        raise CommandError(f"--recording: no recording with UUID {text}")
    return found


def _species_list(path: Path) -> list[str]:
    """One species a line; '#' starts a comment; blank lines are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"--species-list: cannot read {path}: {error}") from error
    return [name for line in lines if (name := line.split("#", 1)[0].strip())]


def _options_named(error: ConfigError) -> str:
    named = {field: option for field, (option, _) in CONFIG_OPTIONS.items()} | OTHER_OPTIONS
    return "; ".join(f"{named.get(field, field)}: {message}" for field, message in error.errors.items())
