"""Load: 20 clients search and list predictions over HTTP while a BirdNET job runs.

Run by hand from the project root: `.venv/bin/python benchmarks/load.py [--seconds 60] [--clients 20]`.
It starts the application as the README's first command does (`manage.py serve`: gunicorn and
the worker cluster, on a throw-away embedded database, never DATABASE_URL's), loads a first dataset
through a BirdNET job so there is something to search, starts a second job, and drives the clients
on loopback for `--seconds` while that job runs. Then it checks that the job completed with the same rows as a
clean run without load. The baseline, in the same run: the same clients for `--baseline-seconds`
before the job starts (`without_job`, and `p95_vs_without_job`). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT / "tests" / "data"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def throwaway_environment(work: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` for this process and the application it starts: a throw-away embedded server and audio folder
    under `work`, and never DATABASE_URL's server (the benchmark deletes clips)."""
    env = {name: value for name, value in environ.items() if name != "DATABASE_URL"}
    env.update(
        AUDIO_ROOT=str(work / "audio"),
        ECHOROO_PGDATA=str(work / "pgdata"),
        ECHOROO_CACHE_DIR=str(ROOT / "var" / "cache"),
        DJANGO_SETTINGS_MODULE="echoroo.settings",
    )
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_recordings(folder: Path, count: int, seed: int) -> None:
    """`count` distinct one-minute recordings from 1min.wav (each with its own gain and faint noise)."""
    minute, rate = sf.read(SHARED / "1min.wav", dtype="float32")
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        changed = minute * (0.8 + 0.4 * rng.random()) + rng.normal(scale=1e-4, size=len(minute)).astype(np.float32)
        sf.write(folder / f"{folder.name}_{i:03d}.wav", changed, rate)


