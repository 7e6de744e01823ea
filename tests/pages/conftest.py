"""Fixtures of the page tests: a finished BirdNET job, and a real worker for the browser test."""

from __future__ import annotations

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.fixture
def birdnet_job(field_recording, admin_user):
    """A BirdNET job run to the end in this process on 1min.wav, with a low threshold: many detections."""
    from inference import services

    job = services.create_job(
        model_name="birdnet", recording=field_recording, config={"confidence_threshold": 0.1}, by=admin_user
    )
    return services.start_job(job, sync=True)


@pytest.fixture
def worker(settings):
    """A real `manage.py qcluster` with one worker on the test database, stopped at the end of the test."""
    import os
    import signal
    import subprocess
    import sys

    from django.db import connection

    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "echoroo.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@/{db['NAME']}?host={db['HOST']}",
        "AUDIO_ROOT": str(settings.AUDIO_ROOT),
        "ECHOROO_CACHE_DIR": str(settings.MODEL_CACHE_DIR),
        "Q_WORKERS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
