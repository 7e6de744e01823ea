"""Benchmark: deleting a dataset in one statement cascading in PostgreSQL, against Django's collector.

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/delete_dataset.py --clips 100000

It starts a throw-away embedded PostgreSQL server (deleted at the end), loads two identical
datasets with SQL (recordings, each with its raw output marked stored; clips, each with the model's
raw output of 9 labels, a finished job's prediction with a scored tag, and a 1,024-d embedding),
then deletes one with `echoroo.deletion.delete` (what the admin and the API do)
and the other with `Dataset.delete()` (Django's collector, what they did before), timing each and
counting its queries and the growth of this process's peak memory. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))

from throwaway import start_throwaway_django  # noqa: E402

OUTPUT_LABELS = 9


def load(name: str, n_clips: int, n_recordings: int, run_id: int, tag_id: int) -> int:
    from django.db import connection

    from echoroo.models import Dataset, Recording, RecordingOutput
    from inference.models import InferenceJob

    dataset = Dataset.objects.create(name=name)
    job = InferenceJob.objects.create(model_run_id=run_id, dataset=dataset, status=InferenceJob.Status.COMPLETED)
    per_recording = -(-n_clips // n_recordings)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO echoroo_recording (uuid, dataset_id, path, sha256, duration, samplerate, channels, created_at)"
            " SELECT gen_random_uuid(), %s, %s || '/' || r || '.wav', md5(%s || r) || md5(r || %s), %s, 48000, 1, now()"
            " FROM generate_series(1, %s) r",
            [dataset.pk, name, name, name, 3.0 * per_recording, n_recordings],
        )
        cursor.execute(
            "INSERT INTO echoroo_clip (uuid, recording_id, start_time, end_time)"
            " SELECT gen_random_uuid(), r.id, 3 * n, 3 * n + 3 FROM echoroo_recording r,"
            " generate_series(0, %s - 1) n WHERE r.dataset_id = %s",
            [per_recording, dataset.pk],
        )
        clips = (
            "SELECT c.id FROM echoroo_clip c JOIN echoroo_recording r ON r.id = c.recording_id WHERE r.dataset_id = %s"
        )
        # The model's raw output (9 labels a window, as BirdNET's at the default floor) and the job's detections.
        RecordingOutput.objects.bulk_create(
            RecordingOutput(
                recording_id=recording_id,
                model_run_id=run_id,
                overlap=0.0,
                windows=per_recording,
                floor_logit=-4.4,
                embeddings=True,
            )
            for recording_id in Recording.objects.filter(dataset=dataset).values_list("id", flat=True)
        )
        cursor.execute(
            "INSERT INTO echoroo_clipoutput (clip_id, model_run_id, tags, logits)"
            f" SELECT id, %s, array_fill(%s, ARRAY[{OUTPUT_LABELS}]),"
            f" array_fill(-1.5::real, ARRAY[{OUTPUT_LABELS}]) FROM ({clips}) c",
            [run_id, tag_id, dataset.pk],
        )
        cursor.execute(
            "INSERT INTO echoroo_clipprediction (uuid, clip_id, model_run_id, job_id, created_at)"
            f" SELECT gen_random_uuid(), id, %s, %s, now() FROM ({clips}) c",
            [run_id, job.pk, dataset.pk],
        )
        cursor.execute(
            "INSERT INTO echoroo_clippredictiontag (clip_prediction_id, tag_id, score)"
            " SELECT p.id, %s, 0.5 FROM echoroo_clipprediction p JOIN echoroo_clip c ON c.id = p.clip_id"
            " JOIN echoroo_recording r ON r.id = c.recording_id WHERE r.dataset_id = %s",
            [tag_id, dataset.pk],
        )
        cursor.execute(
            "INSERT INTO embeddings_clipembedding (clip_id, model_run_id, embedding, created_at)"
            f" SELECT id, %s, array_fill(0.5::real, ARRAY[1024])::halfvec, now() FROM ({clips}) c",
            [run_id, dataset.pk],
        )
    return dataset.pk


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(delete) -> dict:
    from django.db import connection, reset_queries

    reset_queries()
    before = peak_mb()
    began = time.perf_counter()
    delete()
    seconds = time.perf_counter() - began
    return {
        "seconds": round(seconds, 2),
        "queries": len(connection.queries),
        "peak_memory_growth_mb": round(peak_mb() - before),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100_000, help="clips in each dataset (default 100,000)")
    parser.add_argument("--recordings", type=int, default=200)
    args = parser.parse_args()
    start_throwaway_django()
    from django.conf import settings
    from django.core.management import call_command

    settings.DEBUG = True  # count the queries
    call_command("migrate", verbosity=0)
    from echoroo import deletion
    from echoroo.models import SPECIES, Clip, Dataset, ModelRun, Tag

    run = ModelRun.objects.create(name="birdnet", version="2.4", embedding_dimension=1024)
    tag = Tag.objects.create(key=SPECIES, value="Turdus merula_Eurasian Blackbird")
    began = time.perf_counter()
    in_sql = load("in-sql", args.clips, args.recordings, run.pk, tag.pk)
    collected = load("collected", args.clips, args.recordings, run.pk, tag.pk)
    print(f"loaded 2 x {args.clips:,} clips in {time.perf_counter() - began:.1f} s", file=sys.stderr)

    sql = timed(lambda: deletion.delete(Dataset, [in_sql]))
    collector = timed(lambda: Dataset.objects.get(pk=collected).delete())
    assert Clip.objects.count() == 0 and Dataset.objects.count() == 0
    figures = {
        "clips_per_dataset": args.clips,
        "rows_per_dataset": 2 * args.recordings + 5 * args.clips + 2,
        "cascading_delete": sql,
        "django_collector": collector,
        "speedup": round(collector["seconds"] / sql["seconds"], 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
