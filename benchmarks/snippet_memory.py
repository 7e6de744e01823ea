"""How much memory a web process gains from snippet searches, embedded in it or by the search worker.

Run by hand from the project root (it is not a test):

    .venv/bin/python benchmarks/snippet_memory.py [--snippets 5]

On a throw-away embedded PostgreSQL server (DATABASE_URL is ignored), it starts two fresh "web"
processes, each with Django set up and the URLconf loaded as a gunicorn worker has them, and has
each embed --snippets cuts of the shared recordings through search.uploads.embed_upload (what a
snippet search does): one with EMBED_SNIPPETS_IN=web (the model loaded in the process), one with
EMBED_SNIPPETS_IN=worker (the bytes sent to a real search worker cluster). Each reports its resident
memory (RSS) before and after; the search worker cluster's processes (django-q2's sentinel, pusher,
monitor and the one worker holding the model) are measured after, together, by PSS.

The last line of stdout is one JSON object: web_before_mb, web_after_mb, worker_mode_before_mb,
worker_mode_after_mb, search_worker_pss_mb, and the seconds of the last snippet in each mode.

Measured on this 2-core machine (5 snippets of rugr_drum.wav, BirdNET): a web process went from 99 MB
to 578 MB embedding itself, and to 112 MB with the search worker, whose whole cluster held 527 MB
(PSS). With gunicorn's 2 x cores + 1 processes (5 here) that is up to 2.9 GB of web processes
against 0.56 + 0.53 = 1.1 GB. A snippet took 0.6-0.7 s in the web process, 0.8 s through the worker.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb(pid: int | None = None) -> float:
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def tree_pss_mb(pid: int) -> float:
    """A process and its children together, pages they share counted once (PSS): RSS would count them per process."""
    import psutil

    process = psutil.Process(pid)
    return round(sum(each.memory_full_info().pss for each in [process, *process.children(recursive=True)]) / 2**20, 1)


def web_process(snippets: int) -> dict:
    """In a child: what one web process gains from `snippets` snippet searches' embedding."""
    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import get_resolver

    from search import uploads
    from tests.conftest import SHARED_DATA

    get_resolver().url_patterns  # noqa: B018 (a web process has every view imported)
    before = rss_mb()
    data = (SHARED_DATA / "rugr_drum.wav").read_bytes()
    for _ in range(snippets):
        started = time.monotonic()
        uploads.embed_upload(SimpleUploadedFile("snippet.wav", data), "birdnet")
        last_s = time.monotonic() - started
    return {"before_mb": before, "after_mb": rss_mb(), "last_snippet_s": round(last_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snippets", type=int, default=5)
    parser.add_argument("--child", choices=["web", "worker"], help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(web_process(options.snippets)))
        return

    from benchmarks.throwaway import start_throwaway_django

    start_throwaway_django(prefix="echoroo-snippet-memory-")
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from tests.clusters import start_cluster, stop_cluster

    call_command("migrate", verbosity=0)
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@/{db['NAME']}?host={db['HOST']}",
        "PYTHONPATH": str(ROOT),
    }

    def child(mode: str) -> dict:
        command = [sys.executable, __file__, "--child", mode, "--snippets", str(options.snippets)]
        done = subprocess.run(
            command, env={**env, "EMBED_SNIPPETS_IN": mode}, capture_output=True, text=True, check=False, cwd=ROOT
        )
        if done.returncode != 0:
            raise SystemExit(f"the {mode} process failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    in_web = child("web")
    worker = start_cluster(settings.SEARCH_CLUSTER)
    try:
        in_worker = child("worker")
        worker_mb = tree_pss_mb(worker.pid)
    finally:
        stop_cluster(worker)
    print(
        json.dumps(
            {
                "snippets": options.snippets,
                "web_before_mb": in_web["before_mb"],
                "web_after_mb": in_web["after_mb"],
                "web_last_snippet_s": in_web["last_snippet_s"],
                "worker_mode_before_mb": in_worker["before_mb"],
                "worker_mode_after_mb": in_worker["after_mb"],
                "worker_mode_last_snippet_s": in_worker["last_snippet_s"],
                "search_worker_pss_mb": worker_mb,
            }
        )
    )


if __name__ == "__main__":
    main()
