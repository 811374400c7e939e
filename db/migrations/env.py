"""Alembic environment for the FLP database, both engines.

Online: the URL comes from the Alembic config (set by ``flp db``) or from the
FLP settings (embedded PostgreSQL when none is set).

Offline (``--sql``, ``flp db script``): a script a DBA can run twice. Every
migration in it runs only when the database is at the migration's starting
revision, so a second run (or a run after part of the script was applied) does
nothing to what is already there; and the script first checks that the
database is at a revision the script knows, and stops otherwise.

* SQL Server, for ``sqlcmd -I -b`` or SSMS in SQLCMD mode: ``:on error exit``
  stops at the first error even without ``-b``; every batch ends in GO,
  including the ones Alembic itself opens, so each CREATE PROCEDURE starts its
  own batch; a migration that does not apply is compiled but not executed
  (``SET NOEXEC ON`` before it, ``SET NOEXEC OFF`` after its COMMIT: CREATE
  PROCEDURE must stay first in its batch, so it cannot sit inside an IF). Run
  outside SQLCMD mode (or with ``sqlcmd -x``) the script executes nothing and
  says why: the ``$(FlpSqlcmd)`` variable is then not replaced.
* PostgreSQL, for ``psql -f``: ``ON_ERROR_STOP`` is set by the script; each
  migration is inside ``\\if`` on a ``\\gset`` check of ``alembic_version``.
"""

from __future__ import annotations

import re

from alembic import context
from alembic.ddl.mssql import MSSQLImpl
from alembic.ddl.postgresql import PostgresqlImpl
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateTable

from orchestrator import config as flp_config
from orchestrator.db.connection import resolve_url
from orchestrator.db.migrate import SCRIPT_PLAN, ScriptPlan
from orchestrator.db.urls import sqlalchemy_url

# Alembic's comment before each migration: "-- Running upgrade 0001 -> 0002, doc"
# ("upgrade  -> 0001" from base, "downgrade 0001 -> , doc" to base).
RUNNING = re.compile(r"^-- Running (?P<direction>upgrade|downgrade) (?P<source>[^ ,]*) -> (?P<target>[^ ,]*)")
VERSION_TABLE = "alembic_version"
MSSQL_SQLCMD_VARIABLE = "FlpSqlcmd"


def _literal(revision: str | None) -> str:
    if revision is not None and not re.fullmatch(r"\w+", revision):
        raise ValueError(f"revision {revision!r} is not a plain identifier")
    return f"'{revision or ''}'"


class GuardedScript:
    """Offline-mode behaviour shared by both engines (a mixin over Alembic's impl).

    Alembic opens each migration's transaction (``emit_begin``) before its
    ``-- Running`` comment; the BEGIN is held back until the comment names the
    revisions, so the guard can come first and skip the whole transaction.
    """

    as_sql: bool
    context_opts: dict
    _pending_begin = False

    def _plan(self) -> ScriptPlan | None:
        return self.context_opts.get(SCRIPT_PLAN)

    def _out(self, text: str) -> None:
        super().static_output(text)  # type: ignore[misc]

    def start_migrations(self) -> None:
        super().start_migrations()  # type: ignore[misc]
        if self.as_sql:
            self._pending_begin = False
            self._header()

    def emit_begin(self) -> None:
        if not self.as_sql:
            super().emit_begin()  # type: ignore[misc]
            return
        self._pending_begin = True

    def static_output(self, text: str) -> None:
        match = RUNNING.match(text.lstrip()) if self.as_sql else None
        if match is None:
            self._out(text)
            return
        self._out(text)
        self._guard(match["source"] or None, match["direction"], match["target"] or None)
        if self._pending_begin:
            self._pending_begin = False
            self._begin()

    def _exec(self, construct, *args, **kw):
        if (
            self.as_sql
            and isinstance(construct, CreateTable)
            and construct.element.name == self.context_opts.get("version_table", VERSION_TABLE)
        ):
            compiled = str(construct.compile(dialect=self.dialect)).strip()  # type: ignore[attr-defined]
            self._create_version_table(compiled)
            return None
        return super()._exec(construct, *args, **kw)  # type: ignore[misc]

    # Engine-specific text -------------------------------------------------

    def _header(self) -> None:
        raise NotImplementedError

    def _guard(self, source: str | None, direction: str, target: str | None) -> None:
        raise NotImplementedError

    def _begin(self) -> None:
        raise NotImplementedError

    def _create_version_table(self, compiled: str) -> None:
        raise NotImplementedError


