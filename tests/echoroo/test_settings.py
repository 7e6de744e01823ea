"""Settings from the environment, the embedded database server, the health check, deployment files."""

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def run_django(code: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run Python with the real settings in a fresh process, with only the given overrides."""
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY", "DEBUG", "ECHOROO_PGDATA"}}
    base["DJANGO_SETTINGS_MODULE"] = "echoroo.settings"
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "ECHOROO_PGDATA"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env={**base, "DJANGO_SETTINGS_MODULE": "echoroo.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_missing_secret_key_with_debug_off_is_a_clear_startup_error():
    result = run_django("", {"DEBUG": "0"})
    assert result.returncode != 0
    assert "SECRET_KEY is not set and DEBUG is off" in result.stderr


def test_production_settings_are_secure():
    result = run_django(
        "from django.conf import settings as s\n"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0, s.DEBUG)",
        {"DEBUG": "0", "SECRET_KEY": "x" * 60, "ALLOWED_HOSTS": "echoroo.example.org"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True", "False"]


def test_a_bad_boolean_names_the_variable():
    result = run_django("", {"DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_sqlite_is_refused():
    sqlite_url = "sqlite:" + "///tmp/x.db"  # a SQLite URL, which the settings must refuse
    result = run_django("", {"DATABASE_URL": sqlite_url})
    assert result.returncode != 0
    assert "DATABASE_URL must point to PostgreSQL" in result.stderr


@pytest.fixture
def pgdata_parent():
    # Not tmp_path: the server runs as the "pgserver" user when tests run as root, and
    # pytest's temporary folders are private to their owner.
    parent = Path(tempfile.mkdtemp(prefix="echoroo-test-restart-"))
    parent.chmod(0o755)
    yield parent
    shutil.rmtree(parent, ignore_errors=True)


def test_the_embedded_server_keeps_data_across_restarts_and_stops_after(pgdata_parent):
    tmp_path = pgdata_parent
    env = {"ECHOROO_PGDATA": str(tmp_path / "pgdata")}
    migrated = manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    created = manage("shell", "-c", "from echoroo.models import Dataset; Dataset.objects.create(name='kept')", env=env)
    assert created.returncode == 0, created.stderr
    read = manage(
        "shell",
        "-c",
        "from echoroo.models import Dataset; print(list(Dataset.objects.values_list('name', flat=True)))",
        env=env,
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip().splitlines()[-1] == "['kept']"
    assert (tmp_path / "pgdata" / "PG_VERSION").exists()
    # The last process using the server stopped it.
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()


@pytest.mark.django_db
def test_database_url_uses_that_server_and_starts_nothing(tmp_path):
    socket_dir = connection.settings_dict["HOST"]
    url = f"postgres://postgres@/{connection.settings_dict['NAME']}?host={socket_dir}"
    result = run_django(
        "from django.db import connection\n"
        "connection.ensure_connection()\n"
        "print(connection.vendor, connection.settings_dict['ENGINE'])",
        {"DATABASE_URL": url, "ECHOROO_PGDATA": str(tmp_path / "unused"), "ECHOROO_VAR_DIR": str(tmp_path / "var")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["postgresql", "django.db.backends.postgresql"]
    assert not (tmp_path / "unused").exists()


@pytest.mark.django_db
def test_health_check_answers_200_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_health_check_answers_503_when_the_database_is_unreachable():
    result = run_django(
        "from django.test import Client\n"
        "response = Client(HTTP_HOST='localhost').get('/healthz')\n"
        "print(response.status_code, response.json()['status'])",
        {"DATABASE_URL": "postgres://nobody@127.0.0.1:9/nothing?connect_timeout=2"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["503", "unavailable"]


def test_docker_compose_runs_the_database_web_and_worker():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["db"]["image"].startswith("pgvector/pgvector:")
    assert "gunicorn echoroo.wsgi" in services["web"]["command"]
    assert services["worker"]["command"] == "python manage.py qcluster"
    assert services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    for name in ("web", "worker"):
        assert any(volume.endswith(":/audio:ro") for volume in services[name]["volumes"])
        assert services[name]["environment"]["AUDIO_ROOT"] == "/audio"
    # The commands it runs exist.
    commands = get_commands()
    assert {"migrate", "qcluster", "ensure_admin"} <= set(commands)
    import echoroo.wsgi  # noqa: F401  (gunicorn's entry point imports)


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        (None, "affinity"),
        ("max 100000", "affinity"),
        ("150000 100000", 2),  # docker --cpus 1.5: two processes, not one per host CPU
        ("50000 100000", 1),
        ("garbage", "affinity"),
    ],
)
def test_usable_cpus_follow_the_affinity_and_the_cgroup_quota(tmp_path, monkeypatch, cpu_max, expected):
    from echoroo.cpus import usable_cpus

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max + "\n")
    assert usable_cpus(path) == (8 if expected == "affinity" else expected)


@pytest.mark.parametrize(
    ("env", "workers", "threads", "worker_class"),
    [
        ({}, 2 * len(os.sched_getaffinity(0)) + 1, 1, "SyncWorker"),
        ({"WEB_WORKERS": "3"}, 3, 1, "SyncWorker"),
        ({"WEB_WORKERS": "2", "WEB_THREADS": "4"}, 2, 4, "ThreadWorker"),
    ],
)
def test_gunicorn_reads_its_workers_from_the_config_file(env, workers, threads, worker_class):
    """The file serve, the Docker image and compose pass to gunicorn, read by gunicorn itself."""
    code = (
        "import sys\n"
        "from gunicorn.app.wsgiapp import WSGIApplication\n"
        "sys.argv = ['gunicorn', '--config', 'gunicorn.conf.py', 'echoroo.wsgi']\n"
        "cfg = WSGIApplication().cfg\n"
        "print(cfg.workers, cfg.threads, cfg.worker_class.__name__, cfg.timeout)"
    )
    base = {k: v for k, v in os.environ.items() if k not in {"WEB_WORKERS", "WEB_THREADS"}}
    result = subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(workers), str(threads), worker_class, "300"]
    assert (
        "--config gunicorn.conf.py"
        in yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]["command"]
    )
    assert '"--config", "gunicorn.conf.py"' in (ROOT / "Dockerfile").read_text()


def test_a_web_process_loads_no_training_or_tensorflow_code():
    """Each gunicorn process imports the app and its URLs; scikit-learn (fitting classifiers) and
    TensorFlow (Perch) load only in the code that needs them, so the processes stay small."""
    result = run_django(
        "import sys, echoroo.wsgi\n"
        "from django.urls import get_resolver\n"
        "get_resolver().url_patterns\n"
        "print(sorted(m for m in ('sklearn', 'scipy', 'tensorflow') if m in sys.modules))",
        {"DEBUG": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "[]"


def test_an_unknown_resampler_stops_django_at_start_naming_the_variable():
    result = run_django("print('started')", {"ECHOROO_RESAMPLER": "fastest"})
    assert result.returncode != 0
    assert "ImproperlyConfigured: ECHOROO_RESAMPLER='fastest' is not a resampler" in result.stderr


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "scripts/run" in readme and "scripts/test" in readme
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_the_documented_production_settings_pass_djangos_deploy_check():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "echoroo.example.org"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
