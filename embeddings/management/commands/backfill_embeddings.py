"""Compute the embeddings missing from what a model predicted on (e.g. after a job with store_embeddings off)."""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Exists, OuterRef, QuerySet
from tqdm import tqdm

from echoroo.models import Clip, ClipOutput, ClipPrediction, Dataset, ModelRun, Recording
from embeddings import service
from embeddings.indexes import build_index_if_needed
from embeddings.models import ClipEmbedding
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
        "Compute and store the embeddings a model's run lacks, from the audio, recording by recording: those of "
        "the clips it has a prediction on, then those of the sound events it embeds (its merged detections and "
        "people's annotated boxes), each with a progress bar. Safe to run again: what has its embedding is skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--model",
            default=DEFAULT_RUNTIME,
            choices=available_runtimes(),
            help=f"the model (default {DEFAULT_RUNTIME})",
        )
        parser.add_argument("--dataset", metavar="NAME", help="only the clips and sound events of this dataset")
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
        clips = missing_clips(model_run, in_dataset)
        events = service.missing_sound_events(model_run.pk, service.sound_events_of_run(model_run, in_dataset))
        clip_total, event_total = clips.count(), events.count()
        if not clip_total and not event_total:
            self.stdout.write(f"Every clip and sound event of {model_run} has its embedding: nothing to do.")
            return
        runtime = load_runtime(model, InferenceConfig())
        failed: set[int] = set()

        def fail(recording: Recording, error: Exception) -> None:
            failed.add(recording.pk)
            tqdm.write(f"{recording.path}: {error}", file=self.stderr._out)

        # tqdm needs the raw stream: Django's OutputWrapper would end each of its updates with a newline.
        bar_options = {"file": self.stderr._out, "disable": None}
        clip_recordings = list(clips.order_by("recording_id").values_list("recording_id", flat=True).distinct())
        recordings = set(clip_recordings) | set(events.values_list("recording_id", flat=True).distinct())
        clips_added = 0
        with tqdm(total=clip_total, unit="clip", desc=f"{model_run} clips", **bar_options) as bar:
            for recording in Recording.objects.filter(pk__in=clip_recordings).order_by("pk"):
                spans = list(
                    clips.filter(recording=recording)
                    .order_by("start_time", "end_time")
                    .values_list("id", "start_time", "end_time")
                )
                try:
                    clips_added += service.embed_clips(
                        runtime, model_run.pk, recording, spans, batch_size=batch_size, on_stored=bar.update
                    )
                except service.BAD_RECORDING as error:  # a bad file fails its recording, not the run
                    fail(recording, error)
        events_added = 0
        if event_total:
            with tqdm(total=event_total, unit="event", desc=f"{model_run} sound events", **bar_options) as bar:
                events_added = service.embed_missing_sound_events(
                    runtime, model_run.pk, events, batch_size=batch_size, on_stored=bar.update, on_failure=fail
                )
            build_index_if_needed("sound_event", model_run.pk, model_run.embedding_dimension or runtime.embedding_dim)
        self.stdout.write(
            f"Added {clips_added} embeddings of clips and {events_added} of sound events of {model_run} "
            f"to {len(recordings - failed)} recordings."
        )
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(recordings)} recordings failed (see above); fix or remove them and "
                "run the command again: the others keep their embeddings"
            )
