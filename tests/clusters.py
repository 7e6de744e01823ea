"""Real django-q2 clusters (`manage.py qcluster`) in other processes, on the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_cluster(name: str | None = None, *, workers: int = 1) -> subprocess.Popen:
    """A cluster in its own session: the jobs' (name None) or another, such as the search worker's."""
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "echoroo.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@/{db['NAME']}?host={db['HOST']}",
        "AUDIO_ROOT": str(settings.AUDIO_ROOT),
        "ECHOROO_CACHE_DIR": str(settings.MODEL_CACHE_DIR),
        "Q_WORKERS": str(workers),
    }
    if name is not None:
        env["Q_CLUSTER_NAME"] = name
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_cluster(process: subprocess.Popen) -> None:
    """SIGTERM to the cluster's main process (sent to its group, django-q2's sentinel dies outright), then kill."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_for(condition, timeout_s: float, what: str, every_s: float = 0.5):
    """condition()'s first true value, polled until timeout_s, else an AssertionError naming what."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
