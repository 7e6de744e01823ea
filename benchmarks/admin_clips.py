"""Benchmark: the admin's Clip changelist over many clips, against the same changelist with Django's full count.

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/admin_clips.py --clips 1000000

It starts a throw-away embedded PostgreSQL server in a temporary directory (deleted at the
end), migrates it, loads the clips with COPY, and times each page through Django's test
client as a superuser: the median of --repeats requests after one warm-up, and the number of
SQL queries of one request. The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
import types
import uuid
from pathlib import Path
from urllib.parse import urlencode

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))


from throwaway import start_throwaway_django  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1_000_000, help="clips to load (default 1,000,000)")
    parser.add_argument("--recordings", type=int, default=2_000, help="recordings they are spread over")
    parser.add_argument("--repeats", type=int, default=5, help="timed requests per page (the median is reported)")
    return parser.parse_args()


def load(n_clips: int, n_recordings: int):
    """One dataset, `n_recordings` recordings, `n_clips` 3-second clips spread evenly over them."""
    from django.db import connection

    from echoroo.models import Dataset, Recording

    clips_per_recording = -(-n_clips // n_recordings)
    dataset = Dataset.objects.create(name="Benchmark")
    recordings = Recording.objects.bulk_create(
        Recording(
            dataset=dataset,
            path=f"site{r % 20:02d}/rec{r:05d}.wav",
            sha256=secrets.token_hex(32),
            duration=3.0 * clips_per_recording,
            samplerate=48_000,
            channels=1,
        )
        for r in range(n_recordings)
    )
    with connection.cursor() as cursor:
        copy_sql = "COPY echoroo_clip (uuid, recording_id, start_time, end_time) FROM STDIN"
        with cursor.cursor.copy(copy_sql) as copy:
            for i in range(n_clips):
                start_s = 3.0 * (i % clips_per_recording)
                copy.write_row((uuid.uuid4(), recordings[i // clips_per_recording].pk, start_s, start_s + 3.0))
        # As after autovacuum: statistics for the planner, a visibility map for index-only counts.
        cursor.execute("VACUUM ANALYZE echoroo_clip")
        cursor.execute("VACUUM ANALYZE echoroo_recording")
    return recordings


def install_default_count_admin() -> str:
    """Serve the same Clip admin, but with Django's paginator and full counts, under /default-admin/."""
    from django.conf import settings
    from django.contrib import admin
    from django.core.paginator import Paginator
    from django.urls import path

    from echoroo.admin import ClipAdmin
    from echoroo.models import Clip

    class DefaultCountClipAdmin(ClipAdmin):
        paginator = Paginator
        show_full_result_count = True

    default_site = admin.AdminSite(name="default_admin")
    default_site.register(Clip, DefaultCountClipAdmin)
    urls = types.ModuleType("admin_clips_benchmark_urls")
    urls.urlpatterns = [path("admin/", admin.site.urls), path("default-admin/", default_site.urls)]
    sys.modules[urls.__name__] = urls
    settings.ROOT_URLCONF = urls.__name__
    return "/default-admin/echoroo/clip/"


def measure(client, url: str, params: dict, repeats: int) -> tuple[float, int, float, int]:
    """(median milliseconds, SQL queries and their milliseconds in one request, rows on the page)."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    # Each request clears the query log when it starts; an empty log keeps the capture's indices right.
    reset_queries()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params)
    assert response.status_code == 200, f"{url} {params}: HTTP {response.status_code}"
    rows = len(response.context_data["cl"].result_list)
    sql_ms = 1000 * sum(float(query["time"]) for query in queries.captured_queries)
    times_ms = []
    for _ in range(repeats):
        started = time.perf_counter()
        client.get(url, params)
        times_ms.append(1000 * (time.perf_counter() - started))
    return statistics.median(times_ms), len(queries.captured_queries), sql_ms, rows


def main() -> None:
    args = parse_args()
    start_throwaway_django()

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    recordings = load(args.clips, args.recordings)
    print(f"loaded {args.clips:,} clips over {args.recordings:,} recordings in {time.perf_counter() - started:.1f} s")

    default_url = install_default_count_admin()
    client = Client(SERVER_NAME="localhost")  # ALLOWED_HOSTS has no "testserver" outside tests
    client.force_login(get_user_model().objects.create_superuser("benchmark", password=secrets.token_urlsafe()))

    clips_url = "/admin/echoroo/clip/"
    middle = recordings[len(recordings) // 2]
    pages = {
        "changelist_ms": (clips_url, {}),
        "changelist_page100_ms": (clips_url, {"p": 100}),
        "filtered_ms": (clips_url, {"recording__id__exact": middle.pk}),
        "search_ms": (clips_url, {"q": middle.path}),
        "default_admin_full_count_ms": (default_url, {}),
    }
    figures: dict = {"clips": args.clips}
    queries, sql_ms = {}, {}
    for name, (url, params) in pages.items():
        median_ms, n_queries, page_sql_ms, rows = measure(client, url, params, args.repeats)
        figures[name] = round(median_ms, 1)
        queries[name.removesuffix("_ms")] = n_queries
        sql_ms[name.removesuffix("_ms")] = round(page_sql_ms, 1)
        print(
            f"{name:28} {median_ms:7.1f} ms  {n_queries} queries taking {page_sql_ms:5.1f} ms  "
            f"{rows:3} rows  {url}?{urlencode(params)}"
        )
    # Beside the required figures: SQL per request, to tell the database's share from rendering.
    figures["queries"] = queries
    figures["sql_ms"] = sql_ms
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
