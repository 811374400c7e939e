"""Connections and procedure calls on either engine.

Runtime code reaches the database only through ``Database.call``, which runs a
stored procedure on an autocommit connection (procedures that COMMIT need
one) and returns its output parameters by their T-SQL names without the ``@``,
and ``Database.rows``, which returns the rows of a read routine (Monitor).

``Database.connect()`` opens a new session and closes it afterwards (NullPool):
what one-shot commands use. The orchestrator service keeps one idle session
per job between runs (``Database.connect(keep=job)``, below), so a job that
runs every minute does not open a session a minute, nor pay a new session's
warm-up (procedures compiled, catalog caches filled, every statement planned)
in its first batch.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from orchestrator.config import Settings
from orchestrator.db import server
from orchestrator.db.urls import engine_of, sqlalchemy_url, with_database
from orchestrator.errors import FlpError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# A kept job session (Database.connect(keep=...)) idle longer than this is
# closed, not reused: a job every minute keeps its session, a daily one does not
# hold one all day. The orchestrator's loop closes the idle ones as they age.
KEPT_SESSION_MAX_IDLE_SECONDS = 120
# And one older than this is closed after its run however busy: a backend's
# caches only grow, and a long-lived session outlives a DBA's change of role or
# settings; a new session an hour costs nothing.
KEPT_SESSION_MAX_AGE_SECONDS = 3600

# What a session may still hold after a run: a transaction left open, a job
# lock (session-owned: pg_try_advisory_lock / sp_getapplock @LockOwner =
# 'Session', taken by Job.job_run_start and released by Job.job_run_finish or
# job_run_fail). One round trip; anything but "nothing" closes the session.
# pg_locks: every role may read it; in autocommit no transaction lock of this
# query is advisory. SQL Server: APPLOCK_MODE as job_run_start v3 asks it
# (sys.dm_tran_locks needs VIEW SERVER STATE, which the role has not); the
# only application locks the procedures take are the job locks.
_PG_LEFTOVERS = (
    "SELECT current_setting('application_name'), "
    "(SELECT count(*) FROM pg_catalog.pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory')"
)
_MSSQL_LEFTOVERS = (
    "SET NOCOUNT ON; SELECT @@TRANCOUNT, "
    "APPLOCK_MODE(N'flp_orchestrator', N'flp-job:' + CAST(? AS nvarchar(101)), 'Session');"
)


def resolve_url(settings: Settings, database: str | None = None) -> str:
    """The configured URL, or the embedded server's, optionally for another database."""
    url = settings.database_url or server.start(settings.data_dir)
    if database is not None:
        url = with_database(url, database)
    return sqlalchemy_url(url)


