"""Benchmarks load and delete rows: they run on a throw-away embedded server, never on DATABASE_URL's."""

import importlib.util
import json
import os
import subprocess
import sys

from tests.conftest import PROJECT_ROOT

# Nothing listens on port 9: a benchmark that used this server would fail to connect.
CONFIGURED = "postgres://nobody:secret@127.0.0.1:9/configured"


def test_the_import_benchmark_runs_on_its_own_server_when_database_url_is_set():
    result = subprocess.run(
        [sys.executable, "benchmarks/import_rate.py", "--files", "3", "--seconds", "1"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": CONFIGURED},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1])["files"] == 3


def test_the_load_benchmark_and_the_application_it_starts_never_see_database_url(tmp_path):
    spec = importlib.util.spec_from_file_location("load_benchmark", PROJECT_ROOT / "benchmarks" / "load.py")
    load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load)

    env = load.throwaway_environment(tmp_path, {"DATABASE_URL": CONFIGURED, "PATH": "/usr/bin"})

    assert "DATABASE_URL" not in env
    assert env["PATH"] == "/usr/bin"
    assert env["ECHOROO_PGDATA"] == str(tmp_path / "pgdata")
    assert env["AUDIO_ROOT"] == str(tmp_path / "audio")
