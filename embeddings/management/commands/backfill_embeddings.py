"""Compute the embeddings missing from clips a model predicted on (e.g. after a job with store_embeddings off)."""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Exists, OuterRef, QuerySet
from tqdm import tqdm

from echoroo.audio import AudioError
from echoroo.models import Clip, ClipOutput, ClipPrediction, Dataset, ModelRun, Recording
from embeddings.models import ClipEmbedding
from embeddings.service import embed_clips
from inference.config import MAX_BATCH_SIZE, InferenceConfig
from inference.runner import load_runtime
from inference.runtimes import DEFAULT_RUNTIME, available_runtimes, runtime_class


def missing_clips(model_run: ModelRun, dataset: Dataset | None = None) -> QuerySet:
    """Clips with output or a detection of the model run and no embedding of it."""
    clips = Clip.objects.filter(
        Exists(ClipOutput.objects.filter(clip=OuterRef("pk"), model_run=model_run))
        | Exists(ClipPrediction.objects.filter(clip=OuterRef("pk"), model_run=model_run)),
        ~Exists(ClipEmbedding.objects.filter(clip=OuterRef("pk"), model_run=model_run)),
    )
    return clips.filter(recording__dataset=dataset) if dataset is not None else clips


class Command(BaseCommand):
    help = (
        "Compute and store the embeddings of the clips that have a prediction of a model but no embedding of it, "
        "from their audio, recording by recording. Safe to run again: clips that have their embedding are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--model",
            default=DEFAULT_RUNTIME,
            choices=available_runtimes(),
            help=f"the model (default {DEFAULT_RUNTIME})",
        )
        parser.add_argument("--dataset", metavar="NAME", help="only the clips of this dataset")
        parser.add_argument(
            "--batch-size", type=int, default=32, metavar="N", help="windows per model call (default 32)"
        )

    def handle(self, *args, model, dataset, batch_size, **options):
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be from 1 to {MAX_BATCH_SIZE}")
        version = runtime_class(model).version
        model_run = ModelRun.objects.filter(name=model, version=version).first()
        if model_run is None:
            raise CommandError(f"no job has run {model} {version} yet: there is nothing to backfill")
        in_dataset = None
        if dataset is not None:
            in_dataset = Dataset.objects.filter(name=dataset).first()
            if in_dataset is None:
                raise CommandError(f"no dataset is named {dataset!r}")
        missing = missing_clips(model_run, in_dataset)
        total = missing.count()
        if not total:
            self.stdout.write(f"Every clip predicted by {model_run} has its embedding: nothing to do.")
            return
        runtime = load_runtime(model, InferenceConfig())
        recording_ids = list(missing.order_by("recording_id").values_list("recording_id", flat=True).distinct())
        added, failed = 0, []
        # tqdm needs the raw stream: Django's OutputWrapper would end each of its updates with a newline.
        with tqdm(total=total, unit="clip", desc=str(model_run), file=self.stderr._out, disable=None) as bar:
            for recording in Recording.objects.filter(pk__in=recording_ids).order_by("pk"):
                clips = list(
                    missing.filter(recording=recording)
                    .order_by("start_time", "end_time")
                    .values_list("id", "start_time", "end_time")
                )
                try:
                    added += embed_clips(
                        runtime, model_run.pk, recording, clips, batch_size=batch_size, on_stored=bar.update
                    )
                except (AudioError, OSError) as error:  # a bad file fails its recording, not the run
                    failed.append(recording)
                    bar.write(f"{recording.path}: {error}", file=self.stderr._out)
        self.stdout.write(f"Added {added} embeddings of {model_run} to {len(recording_ids) - len(failed)} recordings.")
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(recording_ids)} recordings failed (see above); fix or remove them and "
                "run the command again: the others keep their embeddings"
            )