@dataclass
class Database:
    """One database of either engine, reached through SQLAlchemy's engine."""

    url: str
    engine: sa.Engine = field(init=False, repr=False)
    # SQL Server: output parameter types per procedure, read from the catalog once.
    _output_types: dict[str, dict[str, str]] = field(default_factory=dict, init=False, repr=False)
    # The idle kept sessions, one at most per key (a job's name): connect(keep=...).
    _kept: dict[str, _KeptSession] = field(default_factory=dict, init=False, repr=False)
    _kept_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _discarded: set[int] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self.url = sqlalchemy_url(self.url)
        # No pool: a session is kept only where connect(keep=...) asks, and only
        # once proved clean; a general pool would hand out a failed run's
        # session with its session-level lock.
        self.engine = sa.create_engine(self.url, poolclass=NullPool)

    @property
    def kind(self) -> str:
        return engine_of(self.engine.dialect.name)

    @contextlib.contextmanager
    def connect(self, keep: str | None = None) -> Iterator[Any]:
        """A DBAPI connection in autocommit mode, closed afterwards.

        ``keep`` (the orchestrator service: a job's name): the session is kept for
        the next ``connect(keep=)`` of the same name instead of closed, when the
        block ended without an error, was not ``discard``-ed, holds no open
        transaction and no job lock, and has its application_name back (the health
        gate tells job sessions by it); otherwise it is closed. At most one idle
        session per name; one idle past KEPT_SESSION_MAX_IDLE_SECONDS or older
        than KEPT_SESSION_MAX_AGE_SECONDS is closed; a kept one that no longer
        answers is replaced by a new one. ``close_kept_sessions`` at stop."""
        if keep is None:
            raw = self.engine.raw_connection()
            driver = raw.driver_connection
            try:
                driver.autocommit = True
                yield driver
            finally:
                raw.close()
                with self._kept_lock:  # discard() of a session never kept: nothing to remember
                    self._discarded.discard(id(driver))
            return
        session = self._take_kept(keep)
        ok = False
        try:
            yield session.raw.driver_connection
            ok = True
        finally:
            self._give_back(keep, session, ok)

    def discard(self, conn: Any) -> None:
        """Close ``conn`` (from ``connect(keep=)``) at the end of its block instead of keeping
        it: the runner calls this for a failed run, whatever state the session is in."""
        with self._kept_lock:
            self._discarded.add(id(conn))

    def close_idle_sessions(self, now: float | None = None) -> int:
        """Close the kept sessions idle past KEPT_SESSION_MAX_IDLE_SECONDS; how many."""
        now = time.monotonic() if now is None else now
        with self._kept_lock:
            stale = [k for k, s in self._kept.items() if now - s.idle_since > KEPT_SESSION_MAX_IDLE_SECONDS]
            sessions = [self._kept.pop(k) for k in stale]
        for session in sessions:
            _close_quietly(session.raw)
        return len(sessions)

    def close_kept_sessions(self) -> None:
        """Close every idle kept session (the service stops)."""
        with self._kept_lock:
            sessions, self._kept = list(self._kept.values()), {}
        for session in sessions:
            _close_quietly(session.raw)

    def kept_session_count(self) -> int:
        with self._kept_lock:
            return len(self._kept)

    def _take_kept(self, key: str) -> _KeptSession:
        with self._kept_lock:
            session = self._kept.pop(key, None)
        if session is not None:
            now = time.monotonic()
            if (
                now - session.idle_since > KEPT_SESSION_MAX_IDLE_SECONDS
                or now - session.opened > KEPT_SESSION_MAX_AGE_SECONDS
            ):
                _close_quietly(session.raw)
            elif _answers(session.raw.driver_connection):
                return session
            else:  # the server restarted, a DBA killed it, the network dropped it
                _close_quietly(session.raw)
        raw = self.engine.raw_connection()
        try:
            driver = raw.driver_connection
            driver.autocommit = True
            application_name = self._leftovers(driver, key)[0] if self.kind == "postgresql" else None
        except BaseException:
            _close_quietly(raw)
            raise
        now = time.monotonic()
        return _KeptSession(raw, opened=now, idle_since=now, application_name=application_name)

    def _give_back(self, key: str, session: _KeptSession, ok: bool) -> None:
        driver = session.raw.driver_connection
        with self._kept_lock:
            discarded = id(driver) in self._discarded
            self._discarded.discard(id(driver))
        keep = ok and not discarded and time.monotonic() - session.opened <= KEPT_SESSION_MAX_AGE_SECONDS
        if keep:
            try:
                keep = self._is_clean(driver, key, session)
            except Exception:  # a session that cannot answer is not kept
                keep = False
        if keep:
            session.idle_since = time.monotonic()
            with self._kept_lock:
                keep = key not in self._kept  # another block of the same key kept one already
                if keep:
                    self._kept[key] = session
        if not keep:
            _close_quietly(session.raw)

    def _leftovers(self, driver: Any, key: str) -> tuple:
        cur = driver.cursor()
        try:
            if self.kind == "postgresql":
                cur.execute(_PG_LEFTOVERS)
            else:
                cur.execute(_MSSQL_LEFTOVERS, [key])
                while cur.description is None and cur.nextset():
                    pass
            return tuple(cur.fetchone())
        finally:
            cur.close()

    def _is_clean(self, driver: Any, key: str, session: _KeptSession) -> bool:
        """No open transaction, no lock of the session left, application_name as it was opened."""
        if self.kind == "postgresql":
            from psycopg.pq import TransactionStatus

            if driver.closed or driver.info.transaction_status != TransactionStatus.IDLE:
                return False
            application_name, advisory_locks = self._leftovers(driver, key)
            return advisory_locks == 0 and application_name == session.application_name
        trancount, lock_mode = self._leftovers(driver, key)
        return trancount == 0 and lock_mode == "NoLock"

    def call(
        self,
        conn: Any,
        procedure: str,
        params: Mapping[str, Any] | None = None,
        outputs: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """CALL/EXEC ``schema.name`` with named inputs; return the named outputs.

        Parameter names are the T-SQL names without ``@`` (``BatchSize``).
        """
        params = dict(params or {})
        for name in (*params, *outputs):
            if not IDENTIFIER.match(name):
                raise ValueError(f"parameter name {name!r} is not an identifier")
        if self.kind == "postgresql":
            return _call_postgresql(conn, procedure, params, outputs)
        types = self._mssql_output_types(conn, procedure) if outputs else {}
        return _call_mssql(conn, procedure, params, outputs, types)

    def rows(self, conn: Any, routine: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows a read routine returns (the Monitor reads), as dicts.

        A function RETURNS TABLE on PostgreSQL (``SELECT * FROM``), a procedure
        with a result set on SQL Server (``EXEC``, first result set). Parameter
        names are the T-SQL names without ``@``; the keys are the column names
        in lower case on both engines (PostgreSQL folds them).
        """
        params = dict(params or {})
        for name in params:
            if not IDENTIFIER.match(name):
                raise ValueError(f"parameter name {name!r} is not an identifier")
        if self.kind == "postgresql":
            args = ", ".join(f"p_{name} => %s" for name in params)
            sql = f"SELECT * FROM {routine}({args})"
        else:
            args = ", ".join(f"@{name} = ?" for name in params)
            sql = f"SET NOCOUNT ON;\nEXEC {routine} {args};"
        cur = conn.cursor()
        try:
            cur.execute(sql, list(params.values()))
            while cur.description is None and cur.nextset():
                pass
            if cur.description is None:
                return []
            columns = [column[0].lower() for column in cur.description]
            return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
        finally:
            cur.close()

    def _mssql_output_types(self, conn: Any, procedure: str) -> dict[str, str]:
        """The procedure's OUTPUT parameters and their T-SQL types, from this database's
        catalog: the version migrated into it, not the newest file on disk. Cached
        for the life of this Database (runtime commands never migrate)."""
        key = procedure.lower()
        if key not in self._output_types:
            cur = conn.cursor()
            try:
                cur.execute(MSSQL_OUTPUT_PARAMETERS, [procedure])
                self._output_types[key] = mssql_output_types(cur.fetchall())
            finally:
                cur.close()
        return self._output_types[key]


@dataclass
class _KeptSession:
    raw: Any  # SQLAlchemy's connection wrapper (NullPool: close() ends the session)
    opened: float  # time.monotonic()
    idle_since: float
    application_name: str | None  # PostgreSQL: as opened (Job.run_batched sets and restores it)


def _answers(driver: Any) -> bool:
    """One round trip: does a kept session still answer?"""
    try:
        cur = driver.cursor()
        try:
            cur.execute("SELECT 1")
            cur.fetchall()
        finally:
            cur.close()
        return True
    except Exception:
        return False


def _close_quietly(raw: Any) -> None:
    with contextlib.suppress(Exception):
        raw.close()


# EXECUTE on a procedure makes its catalog rows visible, so the orchestrator's
# role may read them. An alias type would need its schema: the procedures use none.
MSSQL_OUTPUT_PARAMETERS = (
    "SELECT p.name, t.name, p.max_length, p.precision, p.scale FROM sys.parameters AS p "
    "JOIN sys.types AS t ON t.user_type_id = p.user_type_id "
    "WHERE p.object_id = OBJECT_ID(?) AND p.is_output = 1 ORDER BY p.parameter_id;"
)
_LENGTH_TYPES = {"char", "varchar", "binary", "varbinary"}  # max_length in bytes, -1 for max
_UNICODE_TYPES = {"nchar", "nvarchar"}  # two bytes a character
_SCALE_TYPES = {"datetime2", "datetimeoffset", "time"}  # scale: fractional-second digits


def mssql_type_text(type_name: str, max_length: int, precision: int, scale: int) -> str:
    """The T-SQL type of a parameter from its sys.parameters / sys.types row."""
    name = type_name.lower()
    if name in _LENGTH_TYPES or name in _UNICODE_TYPES:
        if max_length == -1:
            return f"{name}(max)"
        return f"{name}({max_length // 2 if name in _UNICODE_TYPES else max_length})"
    if name in ("decimal", "numeric"):
        return f"{name}({precision}, {scale})"
    if name in _SCALE_TYPES:
        return f"{name}({scale})"
    return name


def mssql_output_types(rows) -> dict[str, str]:
    """Catalog rows (name, type_name, max_length, precision, scale) as
    {parameter name without @, lower case: T-SQL type}."""
    return {row[0].lstrip("@").lower(): mssql_type_text(*row[1:5]) for row in rows}


def _call_postgresql(conn, procedure, params, outputs) -> dict[str, Any]:
    args = [f"p_{name} => %s" for name in params] + [f"p_{name} => NULL" for name in outputs]
    sql = f"CALL {procedure}({', '.join(args)})"
    with conn.cursor() as cur:
        cur.execute(sql, list(params.values()))
        if not outputs:
            return {}
        row = cur.fetchone()
        columns = [c.name.lower() for c in cur.description]
    values = dict(zip(columns, row, strict=True))
    return {name: values[f"p_{name}".lower()] for name in outputs}


def _call_mssql(conn, procedure, params, outputs, types) -> dict[str, Any]:
    missing = [o for o in outputs if o.lower() not in types]
    if missing:
        raise FlpError(
            f"{procedure} has no OUTPUT parameter {', '.join('@' + o for o in missing)} in this database: "
            "the procedure is missing or of another version (flp db current), or this login cannot execute it"
        )
    declare = "".join(f"DECLARE @o_{o} {types[o.lower()]};\n" for o in outputs)
    args = [f"@{n} = ?" for n in params] + [f"@{o} = @o_{o} OUTPUT" for o in outputs]
    select = ", ".join(f"@o_{o} AS {o}" for o in outputs)
    sql = f"SET NOCOUNT ON;\n{declare}EXEC {procedure} {', '.join(args)};\n"
    if outputs:
        sql += f"SELECT {select};"
    cur = conn.cursor()
    try:
        cur.execute(sql, list(params.values()))
        if not outputs:
            return {}
        while cur.description is None and cur.nextset():
            pass
        row = cur.fetchone()
        return dict(zip(outputs, row, strict=True))
    finally:
        cur.close()
