"""Run everything on one machine: migrate, the admin user, static files, gunicorn and a worker cluster."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from echoroo.embedded import forget_dead_processes

WORKER_NICENESS = 10


class Command(BaseCommand):
    help = "Migrate, create the admin user, then serve web/admin/API with gunicorn beside a django-q2 worker cluster."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument(
            "--web-workers", type=int, help="gunicorn processes (default: WEB_WORKERS, else 2 x cores + 1)"
        )
        parser.add_argument("--no-worker", action="store_true", help="Serve only; run `manage.py qcluster` elsewhere.")

    def handle(self, *args, bind: str, web_workers: int | None, no_worker: bool, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("ensure_admin")
        call_command("collectstatic", interactive=False, verbosity=0)
        self.stdout.write(f"Database: {self._describe_database()}")
        self.stdout.write(f"Audio root: {settings.AUDIO_ROOT}")

        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        commands = {
            "web": [
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
        }
        if not no_worker:
            commands["worker"] = [*manage, "qcluster"]
        processes = {
            # The worker runs at a lower CPU priority: on a shared machine, pages and API answers
            # come first and inference takes the cycles left over.
            name: subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                preexec_fn=(lambda: os.nice(WORKER_NICENESS)) if name == "worker" else None,
            )
            for name, command in commands.items()
        }
        self.stdout.write(self.style.SUCCESS(f"Echoroo ML is at http://{bind}/ (admin: /admin/, API: /api/v1/)"))

        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            while not stopping:
                for name, process in processes.items():
                    if process.poll() is not None:
                        self.stderr.write(f"{name} exited with status {process.returncode}; stopping.")
                        stopping = True
                time.sleep(0.5)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes.values():
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
            database = settings.DATABASES["default"]
            if database["ENGINE"] == "echoroo.embedded_postgres":
                # So that this process, the last one using the embedded server, stops it on exit.
                forget_dead_processes(database["PGDATA"])
        return None

    def _describe_database(self) -> str:
        database = settings.DATABASES["default"]
        if database["ENGINE"] == "echoroo.embedded_postgres":
            return f"embedded PostgreSQL, data in {database['PGDATA']}"
        return f"PostgreSQL at {database.get('HOST') or 'localhost'}:{database.get('PORT') or 5432}/{database['NAME']}"
