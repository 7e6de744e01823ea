"""Run everything on one machine: migrate, the admin user, static files, the model files, gunicorn and a worker
cluster, which is started again when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from echoroo.embedded import forget_dead_processes, stop_if_unused
from echoroo.serving import Bind, accepted_hosts, other_machines_urls

WORKER_NICENESS = 10
# A worker cluster that dies is started again after 1, 2, 4 ... 60 s (1 s again once one has run a minute), and at
# most this many times a minute: a cluster that cannot start does not spin.
RESTARTS_PER_MINUTE = 5
FIRST_RESTART_DELAY_S = 1.0
LONGEST_RESTART_DELAY_S = 60.0
HEALTHY_AFTER_S = 60.0
# How long gunicorn and the cluster get to finish what they are doing when serve stops.
STOP_TIMEOUT_S = 30


class Command(BaseCommand):
    help = (
        "Migrate, create the admin user, make the model files, then serve web/admin/API with gunicorn beside a "
        "django-q2 worker cluster (started again if it dies)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--bind", default="127.0.0.1:8000", help="HOST:PORT; 0.0.0.0:8000 serves other machines too"
        )
        parser.add_argument(
            "--web-workers", type=int, help="gunicorn processes (default: WEB_WORKERS, else 2 x cores + 1)"
        )
        parser.add_argument("--no-worker", action="store_true", help="Serve only; run `manage.py qcluster` elsewhere.")

    def handle(self, *args, bind: str, web_workers: int | None, no_worker: bool, **options):
        try:
            address = Bind.parse(bind)
        except ValueError as error:
            raise CommandError(str(error)) from error
        call_command("migrate", interactive=False, verbosity=0)
        call_command("ensure_admin")
        call_command("collectstatic", interactive=False, verbosity=0)
        self.stdout.write(f"Database: {self._describe_database()}")
        self.stdout.write(f"Audio root: {settings.AUDIO_ROOT}")

        environment = dict(os.environ)
        hosts = accepted_hosts(address, settings.ALLOWED_HOSTS)
        if hosts is not None:
            # The children read ALLOWED_HOSTS from their environment (echoroo/settings.py).
            environment["ALLOWED_HOSTS"] = ",".join(hosts)
        if not no_worker:
            # Snippet searches are embedded by the search worker, where the model stays loaded once, rather than in
            # each web process (hundreds of MB each: benchmarks/snippet_memory.py).
            environment["EMBED_SNIPPETS_IN"] = "worker"
        web = Child(
            "web server",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "echoroo.wsgi",
                # Workers, threads and timeout: see gunicorn.conf.py.
                "--config",
                str(settings.BASE_DIR / "gunicorn.conf.py"),
                "--bind",
                bind,
                *(["--workers", str(web_workers)] if web_workers else []),
                "--access-logfile",
                "-",
            ],
            environment,
        )
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        # The cluster runs in a session of its own, so that what is left of one that died can be ended with it, at a
        # lower CPU priority: on a shared machine, pages and API answers come first, inference takes what is left.
        worker = None if no_worker else Child("worker cluster", [*manage, "qcluster"], environment, own_session=True)
        search_worker = None
        if not no_worker:
            searching = {**environment, "Q_CLUSTER_NAME": settings.SEARCH_CLUSTER}
            search_worker = Child("search worker", [*manage, "qcluster"], searching, own_session=True)

        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            web.start()
            self._say_where(address, hosts)
            if worker is not None:
                self._prepare_models(manage, environment)
                if not stopping:
                    worker.start()
                    search_worker.start()
            while not stopping:
                if web.exited():
                    self.stderr.write(f"The web server exited with status {web.process.returncode}; stopping.")
                    break
                for cluster in (worker, search_worker):
                    if cluster is not None:
                        self._look_after(cluster)
                time.sleep(0.5)
        finally:
            for child in (web, worker, search_worker):
                if child is not None:
                    child.ask_to_stop()
            for child in (web, worker, search_worker):
                if child is not None:
                    child.wait_or_kill(STOP_TIMEOUT_S)
            self._stop_the_embedded_database()
        return None

    def _look_after(self, worker: Child) -> None:
        """Start the cluster again when it has died, after its back-off."""
        if worker.exited():
            status = worker.process.returncode
            worker.end_what_is_left()
            delay = worker.schedule_restart(time.monotonic())
            self.stderr.write(
                f"The {worker.name} exited with status {status}; starting it again in {delay:.0f} s "
                "(the web server goes on serving)."
            )
        elif worker.due(time.monotonic()):
            worker.start()
            self.stdout.write(f"Started the {worker.name} again (pid {worker.process.pid}).")

    def _prepare_models(self, manage: list[str], environment: dict[str, str]) -> None:
        """Make the model files the workers derive (a first job would wait for them at 0 %), before they start."""
        self.stdout.write("Preparing the models (their derived files are made once: seconds the first time)...")
        result = subprocess.run([*manage, "prepare_models"], cwd=settings.BASE_DIR, env=environment, check=False)
        if result.returncode != 0:
            self.stderr.write(
                "Could not prepare the models (see above); each worker prepares them for its first job instead."
            )

    def _say_where(self, address: Bind, hosts: list[str] | None) -> None:
        self.stdout.write(self.style.SUCCESS(f"Echoroo ML is at {address.local_url()} (admin: /admin/, API: /api/v1/)"))
        others = other_machines_urls(address)
        if not others:
            return
        self.stdout.write(f"Other machines reach it at {', '.join(others)}")
        self.stdout.write(
            f"It answers to the host names {', '.join(hosts or settings.ALLOWED_HOSTS)}; for another name (a DNS "
            "alias, a proxy's) add it to ALLOWED_HOSTS (comma-separated) and start again."
        )
        if settings.DEBUG:
            self.stdout.write(
                "DEBUG is on: error pages with tracebacks are shown to this machine only. For a server others "
                "use, set DEBUG=0 and SECRET_KEY (see the README)."
            )

    def _stop_the_embedded_database(self) -> None:
        database = settings.DATABASES["default"]
        if database["ENGINE"] != "echoroo.embedded_postgres":
            return
        # Found by its data directory: after a `pg_ctl restart` it is not the process that was started.
        forget_dead_processes(database["PGDATA"])
        if stop_if_unused(Path(database["PGDATA"])):
            self.stdout.write("Stopped the embedded PostgreSQL server.")

    def _describe_database(self) -> str:
        database = settings.DATABASES["default"]
        if database["ENGINE"] == "echoroo.embedded_postgres":
            return f"embedded PostgreSQL, data in {database['PGDATA']}"
        return f"PostgreSQL at {database.get('HOST') or 'localhost'}:{database.get('PORT') or 5432}/{database['NAME']}"


class Child:
    """One process serve runs: started, watched, started again after a back-off, stopped."""

    def __init__(self, name: str, command: list[str], environment: dict[str, str], *, own_session: bool = False):
        self.name, self.command, self.environment, self.own_session = name, command, environment, own_session
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.starts: list[float] = []
        self.quick_exits = 0
        self.start_at: float | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command,
            cwd=settings.BASE_DIR,
            env=self.environment,
            start_new_session=self.own_session,
            preexec_fn=(lambda: os.nice(WORKER_NICENESS)) if self.own_session else None,
        )
        self.started_at = time.monotonic()
        self.starts.append(self.started_at)
        self.start_at = None

    def exited(self) -> bool:
        """Whether it was running and has exited (once per exit)."""
        return self.process is not None and self.start_at is None and self.process.poll() is not None

    def schedule_restart(self, now: float) -> float:
        """Set when it starts again; returns the delay in seconds."""
        self.quick_exits = 1 if now - self.started_at >= HEALTHY_AFTER_S else self.quick_exits + 1
        delay = min(FIRST_RESTART_DELAY_S * 2 ** (self.quick_exits - 1), LONGEST_RESTART_DELAY_S)
        last_minute = [started for started in self.starts if now - started < 60]
        if len(last_minute) >= RESTARTS_PER_MINUTE:
            delay = max(delay, 60 - (now - last_minute[0]))
        self.starts = last_minute
        self.start_at = now + delay
        return delay

    def due(self, now: float) -> bool:
        return self.start_at is not None and now >= self.start_at

    def end_what_is_left(self) -> None:
        """Kill what a dead cluster left behind (its workers, if only its main process died)."""
        if self.own_session and self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def ask_to_stop(self) -> None:
        # To the main process only: sent to the whole session, django-q2's own processes die before the main one
        # can stop them, and it hangs.
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_or_kill(self, timeout_s: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.end_what_is_left()
