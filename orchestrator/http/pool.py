"""The service's database connections: a pool per instance, so a request does not pay for a new session.

PostgreSQL: a ``psycopg_pool.ConnectionPool`` of autocommit connections, all
``max_size`` of them (the upload limits plus a few for the reads) opened when
the service starts (``open``), and kept: a pool that grows on demand makes the
request that finds every connection busy wait for a new session (its backend
started, then the procedures compiled on their first call in it), which was
what made the small uploads' p99 many times their p50 (docs/http.md).
A connection that comes back broken or inside a transaction is discarded by
the pool, so a database restart costs one failed request per pooled connection
(answered 503), not a stuck service. SQL Server: ``Database.connect`` through
pyodbc, whose ODBC driver-manager pooling (``pyodbc.pooling``, on by default)
keeps the sessions; nothing more is needed there.

The service stays stateless: a pooled connection holds no session state
between requests (every call is one autocommit CALL; Upload.upload_data's
temporary tables drop at its commit).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from orchestrator.db.connection import Database
from orchestrator.db.urls import libpq_url
from orchestrator.http.problems import ProblemError

WAIT_SECONDS = 5.0  # a request waits this long for a free connection, then gets 503
OPEN_WAIT_SECONDS = 10.0  # at start, wait this long for every connection; then serve anyway (they follow)


class Connections:
    def __init__(self, db: Database, max_size: int) -> None:
        self.db = db
        self.max_size = max_size
        self._pool: Any = None
        self._lock = threading.Lock()
        self._closed = False

    def _get_pool(self) -> Any:
        if self._pool is None:
            with self._lock:
                if self._pool is None and not self._closed:
                    from psycopg_pool import ConnectionPool

                    self._pool = ConnectionPool(
                        libpq_url(self.db.url),
                        min_size=self.max_size,  # every connection at start: none opened under a request
                        max_size=self.max_size,
                        kwargs={"autocommit": True, "application_name": "flp-serve"},
                        name="flp-serve",
                        open=True,
                    )
        return self._pool

    def open(self) -> bool:
        """Open every connection now (the service's start), so no request waits for one to be made.
        False when they were not all ready in OPEN_WAIT_SECONDS (the database is away or slow):
        the pool goes on opening them, and requests wait as they would have."""
        if self.db.kind != "postgresql":
            return True
        from psycopg_pool import PoolTimeout

        pool = self._get_pool()
        if pool is None:
            return False
        try:
            pool.wait(timeout=OPEN_WAIT_SECONDS)
        except PoolTimeout:
            return False
        return True

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """An autocommit connection for one request."""
        if self.db.kind != "postgresql":
            with self.db.connect() as conn:
                yield conn
            return
        from psycopg_pool import PoolTimeout

        pool = self._get_pool()
        if pool is None:  # closed: the service is stopping
            with self.db.connect() as conn:
                yield conn
            return
        try:
            conn = pool.getconn(timeout=WAIT_SECONDS)
        except PoolTimeout:
            raise ProblemError(
                503,
                "Service unavailable",
                "every database connection of this instance is in use",
                kind="busy",
                headers={"Retry-After": "1"},
            ) from None
        try:
            yield conn
        finally:
            pool.putconn(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
