"""Helpers the Alembic migrations use to apply schema files and procedure versions.

SQL is sent to the driver verbatim, bypassing SQLAlchemy's ``text()``: PL/pgSQL
casts (``::int``), times (``'12:00'``) and ``%`` in RAISE formats reach the
database untouched, and nothing is rendered as NULL in an offline script. In
offline mode each batch is written as it is, followed by ``GO`` on SQL Server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from alembic import op

from orchestrator.db import procedures
from orchestrator.db.files import SCHEMA_DIR
from orchestrator.db.urls import engine_of

GO_LINE = re.compile(r"^[ \t]*GO[ \t]*$", re.MULTILINE | re.IGNORECASE)


def engine() -> str:
    """'mssql' or 'postgresql': the folder of SQL files that applies."""
    return engine_of(op.get_context().dialect.name)


def execute(sql: str) -> None:
    """Run one batch verbatim (one or more statements; no GO inside)."""
    sql = sql.strip()
    if not sql:
        return
    ctx = op.get_context()
    if ctx.as_sql:
        ctx.impl.static_output(sql + "\n")
        if engine() == "mssql":
            ctx.impl.static_output("GO\n")
        return
    cursor = ctx.connection.connection.driver_connection.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def run_schema_file(name: str) -> None:
    """Run db/schema/<engine>/<name>.sql, batch by batch on SQL Server."""
    path = SCHEMA_DIR / engine() / f"{name}.sql"
    text = path.read_text(encoding="utf-8")
    batches = GO_LINE.split(text) if engine() == "mssql" else [text]
    for batch in batches:
        execute(batch)


def _drop_postgresql_overloads(schema: str, name: str) -> str:
    # CREATE OR REPLACE with another argument list would add an overload, so
    # every existing signature goes first.
    return f"""DO $drop$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT p.oid::regprocedure AS signature, p.prokind
        FROM pg_proc AS p
        INNER JOIN pg_namespace AS n ON n.oid = p.pronamespace
        WHERE n.nspname = '{schema}' AND p.proname = '{name}'
    LOOP
        EXECUTE format(
            'DROP %s %s', CASE r.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, r.signature
        );
    END LOOP;
END
$drop$;"""


def _grant_postgresql(routine: procedures.Routine) -> str:
    roles = ", ".join(procedures.SCHEMA_ROLES[routine.schema.lower()])
    kind = routine.kind.upper()
    return f"""DO $grant$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT p.oid::regprocedure AS signature
        FROM pg_proc AS p
        INNER JOIN pg_namespace AS n ON n.oid = p.pronamespace
        WHERE n.nspname = '{routine.schema.lower()}' AND p.proname = '{routine.name}'
    LOOP
        EXECUTE format('REVOKE ALL ON {kind} %s FROM PUBLIC', r.signature);
        EXECUTE format('GRANT EXECUTE ON {kind} %s TO {roles}', r.signature);
    END LOOP;
END
$grant$;"""


def apply_procedure(name: str, version: int) -> None:
    """Create or replace routine ``name`` at ``version`` on the current engine."""
    eng = engine()
    routine = procedures.routine(eng, name, version)
    text = procedures.read(eng, name, version)
    if eng == "postgresql":
        execute(_drop_postgresql_overloads(routine.schema.lower(), routine.name))
        execute(text)
        execute(_grant_postgresql(routine))
    else:
        execute(text)  # CREATE OR ALTER keeps existing grants


def drop_procedure(name: str, version: int) -> None:
    eng = engine()
    routine = procedures.routine(eng, name, version)
    if eng == "postgresql":
        execute(_drop_postgresql_overloads(routine.schema.lower(), routine.name))
    else:
        execute(f"DROP {routine.kind.upper()} IF EXISTS {routine.schema}.{routine.name};")


def upgrade_procedures(items: Iterable[tuple[str, int]]) -> None:
    """Apply each (name, version) in order."""
    for name, version in items:
        apply_procedure(name, version)


def downgrade_procedures(items: Iterable[tuple[str, int]]) -> None:
    """Undo upgrade_procedures(items): restore version N-1, or drop version 1."""
    for name, version in reversed(list(items)):
        if version > 1:
            apply_procedure(name, version - 1)
        else:
            drop_procedure(name, version)
