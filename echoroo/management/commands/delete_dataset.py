"""Delete a dataset and everything below it, recording by recording, with a progress bar."""

from __future__ import annotations

import sys
import uuid

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from echoroo import deletion
from echoroo.models import Dataset, Recording


class Command(BaseCommand):
    help = (
        "Delete a dataset (by name or uuid) with its recordings, clips, predictions, embeddings, annotations "
        "and jobs; the audio files stay. Recordings go a batch at a time, each batch one statement "
        "cascading in PostgreSQL, so a dataset of any size goes without a web request's time limit; "
        "interrupted, run it again to finish. Refused while a job is running on the dataset."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="the dataset's name or uuid")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser.add_argument("--batch-size", type=int, default=100, help="recordings deleted per statement")

    def handle(self, *args, dataset: str, yes: bool, batch_size: int, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        target = _find(dataset)
        refused = deletion.obstacles(Dataset, [target.pk])
        if refused:
            raise CommandError(f"dataset {target.name!r} cannot be deleted now: " + "; ".join(refused))
        counts = deletion.what_goes_with(Dataset, [target.pk])
        going = ", ".join(f"{count:,} {label}" for label, count in counts.items()) or "nothing else"
        self.stdout.write(f"Dataset {target.name!r} ({target.uuid}): {going}.")
        if not yes:
            if not sys.stdin.isatty():
                raise CommandError("not deleting without confirmation: add --yes to delete without being asked")
            if input("Delete it all? Type the dataset's name to confirm: ").strip() != target.name:
                raise CommandError("not confirmed; nothing deleted")

        recordings = list(Recording.objects.filter(dataset=target).order_by("pk").values_list("pk", flat=True))
        # tqdm needs the raw stream: Django's OutputWrapper would end each of its updates with a newline.
        with tqdm(
            total=len(recordings),
            unit="recording",
            desc="Deleting",
            file=self.stderr._out,
            disable=None if options["verbosity"] else True,
        ) as bar:
            for start in range(0, len(recordings), batch_size):
                batch = recordings[start : start + batch_size]
                try:
                    deletion.delete(Recording, batch)
                except deletion.DeletionRefused as refused:  # a job started on it meanwhile
                    raise CommandError(f"stopped: {refused}; run the command again once the job ends") from refused
                bar.update(len(batch))
        deletion.delete(Dataset, [target.pk])
        self.stdout.write(self.style.SUCCESS(f"Deleted dataset {target.name!r}: {going}."))


def _find(name_or_uuid: str) -> Dataset:
    try:
        found = Dataset.objects.filter(uuid=uuid.UUID(name_or_uuid)).first()
    except ValueError:
        found = None
    found = found or Dataset.objects.filter(name=name_or_uuid).first()
    if found is None:
        names = ", ".join(repr(n) for n in Dataset.objects.order_by("name").values_list("name", flat=True)[:20])
        raise CommandError(f"no dataset is named {name_or_uuid!r}" + (f"; datasets: {names}" if names else ""))
    return found
