"""Species summaries and detection histories on a year of a 100-site survey: how long the reports take.

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/reports.py [--detections 10000000] [--sites 100] [--days 365] [--repeats 3]

It builds, in a throw-away embedded PostgreSQL server (never DATABASE_URL; removed at the end), one
dataset of --sites sites recorded for --days days from 2025-01-01 (UTC): each site-day a dawn
recording (04:00, 3 h) and a dusk one (18:00, 2 h), a second recorder overlapping the dawn one
(04:30, 1 h) on 10 % of site-days, and no audio at all on 5 % of site-days (the gaps of a real
season). A completed BirdNET-like job has --detections window detections on them: 4 species a
window out of 50 (one commoner than the rest, weights ~ 1 / rank), scores uniform from 0.1 to 1,
windows spread over the recordings in proportion to their length. Clips, the job's clip
predictions and their species scores are loaded with binary COPY (embeddings.storage.copy_columns),
the recordings with COPY; then VACUUM ANALYZE, as after autovacuum.

Timed (median of --repeats runs, the CSV once; seconds):
- species_summary_s: the first page of the dataset's summary (species x site x day, default
  sort): the whole aggregation runs, as for every page;
- species_summary_sorted_s: the same sorted by -detections (another page order, same work);
- species_summary_one_species_s, _one_site_s, _one_month_s: the commonest species, one site, June
  (the page's filters);
- species_summary_csv_s: every row of the summary with its best clip, streamed as the CSV download is;
- detection_history_s: the commonest species' history, one-day occasions (effort + detections);
- detection_history_week_dawn_s: 7-day occasions, 04:00-09:00 only;
- effort_s: the effort matrix alone (the part that reads recordings, not detections).

stderr shows each step's time and the plan of the summary query (EXPLAIN ANALYZE). The last line of
stdout is one JSON object with the figures, the sizes, and the machine's load.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SPECIES = 50
PER_WINDOW = 4
# Species of a window: its first species and these steps on from it (mod 50): always 4 distinct.
SPECIES_STEPS = np.array([0, 11, 23, 37])
FIRST_DAY = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
# (start hour, minutes past, length s, share of site-days): dawn, dusk, and a second recorder at dawn.
RECORDERS = ((4, 0, 3 * 3600, 1.0), (18, 0, 2 * 3600, 1.0), (4, 30, 3600, 0.10))
GAP_SHARE = 0.05
WINDOW_S = 3.0
COPY_ROWS = 1_000_000
EPOCH_2000 = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=int, default=10_000_000)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work-mem", default="", help="SET work_mem for the timed queries (default: the server's)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="echoroo-bench-reports-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    (scratch / "pgdata").mkdir()
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ["ECHOROO_PGDATA"] = str(scratch / "pgdata")
    os.environ["AUDIO_ROOT"] = str(scratch)
    os.environ["DJANGO_SETTINGS_MODULE"] = "echoroo.settings"
    import django
    from django.conf import settings

    settings.DATABASES["default"]["PGDATA_CLEANUP"] = "delete"
    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections

    load_before = os.getloadavg()
    try:
        call_command("migrate", verbosity=0)
        began = time.perf_counter()
        sizes = build(args.detections, args.sites, args.days)
        build_s = time.perf_counter() - began
        log(f"built in {build_s:.0f} s: {sizes}")
        if args.work_mem:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('work_mem', %s, false)", [args.work_mem])
        figures = measure(args.repeats)
    finally:
        connections.close_all()
    print(
        json.dumps(
            {
                **figures,
                "detections": sizes["detections"],
                "sizes": sizes,
                "build_s": round(build_s, 1),
                "work_mem": args.work_mem or "server default",
                "load_before": [round(value, 2) for value in load_before],
                "load_after": [round(value, 2) for value in os.getloadavg()],
            }
        )
    )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build(detections: int, n_sites: int, n_days: int) -> dict:
    """The dataset, its recordings, a completed job and its window detections; returns the sizes."""
    from django.db import connection
    from django.utils import timezone

    from echoroo.models import SPECIES as SPECIES_KEY
    from echoroo.models import Dataset, Site, Tag
    from embeddings.storage import copy_columns
    from inference.models import InferenceJob
    from inference.services import model_run_for

    rng = np.random.default_rng(0)
    dataset = Dataset.objects.create(name="Survey 2025")
    sites = Site.objects.bulk_create(Site(dataset=dataset, name=f"site-{i:03d}") for i in range(n_sites))
    tags = Tag.objects.bulk_create(
        Tag(key=SPECIES_KEY, value=f"Genus species{i:02d}_Survey Bird {i:02d}") for i in range(SPECIES)
    )
    model_run = model_run_for("birdnet")
    now = timezone.now()
    job = InferenceJob.objects.create(
        model_run=model_run,
        dataset=dataset,
        status="completed",
        progress=100,
        config={"confidence_threshold": 0.1},
        started_at=now,
        completed_at=now,
    )

    # Recordings: (site, day, recorder) where the site-day is not a gap and the recorder ran that day.
    began = time.perf_counter()
    site_index, day_index = np.meshgrid(np.arange(n_sites), np.arange(n_days), indexing="ij")
    site_index, day_index = site_index.ravel(), day_index.ravel()
    recorded = rng.random(len(site_index)) >= GAP_SHARE
    starts, durations, site_ids = [], [], []
    for hour, minute, length_s, share in RECORDERS:
        ran = recorded & (rng.random(len(site_index)) < share)
        start = FIRST_DAY.timestamp() + day_index[ran] * 86400.0 + hour * 3600.0 + minute * 60.0
        starts.append(start)
        durations.append(np.full(ran.sum(), float(length_s)))
        site_ids.append(np.array([site.pk for site in sites])[site_index[ran]])
    starts, durations, site_ids = np.concatenate(starts), np.concatenate(durations), np.concatenate(site_ids)
    n_recordings = len(starts)
    recording_ids = np.arange(1, n_recordings + 1, dtype=np.int64)
    with connection.cursor() as cursor:
        columns = "id, uuid, dataset_id, site_id, path, sha256, duration, samplerate, channels, recorded_at, created_at"
        with cursor.copy(f"COPY echoroo_recording ({columns}) FROM STDIN") as copy:
            for i in range(n_recordings):
                moment = dt.datetime.fromtimestamp(starts[i], dt.UTC)
                copy.write_row(
                    (
                        int(recording_ids[i]),
                        f"{rng.bytes(16).hex()}",
                        dataset.pk,
                        int(site_ids[i]),
                        f"site-{site_ids[i]}/{moment:%Y%m%d_%H%M%S}.wav",
                        f"{i:064x}",
                        float(durations[i]),
                        48000,
                        1,
                        moment,
                        now,
                    )
                )
        cursor.execute(
            "INSERT INTO inference_jobrecording (job_id, recording_id, status, total_clips, processed_clips,"
            " attempts, worker, error_message, reused) SELECT %s, id, 'done', 0, 0, 1, '', '', false"
            " FROM echoroo_recording WHERE dataset_id = %s",
            [job.pk, dataset.pk],
        )
    log(f"{n_recordings:,} recordings in {time.perf_counter() - began:.1f} s")

    # Windows with detections: spread over the recordings by length, distinct within each recording.
    began = time.perf_counter()
    n_clips = -(-detections // PER_WINDOW)
    windows_of = (durations // WINDOW_S).astype(np.int64)
    wanted = int(n_clips * 1.02) + 100
    recording_of = rng.choice(n_recordings, size=wanted, p=durations / durations.sum())
    window = (rng.random(wanted) * windows_of[recording_of]).astype(np.int64)
    key = np.unique(recording_of * 10_000 + window)
    rng.shuffle(key)
    key = np.sort(key[:n_clips])
    if len(key) < n_clips:
        raise SystemExit(f"only {len(key)} distinct windows for {n_clips} clips: use fewer detections")
    clip_recording, clip_window = key // 10_000, key % 10_000
    clip_ids = np.arange(1, n_clips + 1, dtype=np.int64)
    start_s = clip_window * WINDOW_S
    created_us = np.int64((now - EPOCH_2000) / dt.timedelta(microseconds=1))
    with connection.cursor() as cursor:
        for lo in range(0, n_clips, COPY_ROWS):
            part = slice(lo, lo + COPY_ROWS)
            count = len(clip_ids[part])
            with cursor.copy(
                "COPY echoroo_clip (id, uuid, recording_id, start_time, end_time) FROM STDIN BINARY"
            ) as copy:
                copy.write(
                    copy_columns(
                        clip_ids[part],
                        uuids(rng, count),
                        recording_ids[clip_recording[part]],
                        start_s[part],
                        start_s[part] + WINDOW_S,
                    )
                )
            columns = "id, uuid, clip_id, model_run_id, job_id, created_at"
            with cursor.copy(f"COPY echoroo_clipprediction ({columns}) FROM STDIN BINARY") as copy:
                copy.write(
                    copy_columns(
                        clip_ids[part],
                        uuids(rng, count),
                        clip_ids[part],
                        np.full(count, model_run.pk, dtype=np.int64),
                        np.full(count, job.pk, dtype=np.int64),
                        np.full(count, created_us, dtype=np.int64),
                    )
                )
    log(f"{n_clips:,} clips and clip predictions in {time.perf_counter() - began:.1f} s")

    # Species scores: 4 distinct species a window, the first drawn with weights ~ 1 / rank.
    began = time.perf_counter()
    weights = 1.0 / np.arange(1, SPECIES + 1)
    tag_ids = np.array([tag.pk for tag in tags], dtype=np.int64)
    written = 0
    with connection.cursor() as cursor:
        for lo in range(0, n_clips, COPY_ROWS // PER_WINDOW):
            ids = clip_ids[lo : lo + COPY_ROWS // PER_WINDOW]
            first = rng.choice(SPECIES, size=len(ids), p=weights / weights.sum())
            species = (first[:, None] + SPECIES_STEPS[None, :]) % SPECIES
            rows = min(len(ids) * PER_WINDOW, detections - written)
            with cursor.copy(
                "COPY echoroo_clippredictiontag (clip_prediction_id, tag_id, score) FROM STDIN BINARY"
            ) as copy:
                copy.write(
                    copy_columns(
                        np.repeat(ids, PER_WINDOW)[:rows],
                        tag_ids[species.ravel()][:rows],
                        rng.uniform(0.1, 1.0, rows),
                    )
                )
            written += rows
        for table in ("echoroo_recording", "echoroo_clip", "echoroo_clipprediction"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    log(f"{written:,} species scores in {time.perf_counter() - began:.1f} s")
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    log(f"VACUUM ANALYZE in {time.perf_counter() - began:.1f} s")
    return {
        "detections": written,
        "clips": n_clips,
        "recordings": n_recordings,
        "sites": n_sites,
        "days": n_days,
        "species": SPECIES,
        "audio_hours": round(float(durations.sum()) / 3600),
    }


def uuids(rng: np.random.Generator, count: int) -> np.ndarray:
    """Random version-4 UUIDs as 16-byte values (binary COPY's uuid)."""
    raw = rng.integers(0, 256, size=(count, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw.view("V16").ravel()


def measure(repeats: int) -> dict:
    from django.db import connection

    from echoroo.models import Dataset, Site
    from reports import history, summaries
    from reports.selection import select

    dataset = Dataset.objects.get(name="Survey 2025")
    selection = select(dataset=dataset)
    commonest = "Genus species00"
    site = Site.objects.filter(dataset=dataset).order_by("name").first().name

    def timed(name: str, run, times_run: int = repeats) -> float:
        times = []
        for _ in range(times_run):
            began = time.perf_counter()
            result = run()
            times.append(time.perf_counter() - began)
        median = statistics.median(times)
        log(f"{name}: median {median:.2f} s of {[round(t, 2) for t in times]} ({describe(result)})")
        return round(median, 3)

    default = summaries.SummaryFilters()
    figures = {
        "species_summary_s": timed(
            "species summary, first page", lambda: summaries.summary_page(selection, default, number=1, size=50)
        ),
        "species_summary_sorted_s": timed(
            "species summary by -detections",
            lambda: summaries.summary_page(selection, summaries.SummaryFilters(sort="-detections"), number=1, size=50),
        ),
        "species_summary_one_species_s": timed(
            "species summary, the commonest species",
            lambda: summaries.summary_page(selection, summaries.SummaryFilters(species=commonest), number=1, size=50),
        ),
        "species_summary_one_site_s": timed(
            "species summary, one site",
            lambda: summaries.summary_page(selection, summaries.SummaryFilters(site=site), number=1, size=50),
        ),
        "species_summary_one_month_s": timed(
            "species summary, one month",
            lambda: summaries.summary_page(
                selection,
                summaries.SummaryFilters(start=dt.date(2025, 6, 1), end=dt.date(2025, 6, 30)),
                number=1,
                size=50,
            ),
        ),
        "species_summary_csv_s": timed(
            "species summary, every row (CSV)",
            lambda: sum(1 for _ in summaries.summary_rows(selection, default)),
            times_run=1,
        ),
    }
    species = history.species_of(commonest, selection)
    days = history.occasions_from(days=1)
    figures["detection_history_s"] = timed(
        "detection history, 1-day occasions", lambda: history.detection_history(selection, species, days)
    )
    week_dawn = history.occasions_from(days=7, hours="4-9")
    figures["detection_history_week_dawn_s"] = timed(
        "detection history, 7-day occasions 4-9", lambda: history.detection_history(selection, species, week_dawn)
    )
    placed = selection.recordings.filter(site__isnull=False, recorded_at__isnull=False)
    figures["effort_s"] = timed("effort alone", lambda: history._effort(selection, placed, days))
    sql, params = summaries.page_sql(selection, default, number=1, size=50)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        log("plan of the summary's first page:\n" + "\n".join(row[0] for row in cursor.fetchall()))
    return figures


def describe(result) -> str:
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], int):
        return f"{len(result[0])} rows shown of {result[1]:,}"
    if isinstance(result, int):
        return f"{result:,} rows"
    if hasattr(result, "sites"):
        return f"{len(result.sites)} sites x {len(result.occasions)} occasions"
    if isinstance(result, tuple):
        return f"{len(result[0]):,} cells with audio"
    return type(result).__name__


if __name__ == "__main__":
    main()
