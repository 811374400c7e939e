"""Connections and procedure calls on either engine.

Runtime code reaches the database only through ``Database.call``, which runs a
stored procedure on an autocommit connection (procedures that COMMIT need
one) and returns its output parameters by their T-SQL names without the ``@``,
and ``Database.rows``, which returns the rows of a read routine (Monitor).
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
from orchestrator.db import server
from orchestrator.db.urls import engine_of, sqlalchemy_url, with_database
from orchestrator.errors import FlpError

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
    # SQL Server: output parameter types per procedure, read from the catalog once.
    _output_types: dict[str, dict[str, str]] = field(default_factory=dict, init=False, repr=False)

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
