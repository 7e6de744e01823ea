"""Benchmark: how long each HTML page (and what it loads) takes to render with 10,000 detections on one recording.

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/pages.py [--minutes 60] [--detections 10000] [--repeats 5]

It starts a throw-away embedded PostgreSQL server in a temporary directory (deleted at the
end), writes a recording of --minutes by looping tests/data/1min.wav into a temporary
AUDIO_ROOT, imports it, and loads a BirdNET-like model run in bulk: one 3-second clip per
window, --detections species scores spread over the clips (the rows of a finished job on the
recording: a job's detections are its own), a random 1,024-d embedding per clip. Each page is
requested through Django's test client as a superuser: the median of --repeats requests after
one warm-up, with the SQL queries of one request. Spectrograms are timed twice: drawn (a range
not drawn before, each request) and cached. The last line of output is one JSON object with the
figures.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT / "tests" / "data"
sys.path.insert(0, str(PROJECT_ROOT))

SPECIES = 40


from throwaway import start_throwaway_django  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60, help="length of the recording (default 60)")
    parser.add_argument("--detections", type=int, default=10_000, help="species scores on it (default 10,000)")
    parser.add_argument("--repeats", type=int, default=5, help="timed requests per page (the median is reported)")
    return parser.parse_args()


def write_recording(audio_root: Path, minutes: int) -> Path:
    """1min.wav looped `minutes` times, as 16-bit PCM, written a minute at a time."""
    import soundfile as sf

    minute, rate = sf.read(SHARED_DATA / "1min.wav", dtype="float32")
    folder = audio_root / "bench"
    folder.mkdir()
    path = folder / f"looped_{minutes}min.wav"
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as out:
        for i in range(minutes):
            out.write(minute * (1 - 0.5 * i / max(minutes, 1)))
    return path


def load(recording, n_detections: int):
    """The results of a BirdNET-like run on the recording, written in bulk; returns (job, a clip with detections)."""
    from django.db import connection
    from django.utils import timezone

    from echoroo.models import SPECIES as SPECIES_KEY
    from echoroo.models import Clip, ClipPrediction, ClipPredictionTag, ModelRun, Tag
    from embeddings.indexes import ensure_hnsw_index
    from embeddings.storage import store_embeddings
    from inference.models import InferenceJob, JobRecording

    rng = np.random.default_rng(0)
    model_run = ModelRun.objects.create(
        name="birdnet", version="2.4", embedding_dimension=1024, segment_duration=3.0, sample_rate=48_000
    )
    ensure_hnsw_index("clip", model_run.id, 1024)
    n_clips = int(recording.duration // 3)
    clips = Clip.objects.bulk_create(
        Clip(recording=recording, start_time=3.0 * i, end_time=3.0 * i + 3.0) for i in range(n_clips)
    )
    # A job's detections are its own: the pages show one job's rows.
    now = timezone.now()
    job = InferenceJob.objects.create(
        model_run=model_run,
        recording=recording,
        status="completed",
        progress=100.0,
        total_clips=n_clips,
        processed_clips=n_clips,
        started_at=now,
        completed_at=now,
    )
    JobRecording.objects.create(
        job=job, recording=recording, status="done", total_clips=n_clips, processed_clips=n_clips
    )
    predictions = ClipPrediction.objects.bulk_create(
        ClipPrediction(clip=clip, model_run=model_run, job=job) for clip in clips
    )
    tags = Tag.objects.bulk_create(
        Tag(key=SPECIES_KEY, value=f"Genus species{i:02d}_Benchmark Bird {i:02d}") for i in range(SPECIES)
    )
    # Species per clip so that the total is n_detections: a few clips get one more than the rest.
    per_clip, extra = divmod(n_detections, n_clips)
    rows = []
    for i, prediction in enumerate(predictions):
        chosen = rng.choice(SPECIES, size=min(SPECIES, per_clip + (i < extra)), replace=False)
        rows += [
            ClipPredictionTag(clip_prediction=prediction, tag=tags[t], score=float(rng.uniform(0.1, 1.0)))
            for t in chosen
        ]
    ClipPredictionTag.objects.bulk_create(rows, batch_size=5000)
    vectors = rng.standard_normal((n_clips, 1024)).astype(np.float32)
    store_embeddings("clip", np.array([clip.pk for clip in clips]), model_run.id, vectors)
    with connection.cursor() as cursor:
        for table in ("echoroo_clip", "echoroo_clipprediction", "echoroo_clippredictiontag", "echoroo_tag"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return job, clips[n_clips // 2], len(rows)


def measure(client, url: str, repeats: int, *, urls=None) -> tuple[float, int, float, int]:
    """(median ms, SQL queries and their ms in one request, response bytes); `urls` gives each timed request its own."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    reset_queries()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code in (200, 206), f"{url}: HTTP {response.status_code}"
    body = b"".join(response.streaming_content) if response.streaming else response.content
    sql_ms = 1000 * sum(float(query["time"]) for query in queries.captured_queries)
    times_ms = []
    for i in range(repeats):
        started = time.perf_counter()
        timed = client.get(urls[i] if urls else url)
        if timed.streaming:
            b"".join(timed.streaming_content)
        times_ms.append(1000 * (time.perf_counter() - started))
    return statistics.median(times_ms), len(queries.captured_queries), sql_ms, len(body)


