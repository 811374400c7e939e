"""Embedded PostgreSQL (pgserver) in the local data folder: the default when no
FLP_DATABASE_URL is configured, so ``flp demo`` needs no installed server."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)

PGDATA_SUBDIR = "pgdata"


def start(data_dir: Path) -> str:
    """Start (or reuse) the embedded server; return a PostgreSQL URL for it.

    The server is stopped when the last process using it exits.
    """
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR on headless machines.
        warnings.simplefilter("ignore")
        import pgserver

        pgdata = data_dir / PGDATA_SUBDIR
        pgdata.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    uri = server.get_uri()
    log.info("embedded PostgreSQL running", extra={"pgdata": str(pgdata)})
    return uri