class FlpMSSQLImpl(GuardedScript, MSSQLImpl):
    """MSSQLImpl for a re-runnable sqlcmd script; online it is Alembic's own."""

    __dialect__ = "mssql"

    def _go(self) -> None:
        self._out(self.batch_separator)

    def _header(self) -> None:
        plan = self._plan()
        self._out(f":on error exit\n:setvar {MSSQL_SQLCMD_VARIABLE} on")
        self._go()
        self._out("SET ANSI_NULLS ON;\nSET QUOTED_IDENTIFIER ON;")
        self._go()
        lines = [
            "-- Outside SQLCMD mode (or with sqlcmd -x) $(FlpSqlcmd) stays as written:",
            "-- then every migration below is skipped and this batch says why.",
            f"IF N'$({MSSQL_SQLCMD_VARIABLE})' <> N'on'",
            "    THROW 50000, N'flp script: run it with sqlcmd -I -b (without -x) or in SSMS in SQLCMD mode;"
            " nothing was changed.', 1;",
        ]
        if plan is not None:
            allowed = ", ".join(_literal(r) for r in plan.states)
            lines += [
                f"-- {plan.describe()}",
                "-- The database must be at one of the revisions this script starts from or passes;",
                "-- a migration already applied is skipped.",
                "DECLARE @FlpRevision varchar(32) = '';",
                "DECLARE @FlpMessage nvarchar(2048);",
                f"IF OBJECT_ID(N'{VERSION_TABLE}', N'U') IS NOT NULL",
                "    EXEC sys.sp_executesql",
                f"        N'SELECT @Revision = COALESCE(MAX(version_num), '''') FROM {VERSION_TABLE};',",
                "        N'@Revision varchar(32) OUTPUT',",
                "        @Revision = @FlpRevision OUTPUT;",
                f"IF @FlpRevision NOT IN ({allowed})",
                "BEGIN",
                "    SET @FlpMessage = CONCAT(",
                "        N'flp script: the database is at revision ''', @FlpRevision,",
                f"        N''' (empty: none); this script ({plan.describe()}) expects one of "
                f"{plan.describe_states()}. Nothing was changed.'",
                "    );",
                "    THROW 50000, @FlpMessage, 1;",
                "END;",
            ]
        self._out("\n".join(lines))
        self._go()

    def _create_version_table(self, compiled: str) -> None:
        self._out(
            f"IF N'$({MSSQL_SQLCMD_VARIABLE})' = N'on' AND OBJECT_ID(N'{VERSION_TABLE}', N'U') IS NULL\n"
            f"{compiled};"
        )
        self._go()

    def _guard(self, source: str | None, direction: str, target: str | None) -> None:
        self._go()  # the comment is a batch of its own, never part of a procedure's text
        if source is None:
            applied = f"EXISTS (SELECT 1 FROM {VERSION_TABLE})"
        else:
            applied = f"NOT EXISTS (SELECT 1 FROM {VERSION_TABLE} WHERE version_num = {_literal(source)})"
        self._out(
            f"-- {direction} {source or 'base'} -> {target or 'base'} runs only when the database is at "
            f"{source or 'no revision'};\n-- otherwise its batches are compiled, not executed, "
            "down to SET NOEXEC OFF.\n"
            f"IF N'$({MSSQL_SQLCMD_VARIABLE})' <> N'on' OR OBJECT_ID(N'{VERSION_TABLE}', N'U') IS NULL "
            "SET NOEXEC ON;"
        )
        self._go()
        self._out(f"IF {applied} SET NOEXEC ON;")
        self._go()

    def _begin(self) -> None:
        MSSQLImpl.emit_begin(self)
        self._go()

    def emit_commit(self) -> None:
        super().emit_commit()  # COMMIT; GO
        if self.as_sql:
            self._out("SET NOEXEC OFF;")
            self._go()


class FlpPostgresqlImpl(GuardedScript, PostgresqlImpl):
    """PostgresqlImpl for a re-runnable psql script; online it is Alembic's own."""

    __dialect__ = "postgresql"

    def _header(self) -> None:
        plan = self._plan()
        self._out("\\set ON_ERROR_STOP on")
        if plan is None:
            return
        allowed = ", ".join(_literal(r) for r in plan.states)
        self._out(
            f"-- {plan.describe()}\n"
            "-- The database must be at one of the revisions this script starts from or passes;\n"
            "-- a migration already applied is skipped.\n"
            "DO $flp_check$\n"
            "DECLARE\n"
            "    v_revision text := '';\n"
            "BEGIN\n"
            f"    IF to_regclass('{VERSION_TABLE}') IS NOT NULL THEN\n"
            f"        EXECUTE 'SELECT coalesce(max(version_num), '''') FROM {VERSION_TABLE}'\n"
            "            INTO v_revision;\n"
            "    END IF;\n"
            f"    IF NOT v_revision = ANY (ARRAY[{allowed}]) THEN\n"
            "        RAISE EXCEPTION 'flp script: the database is at revision ''%'' (empty: none); "
            f"this script ({plan.describe()}) expects one of {plan.describe_states()}. "
            "Nothing was changed.', v_revision;\n"
            "    END IF;\n"
            "END\n"
            "$flp_check$;"
        )

    def _create_version_table(self, compiled: str) -> None:
        self._out(compiled.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1) + ";")

    def _guard(self, source: str | None, direction: str, target: str | None) -> None:
        if source is None:
            applied = f"EXISTS (SELECT 1 FROM {VERSION_TABLE})"
        else:
            applied = f"NOT EXISTS (SELECT 1 FROM {VERSION_TABLE} WHERE version_num = {_literal(source)})"
        step = f"{direction} {source or 'base'} -> {target or 'base'}"
        reason = f"the database is not at {source}" if source else "the database has a revision"
        self._out(
            f"SELECT {applied} AS flp_skip \\gset\n"
            "\\if :flp_skip\n"
            f"\\echo 'flp: {step} skipped: {reason}'\n"
            "\\else"
        )

    def _begin(self) -> None:
        PostgresqlImpl.emit_begin(self)

    def emit_commit(self) -> None:
        super().emit_commit()
        if self.as_sql:
            self._out("\\endif")


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if url:
        return sqlalchemy_url(url)
    return resolve_url(flp_config.load())


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        literal_binds=True,
        transaction_per_migration=True,
        dialect_opts={"paramstyle": "named"},
        **{SCRIPT_PLAN: context.config.attributes.get(SCRIPT_PLAN)},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
