"""Alembic, driven from Python: upgrade, downgrade, current revision, offline script."""

from __future__ import annotations

import io
import logging

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from orchestrator.db.files import MIGRATIONS_DIR
from orchestrator.db.urls import sqlalchemy_url

# URLs for offline scripts: only the dialect matters, no server is contacted.
OFFLINE_URLS = {"mssql": "mssql+pyodbc://", "postgresql": "postgresql+psycopg://"}


def alembic_config(url: str | None = None, output: io.StringIO | None = None) -> Config:
    # Built in code, not read from alembic.ini: the ini is for a DBA running
    # alembic in a checkout; an installed flp finds its migrations in the package.
    cfg = Config(output_buffer=output)
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    # Alembic's own ini logging would replace ours; keep the CLI's.
    cfg.attributes["configure_logger"] = False
    if url is not None:
        # ConfigParser interpolation: a % in a password must be doubled.
        cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def script(engine: str, from_revision: str | None = None, to_revision: str = "head") -> str:
    """The whole upgrade as one SQL script for a DBA (offline, no server needed)."""
    if engine not in OFFLINE_URLS:
        raise ValueError(f"engine must be one of {', '.join(OFFLINE_URLS)}; got {engine!r}")
    out = io.StringIO()
    span = to_revision if from_revision is None else f"{from_revision}:{to_revision}"
    logging.getLogger("alembic").setLevel(logging.WARNING)
    command.upgrade(alembic_config(OFFLINE_URLS[engine], out), span, sql=True)
    return out.getvalue()
