"""Embedded PostgreSQL (pgserver) in the local data folder: the default when no
FLP_DATABASE_URL is configured, so ``flp demo`` needs no installed server.

pgserver keeps the pids of the processes using a server in
``pgdata/.handle_pids.json`` and stops the server when the last of them exits.
A process that is killed (SIGKILL, OOM) never removes its pid, so the server
would run for good. Before using the server, ``start`` drops the pids of
processes that are gone: the running server is reused, and stopped when the
last live user exits.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

PGDATA_SUBDIR = "pgdata"
HANDLES_FILE = ".handle_pids.json"  # pgserver's list of the processes using the server


def _pgserver():
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on headless machines.
        warnings.simplefilter("ignore")
        import pgserver
    return pgserver


def start_throwaway(folder: Path, cleanup_mode: str = "delete"):
    """A pgserver in ``folder`` for tests and benchmarks; the caller calls ``cleanup()``."""
    return _pgserver().get_server(folder, cleanup_mode=cleanup_mode)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Remove the pids of processes that no longer exist from pgserver's handle list
    (under pgserver's own inter-process lock); return the pids removed."""
    path = pgdata / HANDLES_FILE
    if not path.exists():
        return []
    _pgserver()
    from pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:
        try:
            pids = json.loads(path.read_text())
        except (OSError, ValueError):
            pids = []  # unreadable: rebuilt by the processes that use the server from now on
        dead = [pid for pid in pids if not _alive(pid)]
        if dead:
            path.write_text(json.dumps([pid for pid in pids if pid not in dead]))
    if dead:
        log.warning(
            "embedded PostgreSQL: forgot processes that were killed while using it",
            extra={"pgdata": str(pgdata), "pids": ",".join(map(str, dead))},
        )
    return dead


def start(data_dir: Path) -> str:
    """Start (or reuse) the embedded server; return a PostgreSQL URL for it.

    The server is stopped when the last process using it exits.
    """
    pgdata = (data_dir / PGDATA_SUBDIR).resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    forget_dead_handles(pgdata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = _pgserver().get_server(pgdata, cleanup_mode="stop")
    uri = server.get_uri()
    log.info("embedded PostgreSQL running", extra={"pgdata": str(pgdata)})
    return uri
