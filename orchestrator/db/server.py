"""Embedded PostgreSQL (pgserver) in the local data folder: the default when no
FLP_DATABASE_URL is configured, so ``flp demo`` needs no installed server."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

PGDATA_SUBDIR = "pgdata"


def _pgserver():
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on headless machines.
        warnings.simplefilter("ignore")
        import pgserver
    return pgserver


def start_throwaway(folder: Path, cleanup_mode: str = "delete"):
    """A pgserver in ``folder`` for tests and benchmarks; the caller calls ``cleanup()``."""
    return _pgserver().get_server(folder, cleanup_mode=cleanup_mode)


def start(data_dir: Path) -> str:
    """Start (or reuse) the embedded server; return a PostgreSQL URL for it.

    The server is stopped when the last process using it exits.
    """
    pgdata = data_dir / PGDATA_SUBDIR
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = _pgserver().get_server(pgdata, cleanup_mode="stop")
    uri = server.get_uri()
    log.info("embedded PostgreSQL running", extra={"pgdata": str(pgdata)})
    return uri
