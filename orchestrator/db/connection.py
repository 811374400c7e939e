"""Connections and procedure calls on either engine.

Runtime code reaches the database only through ``Database.call``, which runs a
stored procedure on an autocommit connection (procedures that COMMIT need
one) and returns its output parameters by their T-SQL names without the ``@``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from orchestrator.config import Settings
from orchestrator.db import procedures, server
from orchestrator.db.urls import engine_of, sqlalchemy_url, with_database

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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

    def __post_init__(self) -> None:
        self.url = sqlalchemy_url(self.url)
        # One connection per job run; pooling buys nothing at this rate and a
        # pooled connection would keep a failed run's session-level lock.
        self.engine = sa.create_engine(self.url, poolclass=NullPool)

    @property
    def kind(self) -> str:
        return engine_of(self.engine.dialect.name)

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """A DBAPI connection in autocommit mode, closed afterwards."""
        raw = self.engine.raw_connection()
        try:
            driver = raw.driver_connection
            driver.autocommit = True
            yield driver
        finally:
            raw.close()

    def call(
        self,
        conn: Any,
        procedure: str,
        params: Mapping[str, Any] | None = None,
        outputs: tuple[str, ...] = (),
        version: int | None = None,
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
        return _call_mssql(conn, procedure, params, outputs, version)


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


def _call_mssql(conn, procedure, params, outputs, version) -> dict[str, Any]:
    name = procedure.split(".")[-1].lower()
    if version is None:
        version = max(procedures.versions("mssql")[name])
    types = {p.name.lower(): p.type for p in procedures.routine("mssql", name, version).params}
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
