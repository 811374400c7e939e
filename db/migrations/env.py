"""Alembic environment for the FLP database, both engines.

Online: the URL comes from the Alembic config (set by ``flp db``) or from the
FLP settings (embedded PostgreSQL when none is set). Offline (``--sql``): the
script for SQL Server is shaped for ``sqlcmd -I -b``: every batch ends in GO,
including the ones Alembic itself opens (BEGIN TRANSACTION, its comment lines),
so each CREATE PROCEDURE starts its own batch.
"""

from __future__ import annotations

from alembic import context
from alembic.ddl.mssql import MSSQLImpl
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from orchestrator import config as flp_config
from orchestrator.db.connection import resolve_url
from orchestrator.db.urls import sqlalchemy_url

MSSQL_SCRIPT_HEADER = "SET ANSI_NULLS ON;\nSET QUOTED_IDENTIFIER ON;\nGO\n"


class FlpMSSQLImpl(MSSQLImpl):
    """MSSQLImpl that also ends Alembic's own batches with GO in offline mode."""

    __dialect__ = "mssql"

    def emit_begin(self) -> None:
        super().emit_begin()
        if self.as_sql:
            self.static_output(self.batch_separator)

    def static_output(self, text: str) -> None:
        super().static_output(text)
        if self.as_sql and text.lstrip().startswith("-- Running"):
            super().static_output(self.batch_separator)


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    if url:
        return sqlalchemy_url(url)
    return resolve_url(flp_config.load())


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        literal_binds=True,
        transaction_per_migration=True,
        dialect_opts={"paramstyle": "named"},
    )
    if url.startswith("mssql"):
        context.get_context().impl.static_output(MSSQL_SCRIPT_HEADER)
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