def main() -> None:
    args = parse_args()
    audio_root = start_throwaway_django(prefix="echoroo-bench-pages-", folders=("audio", "cache")) / "audio"

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from echoroo.importing import import_recordings
    from echoroo.models import Recording

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    write_recording(audio_root, args.minutes)
    report = import_recordings([audio_root / "bench"], dataset="Benchmark")
    assert not report.failures, report.failures
    recording = Recording.objects.get()
    job, clip, detections = load(recording, args.detections)
    print(
        f"{args.minutes} min recording with {detections:,} detections on {int(recording.duration // 3):,} clips, "
        f"loaded in {time.perf_counter() - started:.1f} s"
    )

    client = Client(SERVER_NAME="localhost")  # ALLOWED_HOSTS has no "testserver" outside tests
    client.force_login(get_user_model().objects.create_superuser("benchmark", password=secrets.token_urlsafe()))

    rec = f"/recordings/{recording.uuid}/"
    spectrogram = f"/recordings/{recording.uuid}/spectrogram.png"
    repeats = args.repeats
    # Each timed request of a "drawn" figure asks for a minute not drawn before.
    fresh_minutes = [f"{spectrogram}?start={60 * (i + 2)}&end={60 * (i + 3)}" for i in range(repeats)]
    fresh_clips = [f"/clips/{uuid_}/spectrogram.png" for uuid_ in _other_clips(clip, repeats)]
    pages = {
        "home_ms": ("/", None),
        "jobs_ms": ("/jobs/", None),
        "job_ms": (f"/jobs/{job.uuid}/", None),
        "recording_ms": (rec, None),
        "recording_at_30min_ms": (f"{rec}?t=1800", None),
        "recording_one_species_ms": (f"{rec}?species=Genus+species07_Benchmark+Bird+07", None),
        "recording_min_score_ms": (f"{rec}?min_score=0.9", None),
        "recording_last_table_page_ms": (f"{rec}?page=9999", None),
        "search_by_clip_ms": (f"/search/?clip={clip.uuid}&min_similarity=-1", None),
        "spectrogram_minute_drawn_ms": (f"{spectrogram}?start=60&end=120", fresh_minutes),
        "spectrogram_minute_cached_ms": (f"{spectrogram}?start=60&end=120", None),
        "clip_spectrogram_drawn_ms": (f"/clips/{clip.uuid}/spectrogram.png", fresh_clips),
        "clip_audio_wav_ms": (f"/clips/{clip.uuid}/audio.wav", None),
    }
    figures: dict = {"detections": detections, "recording_minutes": args.minutes}
    queries, sql_ms = {}, {}
    for name, (url, urls) in pages.items():
        median_ms, n_queries, page_sql_ms, size = measure(client, url, repeats, urls=urls)
        figures[name] = round(median_ms, 1)
        queries[name.removesuffix("_ms")] = n_queries
        sql_ms[name.removesuffix("_ms")] = round(page_sql_ms, 1)
        print(
            f"{name:32} {median_ms:7.1f} ms  {n_queries:2} queries taking {page_sql_ms:6.1f} ms  {size:8,} bytes  {url}"
        )
    figures["queries"] = queries
    figures["sql_ms"] = sql_ms
    print(json.dumps(figures))


def _other_clips(clip, n: int) -> list[uuid.UUID]:
    from echoroo.models import Clip

    return list(
        Clip.objects.filter(recording_id=clip.recording_id).exclude(pk=clip.pk).values_list("uuid", flat=True)[:n]
    )


if __name__ == "__main__":
    main()