class Client:
    """One keep-alive HTTP connection with a token."""

    def __init__(self, port: int, token: str):
        self.port, self.token = port, token
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Token {self.token}", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=payload, headers=headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException):
                # A kept-alive connection the server has closed: reconnect and send once more,
                # as any HTTP client does; a second failure is an error.
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class Run:
    """What the clients saw: each request's start, kind, seconds and status or error."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.timeline: list[tuple[float, str, float, str]] = []
        self.errors: list[str] = []

    def figures(self) -> dict:
        times_ms = np.array([elapsed for _, _, elapsed, _ in self.timeline]) * 1000
        kinds = {kind for _, kind, _, _ in self.timeline}
        return {
            "requests": len(times_ms),
            "rps": round(len(times_ms) / self.seconds, 1),
            "p50_ms": round(float(np.percentile(times_ms, 50)), 1),
            "p95_ms": round(float(np.percentile(times_ms, 95)), 1),
            "p99_ms": round(float(np.percentile(times_ms, 99)), 1),
            "errors": len(self.errors),
            "p95_ms_by_request": {
                kind: round(
                    float(np.percentile([e for _, k, e, _ in self.timeline if k == kind], 95) * 1000),
                    1,
                )
                for kind in sorted(kinds)
            },
        }

    def write(self, path: Path) -> None:
        with path.open("w") as out:
            out.write("start_s,request,ms,status\n")
            for start, kind, elapsed, status in sorted(self.timeline):
                out.write(f"{start:.3f},{kind},{elapsed * 1000:.1f},{status}\n")


def drive(port: int, token: str, clients: int, seconds: float, clip_uuids: list[str], species: list[str]) -> Run:
    """`clients` threads, each one keep-alive connection, half searches by a clip and half prediction
    lists (half of those filtered by a species and a minimum score), for `seconds`."""
    run = Run(seconds)
    lock = threading.Lock()
    began_all = time.perf_counter()
    stop_at = time.monotonic() + seconds

    def client_loop(seed: int) -> None:
        rng = random.Random(seed)
        client = Client(port, token)
        while time.monotonic() < stop_at:
            if rng.random() < 0.5:
                kind = "search"
                call = (
                    "POST",
                    "/api/v1/embeddings/search/",
                    {"clip_uuid": rng.choice(clip_uuids), "model_name": "birdnet", "limit": 20, "min_similarity": 0.0},
                )
            else:
                kind = "list_predictions"
                wanted = {"species": rng.choice(species), "min_score": 0.3} if rng.random() < 0.5 else {}
                query = f"?{urlencode(wanted)}" if wanted else ""
                call = ("GET", f"/api/v1/clip-predictions/{query}", None)
            began = time.perf_counter()
            try:
                status, _ = client.request(*call)
                failed = None if status < 400 else f"{status} {call[0]} {call[1]}"
            except Exception as error:  # any failure is an error in the figures
                status, failed = 0, f"{type(error).__name__} {call[0]} {call[1]}"
            elapsed = time.perf_counter() - began
            with lock:
                run.timeline.append((began - began_all, kind, elapsed, failed or str(status)))
                if failed:
                    run.errors.append(failed)

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - began_all
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--files", type=int, default=20, help="one-minute recordings in the job run under load")
    parser.add_argument(
        "--baseline-seconds", type=float, default=20, help="the same clients first, with no job running (0: skip)"
    )
    parser.add_argument("--latencies", type=Path, help="write each request (start s, kind, ms, status) to this CSV")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="echoroo-bench-load-"))
    work.chmod(0o755)
    # Registered first, so it runs last: after the embedded server has been stopped.
    atexit.register(shutil.rmtree, work, True)
    audio_root = work / "audio"
    env = throwaway_environment(work, os.environ)
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    make_recordings(audio_root / "searched", 10, seed=1)
    make_recordings(audio_root / "loaded", args.files, seed=2)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from echoroo.importing import import_recordings
    from echoroo.models import Clip, ClipPredictionTag, Dataset
    from inference import services
    from inference.models import InferenceJob

    call_command("migrate", verbosity=0)
    import_recordings([audio_root / "searched"], dataset="searched")
    import_recordings([audio_root / "loaded"], dataset="loaded")
    user = get_user_model().objects.create_user("load", password="load-test-password", is_staff=True)
    token = Token.objects.create(user=user).key
    log("a first job, so there is something to search ...")
    services.start_job(
        services.create_job(model_name="birdnet", dataset=Dataset.objects.get(name="searched"), config={}, by=user),
        sync=True,
    )
    clip_uuids = [
        str(u) for u in Clip.objects.filter(recording__dataset__name="searched").values_list("uuid", flat=True)
    ]
    species = list(ClipPredictionTag.objects.values_list("tag__value", flat=True).distinct()[:20]) or ["none"]

    port = free_port()
    log(f"starting the application on 127.0.0.1:{port} ...")
    app = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        probe = Client(port, token)
        deadline = time.monotonic() + 120
        while True:
            try:
                if probe.request("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the application did not start")
            time.sleep(0.5)
        time.sleep(5)  # let the worker cluster come up too
        if args.baseline_seconds > 0:
            log(f"baseline: {args.clients} clients for {args.baseline_seconds:g} s, no job running ...")
            baseline = drive(port, token, args.clients, args.baseline_seconds, clip_uuids, species)
        loaded = Dataset.objects.get(name="loaded")
        status, body = probe.request(
            "POST",
            "/api/v1/inference/jobs/",
            {"model_name": "birdnet", "dataset_uuid": str(loaded.uuid), "config": {}, "start": True},
        )
        assert status == 201, body
        job = InferenceJob.objects.get(uuid=json.loads(body)["uuid"])
        log(f"job {job.uuid} started; {args.clients} clients for {args.seconds:g} s ...")
        loaded_run = drive(port, token, args.clients, args.seconds, clip_uuids, species)
        log(f"{len(loaded_run.timeline)} requests, {len(loaded_run.errors)} errors; waiting for the job ...")
        deadline = time.monotonic() + 1800
        while True:
            job.refresh_from_db()
            if job.is_finished or time.monotonic() > deadline:
                break
            time.sleep(2)
    finally:
        os.killpg(app.pid, signal.SIGTERM)
        try:
            app.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(app.pid, signal.SIGKILL)

    def rows() -> list:
        return sorted(
            ClipPredictionTag.objects.filter(clip_prediction__clip__recording__dataset=loaded).values_list(
                "clip_prediction__clip__recording__path", "clip_prediction__clip__start_time", "tag__value", "score"
            )
        )

    under_load = rows()
    clips_under_load = Clip.objects.filter(recording__dataset=loaded).count()
    log("the same job again without load, to compare rows ...")
    Clip.objects.filter(recording__dataset=loaded).delete()
    clean = services.start_job(services.create_job(model_name="birdnet", dataset=loaded, config={}), sync=True)
    same_rows = under_load == rows() and clips_under_load == Clip.objects.filter(recording__dataset=loaded).count()

    figures = {
        **loaded_run.figures(),
        "job_completed": job.status == InferenceJob.Status.COMPLETED,
        "same_rows_as_clean_run": bool(same_rows and clean.status == InferenceJob.Status.COMPLETED),
        "job_seconds": round((job.completed_at - job.started_at).total_seconds(), 1) if job.completed_at else None,
    }
    if args.baseline_seconds > 0:
        without = baseline.figures()
        figures["without_job"] = {name: without[name] for name in ("requests", "rps", "p50_ms", "p95_ms", "errors")}
        figures["p95_vs_without_job"] = round(figures["p95_ms"] / without["p95_ms"], 2)
    if args.latencies:
        loaded_run.write(args.latencies)
    if loaded_run.errors:
        log("first errors: " + "; ".join(loaded_run.errors[:5]))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
