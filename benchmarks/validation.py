"""The validation loop at scale: a review sample and the next item in a job of 1,000,000 detections,
calibration from 10,000 verdicts, and neighbour suggestions.

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/validation.py [--detections 1000000] [--repeats 20]

It builds, in a throw-away embedded PostgreSQL server and a temporary AUDIO_ROOT (both removed at
the end), a completed BirdNET-like job whose window detections number --detections: recordings
that are hard links of tests/data/1min.wav (so every spectrogram is real audio, drawn anew:
each recording has its own sha256 and so its own spectrogram cache), 20 windows each, 5 species a
window out of 50 with a skewed frequency (the commonest has about a quarter of the detections),
scores uniform from the job's threshold 0.1 to 1. The baseline, in the same run, is the same
measurement on a job of 10,000 detections built the same way: the ratio says how the cost grows.

Measured (p95 over --repeats, milliseconds), for the commonest species and a mid-frequency one:
- sample_ms: drawing the stratified seeded sample (validation.sampling.review_sample, 10 bins x 5);
- page_ms: the review page (GET /validation/jobs/<uuid>/review/?species=), when it exists;
- next_item_ms: what the next item costs the server, as the review page asks for it: the verdict's
  POST, the calibration panel after it, the next window's image with a second of context each side
  (drawn, not cached) and its audio;
- calibration_s: calibrate_species from 10,000 verdicts (the fit and 200 bootstrap fits);
- neighbours_ms: similar_detections (12 nearest of the same species in the job, by the model's
  1,024-d embeddings, HNSW-indexed per run) among the mid species' detections.

The last line of stdout is one JSON object with these figures.
"""

from __future__ import annotations

import argparse
import atexit
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "tests" / "data"
SPECIES = 50
PER_WINDOW = 5
WINDOWS = 20  # 1min.wav: 20 windows of 3 s
THRESHOLD = 0.1
VERDICTS = 10_000

sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="echoroo-bench-validation-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    for name in ("pgdata", "audio", "cache"):
        (scratch / name).mkdir()
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ["ECHOROO_PGDATA"] = str(scratch / "pgdata")
    os.environ["AUDIO_ROOT"] = str(scratch / "audio")
    os.environ["ECHOROO_CACHE_DIR"] = str(scratch / "cache")
    os.environ["DJANGO_SETTINGS_MODULE"] = "echoroo.settings"
    import django
    from django.conf import settings

    settings.DATABASES["default"]["PGDATA_CLEANUP"] = "delete"
    settings.ALLOWED_HOSTS = ["*"]
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        small = measure(build(scratch / "audio", "small", 10_000), args.repeats, neighbours=False)
        large = measure(build(scratch / "audio", "large", args.detections), args.repeats, neighbours=True)
    finally:
        from django.db import connections

        connections.close_all()
    figures = {"detections": args.detections, **large, "baseline_10000": small}
    for key in ("sample_ms_common", "page_ms_common", "next_item_ms"):
        if large.get(key) and small.get(key):
            figures[f"{key}_vs_baseline"] = round(large[key] / small[key], 2)
    print(json.dumps(figures))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build(audio_root: Path, name: str, detections: int):
    """A completed job of `detections` window detections on hard-linked copies of 1min.wav."""
    from django.db import connection
    from django.utils import timezone

    from echoroo.models import SPECIES as SPECIES_KEY
    from echoroo.models import Dataset, Tag
    from inference.models import InferenceJob
    from inference.services import model_run_for

    began = time.perf_counter()
    recordings = -(-detections // (WINDOWS * PER_WINDOW))
    folder = audio_root / name
    folder.mkdir()
    source = folder / "source.wav"
    shutil.copy(SHARED / "1min.wav", source)
    for i in range(recordings):
        os.link(source, folder / f"r{i:06d}.wav")
    dataset = Dataset.objects.create(name=f"Benchmark {name}")
    model_run = model_run_for("birdnet")
    tags = [
        Tag.objects.get_or_create(key=SPECIES_KEY, value=f"Genus species{i:02d}_Benchmark Bird {i:02d}")[0]
        for i in range(SPECIES)
    ]
    now = timezone.now()
    job = InferenceJob.objects.create(
        model_run=model_run,
        dataset=dataset,
        status="completed",
        progress=100,
        config={"confidence_threshold": THRESHOLD, "use_metadata_filter": False},
        started_at=now,
        completed_at=now,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO echoroo_recording (uuid, dataset_id, path, sha256, duration, samplerate, channels, created_at)"
            " SELECT gen_random_uuid(), %s, %s || '/r' || lpad(g::text, 6, '0') || '.wav',"
            "  lpad(to_hex(g), 64, '0'), 60.0, 32000, 1, now() FROM generate_series(0, %s - 1) g",
            [dataset.pk, name, recordings],
        )
        cursor.execute(
            "INSERT INTO echoroo_clip (uuid, recording_id, start_time, end_time)"
            " SELECT gen_random_uuid(), r.id, 3.0 * w, 3.0 * w + 3.0 FROM echoroo_recording r,"
            " generate_series(0, %s - 1) w WHERE r.dataset_id = %s ORDER BY r.id, w",
            [WINDOWS, dataset.pk],
        )
        cursor.execute(
            "INSERT INTO inference_jobrecording (job_id, recording_id, status, total_clips, processed_clips,"
            " attempts, worker, error_message, reused)"
            " SELECT %s, id, 'done', %s, %s, 1, '', '', false FROM echoroo_recording WHERE dataset_id = %s",
            [job.pk, WINDOWS, WINDOWS, dataset.pk],
        )
        cursor.execute(
            "INSERT INTO echoroo_clipprediction (uuid, clip_id, model_run_id, job_id, created_at)"
            " SELECT gen_random_uuid(), c.id, %s, %s, now() FROM echoroo_clip c"
            " JOIN echoroo_recording r ON r.id = c.recording_id WHERE r.dataset_id = %s ORDER BY c.id",
            [model_run.pk, job.pk, dataset.pk],
        )
        cursor.execute("SELECT id FROM echoroo_clipprediction WHERE job_id = %s ORDER BY id", [job.pk])
        prediction_ids = np.array([row[0] for row in cursor.fetchall()], dtype=np.int64)
    rng = np.random.default_rng(0)
    # 5 distinct species a window, the commonest chosen far more often (weights ~ 1 / rank).
    weights = 1.0 / np.arange(1, SPECIES + 1)
    weights /= weights.sum()
    chosen = np.stack([rng.choice(SPECIES, PER_WINDOW, replace=False, p=weights) for _ in prediction_ids])
    rows_prediction = np.repeat(prediction_ids, PER_WINDOW)[:detections]
    rows_tag = np.array([tag.pk for tag in tags])[chosen.ravel()][:detections]
    rows_score = rng.uniform(THRESHOLD, 1.0, len(rows_tag))
    text = io.StringIO()
    np.savetxt(text, np.column_stack([rows_prediction, rows_tag, rows_score]), fmt=["%d", "%d", "%.6f"], delimiter="\t")
    with connection.cursor() as cursor:
        with cursor.copy("COPY echoroo_clippredictiontag (clip_prediction_id, tag_id, score) FROM STDIN") as copy:
            copy.write(text.getvalue())
        for table in ("echoroo_clip", "echoroo_clipprediction", "echoroo_clippredictiontag", "echoroo_recording"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    counts = np.bincount(chosen.ravel()[:detections], minlength=SPECIES)
    log(f"{name}: {detections:,} detections on {recordings:,} recordings in {time.perf_counter() - began:.1f} s")
    return job, tags[int(np.argmax(counts))], tags[int(np.argsort(counts)[SPECIES // 2])], counts


def measure(built, repeats: int, *, neighbours: bool) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import NoReverseMatch, resolve

    from validation import services
    from validation.sampling import review_sample

    job, common, mid, counts = built
    user = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})[0]
    client = Client()
    client.force_login(user)
    figures: dict = {
        "common_species_detections": int(counts.max()),
        "mid_species_detections": int(np.sort(counts)[SPECIES // 2]),
    }

    for label, species in (("common", common), ("mid", mid)):
        times = []
        for seed in range(repeats):
            began = time.perf_counter()
            sample = review_sample(job, species, per_bin=5, seed=seed)
            times.append(time.perf_counter() - began)
        figures[f"sample_ms_{label}"] = p95_ms(times)
        url = f"/validation/jobs/{job.uuid}/review/?species={species.value.partition('_')[0]}"
        try:
            resolve(url.partition("?")[0])
        except (NoReverseMatch, Exception):
            figures[f"page_ms_{label}"] = None
            continue
        times = []
        for seed in range(repeats):
            began = time.perf_counter()
            response = client.get(f"{url}&seed={seed}")
            times.append(time.perf_counter() - began)
            assert response.status_code == 200, response.status_code
        figures[f"page_ms_{label}"] = p95_ms(times)
    log(f"sample and page: {figures}")

    # The next item, as the review page does it: the verdict on this one (the page's own endpoint), the
    # calibration panel after it, and the next window's image (1 s of context each side) and audio.
    sample = review_sample(job, common, per_bin=5, seed=99)
    review = f"/validation/jobs/{job.uuid}/review"
    times = []
    for item, following in zip(sample[:repeats], sample[1 : repeats + 1], strict=False):
        began = time.perf_counter()
        posted = client.post(
            f"{review}/verdict/", {"clip": item.clip_uuid, "species": common.value, "verdict": "correct"}
        )
        assert posted.status_code == 200, posted.status_code
        panel = client.get(f"{review}/summary.json", {"species": common.value})
        assert panel.status_code == 200, panel.status_code
        image = client.get(f"/validation/clips/{following.clip_uuid}/context.png")
        assert image.status_code == 200, image.status_code
        audio = client.get(f"/clips/{following.clip_uuid}/audio.wav")
        assert audio.status_code == 200, audio.status_code
        times.append(time.perf_counter() - began)
    figures["next_item_ms"] = p95_ms(times)

    # Calibration from VERDICTS verdicts on the commonest species (a known curve), by several reviewers.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO validation_verdict (uuid, clip_id, species_id, verdict, reviewer_id, bulk, created_at,"
            " updated_at)"
            " SELECT gen_random_uuid(), p.clip_id, t.tag_id,"
            "  CASE WHEN random() < 1 / (1 + exp(-(-1 + 2 * ln(t.score / (1 - t.score))))) THEN 'correct'"
            "  ELSE 'wrong' END, %s, false, now(), now()"
            " FROM echoroo_clippredictiontag t JOIN echoroo_clipprediction p ON p.id = t.clip_prediction_id"
            " WHERE p.job_id = %s AND t.tag_id = %s LIMIT %s ON CONFLICT DO NOTHING",
            [user.pk, job.pk, common.pk, VERDICTS],
        )
    times = []
    for _ in range(3):
        began = time.perf_counter()
        calibration = services.calibrate_species(job, common)
        times.append(time.perf_counter() - began)
    figures["calibration_s"] = round(float(np.median(times)), 3)
    figures["calibration_verdicts"] = calibration.n_correct + calibration.n_wrong
    figures["calibration_coefficients"] = [round(c, 3) for c in calibration.coefficients]
    log(f"calibration: {figures['calibration_s']} s, coefficients {figures['calibration_coefficients']} (true -1, 2)")

    if neighbours:
        figures.update(measure_neighbours(job, mid, user, repeats))
    return figures


def measure_neighbours(job, species, user, repeats: int) -> dict:
    """Embeddings for the mid species' clips (clustered, 1,024-d), the run's HNSW index built after, then queries."""
    from django.db import connection

    from echoroo.models import Clip, ClipPredictionTag
    from embeddings.indexes import index_name
    from embeddings.storage import store_embeddings
    from validation import services

    clip_ids = np.array(
        ClipPredictionTag.objects.filter(clip_prediction__job=job, tag=species)
        .order_by("clip_prediction__clip_id")
        .values_list("clip_prediction__clip_id", flat=True),
        dtype=np.int64,
    )
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((40, 1024)).astype(np.float32)
    vectors = centres[rng.integers(0, 40, len(clip_ids))] + 0.3 * rng.standard_normal((len(clip_ids), 1024))
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {index_name('clip', job.model_run_id)}")
    store_embeddings("clip", clip_ids, job.model_run_id, vectors.astype(np.float16))
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(
            f"CREATE INDEX {index_name('clip', job.model_run_id)} ON embeddings_clipembedding USING hnsw "
            f"((embedding::halfvec(1024)) halfvec_cosine_ops) WITH (ef_construction = 128) "
            f"WHERE model_run_id = {int(job.model_run_id)}"
        )
        cursor.execute("VACUUM ANALYZE embeddings_clipembedding")
    log(f"neighbours: {len(clip_ids):,} embeddings loaded and indexed in {time.perf_counter() - began:.1f} s")
    times = []
    for clip_id in rng.choice(clip_ids, repeats, replace=False):
        clip = Clip.objects.get(pk=int(clip_id))
        began = time.perf_counter()
        found = services.similar_detections(job, clip, species, by=user)
        times.append(time.perf_counter() - began)
        assert len(found) == services.NEIGHBOURS
    return {"neighbours_ms": p95_ms(times), "neighbour_candidates": len(clip_ids)}


def p95_ms(times: list[float]) -> float:
    return round(float(np.percentile(times, 95)) * 1000, 1)


if __name__ == "__main__":
    main()
