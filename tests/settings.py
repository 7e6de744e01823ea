"""Test settings: the real settings, with the embedded server in a throw-away data directory."""

import tempfile

from echoroo.settings import *  # noqa: F403
from echoroo.settings import DATABASES

if DATABASES["default"]["ENGINE"] == "echoroo.embedded_postgres":
    # A fresh server per test session, deleted when the session ends.
    DATABASES["default"]["PGDATA"] = tempfile.mkdtemp(prefix="echoroo-test-pg-")
    DATABASES["default"]["PGDATA_CLEANUP"] = "delete"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Perch jobs can be created in tests, but this folder is not there: the tests that run a Perch job
# (tests/inference/test_perch_jobs.py) point PERCH_MODEL at a test model with Perch 2.0's signature,
# built once per session by tests/inference/conftest.py.
PERCH_MODEL = "/nonexistent/perch-2.0-for-tests"

# One task per recording, so tests can count them (the grouping has its own test).
INFERENCE_TASK_AUDIO_S = 0
