"""Databases on the embedded server: ``flp`` for normal use, ``flp_demo`` for the demo."""

from __future__ import annotations

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from orchestrator import embedded
from orchestrator.config import Settings
from orchestrator.database import sqlalchemy_url


def _server_url(settings: Settings) -> str:
    return embedded.start(settings.data_dir)


def _with_database(url: str, name: str) -> str:
    return make_url(sqlalchemy_url(url)).set(database=name).render_as_string(hide_password=False)


def ensure_database(settings: Settings, name: str, fresh: bool = False) -> str:
    """Create database ``name`` on the embedded server if needed (drop it first
    when ``fresh``); return its SQLAlchemy URL."""
    server = _server_url(settings)
    with psycopg.connect(server, autocommit=True) as conn:
        if fresh:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _with_database(server, name)
