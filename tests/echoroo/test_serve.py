"""`scripts/run`, `manage.py serve` and `ensure_admin`: one command serves everything, keeps its workers alive and
stops everything it started, the database included."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.core.management import call_command

from echoroo.management.commands.serve import RESTARTS_PER_MINUTE, Child
from echoroo.serving import LOOPBACK_HOSTS, Bind, accepted_hosts, machine_addresses, machine_names

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("bind", "host", "port"),
    [
        ("127.0.0.1:8000", "127.0.0.1", 8000),
        ("0.0.0.0:9000", "0.0.0.0", 9000),
        ("0.0.0.0", "0.0.0.0", 8000),
        (":8001", "", 8001),
        ("[::]:8002", "::", 8002),
        ("[::1]:8003", "::1", 8003),
        ("192.0.2.10:8004", "192.0.2.10", 8004),
        ("unix:/run/echoroo.sock", None, None),
    ],
)
def test_bind_addresses_are_read_as_gunicorn_reads_them(bind, host, port):
    assert Bind.parse(bind) == Bind(host, port)


def test_a_bad_port_is_refused_naming_the_option():
    with pytest.raises(ValueError, match=r"--bind '0.0.0.0:http': the port must be a number"):
        Bind.parse("0.0.0.0:http")


def test_every_interface_answers_to_this_machines_names_and_addresses():
    hosts = accepted_hosts(Bind.parse("0.0.0.0:8000"), ["127.0.0.1", "localhost", "[::1]"])
    assert hosts[:3] == ["127.0.0.1", "localhost", "[::1]"]
    assert set(machine_names()) <= set(hosts)
    assert {address if ":" not in address else f"[{address}]" for address in machine_addresses()} <= set(hosts)
    assert machine_addresses(), "this machine has no address other than loopback"


def test_loopback_adds_nothing_to_the_defaults_and_the_names_with_debug_off():
    assert accepted_hosts(Bind.parse("127.0.0.1:8000"), list(LOOPBACK_HOSTS)) is None
    assert accepted_hosts(Bind.parse("127.0.0.1:8000"), []) == LOOPBACK_HOSTS  # DEBUG off, nothing configured
    assert accepted_hosts(Bind.parse("0.0.0.0:8000"), ["*"]) is None
    assert accepted_hosts(Bind.parse("unix:/run/echoroo.sock"), []) is None
    assert accepted_hosts(Bind.parse("192.0.2.10:80"), ["echoroo.lab.example"])[:2] == [
        "echoroo.lab.example",
        "192.0.2.10",
    ]


def test_a_cluster_that_keeps_dying_is_started_again_ever_later_and_at_most_five_times_a_minute():
    child = Child("worker cluster", ["true"], {})
    now = 0.0
    child.started_at, child.starts = now, [now]
    delays = []
    for _ in range(6):  # it dies as soon as it starts
        delays.append(child.schedule_restart(now))
        now += delays[-1]
        child.started_at = now
        child.starts.append(now)
    starts = [0.0, *itertools.accumulate(delays)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 45.0, 32.0]
    assert max(len([t for t in starts if start <= t < start + 60]) for start in starts) == RESTARTS_PER_MINUTE
    # One that ran for a minute and then died starts again after a second.
    assert child.schedule_restart(now + 60) == 1.0


@pytest.mark.django_db
def test_ensure_admin_creates_the_admin_once_and_prints_its_password_once(capsys):
    call_command("ensure_admin")
    first = capsys.readouterr().out
    password = re.search(r"password: (\S+)", first).group(1)
    assert authenticate(username="admin", password=password).is_superuser
    call_command("ensure_admin")
    second = capsys.readouterr().out
    assert "An admin user exists already" in second and password not in second and "password:" not in second


def test_scripts_run_installs_then_execs_serve_with_its_arguments(tmp_path):
    """scripts/run as shipped, in a copy of the checkout whose setup and manage.py only record how they were called."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "run", tmp_path / "scripts" / "run")
    calls = tmp_path / "calls"
    (tmp_path / "scripts" / "setup").write_text(f'#!/bin/sh\necho "setup $*" >> {calls}\n')
    (tmp_path / "scripts" / "setup").chmod(0o755)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (tmp_path / "manage.py").write_text(
        f"import sys\nopen({str(calls)!r}, 'a').write('manage.py ' + ' '.join(sys.argv[1:]) + '\\n')\n"
    )
    result = subprocess.run(
        [str(tmp_path / "scripts" / "run"), "--bind", "0.0.0.0:8000"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == ["setup requirements/ml.txt", "manage.py serve --bind 0.0.0.0:8000"]


# --- the real thing ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, *, host: str | None = None, token: str | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url)
    if host:
        request.add_header("Host", host)
    if token:
        request.add_header("Authorization", f"Token {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
    except OSError:
        return 0, {}, b""


def wait_for(condition, timeout_s: float, what: str, output: list[str] | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}" + ("\n" + "".join(output or [])))


class Serve:
    """`manage.py serve` on an embedded server of its own, in a throw-away data directory."""

    def __init__(self, folder: Path, bind_host: str):
        self.pgdata = folder / "pgdata"
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY", "ALLOWED_HOSTS"}}
        env.update(
            DJANGO_SETTINGS_MODULE="echoroo.settings",
            DEBUG="1",
            ECHOROO_PGDATA=str(self.pgdata),
            ECHOROO_CACHE_DIR=str(settings.MODEL_CACHE_DIR),
            AUDIO_ROOT=str(folder),
            Q_WORKERS="1",
        )
        self.env = env
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--bind", f"{bind_host}:{self.port}", "--web-workers", "1"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=lambda: self.output.extend(self.process.stdout), daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def clusters(self) -> set[int]:
        """The pids of the worker clusters' processes (the jobs' and the search worker's, and those they forked)."""
        pids = set()
        for child in self.descendants():
            try:
                if "qcluster" in " ".join(child.cmdline()):
                    pids.add(child.pid)
            except psutil.Error:
                pass  # a cluster process just killed, not yet reaped by serve
        return pids

    def postmaster(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def pg_ctl(self, *args: str) -> None:
        from pgserver import pg_ctl

        pg_ctl(["-w", *args], pgdata=self.pgdata, user="pgserver" if os.geteuid() == 0 else None, timeout=60)

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def text(self) -> str:
        return "".join(self.output)


@pytest.fixture
def serve():
    # Not tmp_path: the embedded server runs as the "pgserver" user when tests run as root.
    folder = Path(tempfile.mkdtemp(prefix="echoroo-test-serve-"))
    folder.chmod(0o755)
    started: list[Serve] = []
    yield lambda bind_host="127.0.0.1": started.append(Serve(folder, bind_host)) or started[-1]
    for server in started:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
    # Whatever a failed test left running on this folder: a server its serve started, even one killed mid-start.
    for process in psutil.process_iter(["cmdline"]):
        if str(folder) in " ".join(process.info["cmdline"] or []):
            process.kill()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(not machine_addresses(), reason="needs an address other than loopback")
def test_serve_keeps_serving_through_a_dead_cluster_and_a_database_outage_and_stops_everything(serve):
    server = serve("0.0.0.0")
    wait_for(lambda: get(server.url("/healthz"))[0] == 200, 300, "the server to answer", server.output)
    assert server.text().count("password:") == 1
    assert "Other machines reach it at http://" in server.text() and "ALLOWED_HOSTS" in server.text()

    # Another machine's name for it is accepted, an unknown one refused; another machine gets no debug page.
    address = machine_addresses()[0]
    url_address = f"[{address}]" if ":" in address else address
    assert get(server.url("/healthz"), host=f"{url_address}:{server.port}")[0] == 200
    assert get(server.url("/healthz"), host="unknown.example")[0] == 400
    status, _, body = get(f"http://{url_address}:{server.port}/no-such-page/")
    assert status == 404 and b"DEBUG = True" not in body
    assert b"DEBUG = True" in get(server.url("/no-such-page/"))[2]  # this machine still sees it

    # The worker cluster, killed outright, is started again while the web server goes on answering.
    first = wait_for(server.clusters, 120, "the worker cluster", server.output)
    for pid in first:
        os.kill(pid, signal.SIGKILL)
    again = wait_for(lambda: server.clusters() - first, 60, "a new worker cluster", server.output)
    assert "The worker cluster exited with status -9; starting it again" in server.text()
    assert get(server.url("/healthz"))[0] == 200
    assert server.process.poll() is None

    # The database stops: the API answers 503 with Retry-After, and answers again once it is back, by itself.
    token = server.manage("drf_create_token", "admin").split()[2]
    assert get(server.url("/api/v1/datasets/"), token=token)[0] == 200
    socket_dir = (server.pgdata / "postmaster.pid").read_text().splitlines()[4]
    first_postmaster = server.postmaster()
    server.pg_ctl("stop", "-m", "fast")
    status, headers, body = get(server.url("/api/v1/datasets/"), token=token)
    assert (status, headers.get("Retry-After"), body) == (
        503,
        "5",
        b'{"detail": "database unavailable: try again in 5 s"}',
    )
    assert get(server.url("/healthz"))[0] == 503
    server.pg_ctl("-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(server.pgdata / "log"), "start")
    assert server.postmaster() != first_postmaster
    wait_for(lambda: get(server.url("/api/v1/datasets/"), token=token)[0] == 200, 30, "the API after the outage")

    # Stopped, it leaves nothing running: web, workers, and the database the restart started.
    everything = server.descendants() + [psutil.Process(server.postmaster())]
    assert again <= {process.pid for process in everything}
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=120) == 0, server.text()
    wait_for(lambda: not any(process.is_running() for process in everything), 30, "every process to end")
    assert "Stopped the embedded PostgreSQL server." in server.text()
    assert not (server.pgdata / "postmaster.pid").exists()


@pytest.mark.slow
def test_the_last_process_on_the_embedded_server_stops_it_even_after_a_pg_ctl_restart():
    folder = Path(tempfile.mkdtemp(prefix="echoroo-test-restarted-"))
    folder.chmod(0o755)
    pgdata = folder / "pgdata"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DJANGO_SETTINGS_MODULE="echoroo.settings", ECHOROO_PGDATA=str(pgdata))
    code = (
        "import django, os; django.setup()\n"
        "from django.db import connection\n"
        "from pgserver import pg_ctl\n"
        "connection.ensure_connection()\n"
        "before = open(os.path.join(os.environ['ECHOROO_PGDATA'], 'postmaster.pid')).readline().strip()\n"
        "pg_ctl(['-w', 'restart', '-m', 'fast'], pgdata=os.environ['ECHOROO_PGDATA'],\n"
        "       user='pgserver' if os.geteuid() == 0 else None, timeout=60)\n"
        "after = open(os.path.join(os.environ['ECHOROO_PGDATA'], 'postmaster.pid')).readline().strip()\n"
        "print(before, after)\n"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, result.stderr
        before, after = map(int, result.stdout.split()[-2:])
        assert before != after  # a new server process, which pgserver does not know
        assert not psutil.pid_exists(after) and not (pgdata / "postmaster.pid").exists()
    finally:
        if (pgdata / "postmaster.pid").exists():
            from pgserver import pg_ctl

            pg_ctl(["-w", "stop", "-m", "immediate"], pgdata=pgdata, user="pgserver" if os.geteuid() == 0 else None)
        shutil.rmtree(folder, ignore_errors=True)
