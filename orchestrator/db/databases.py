"""Databases on a PostgreSQL server: create (optionally from a template), drop, and
the embedded server's ``flp`` (normal use) and ``flp_demo`` (the demo) databases."""

from __future__ import annotations

import psycopg
from psycopg import sql

from orchestrator.config import Settings
from orchestrator.db import server
from orchestrator.db.urls import libpq_url, with_database

NORMAL_DATABASE = "flp"  # the embedded database every command but the demo uses
DEMO_DATABASE = "flp_demo"


def _admin(server_url: str) -> psycopg.Connection:
    return psycopg.connect(libpq_url(server_url), autocommit=True)


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` on the server of ``server_url``, closing its sessions."""
    with _admin(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create_database(
    server_url: str, name: str, template: str | None = None, fresh: bool = True, file_copy: bool = False
) -> str:
    """Create database ``name`` (dropped first when ``fresh``; copied from ``template``
    when given, by copying files rather than through WAL when ``file_copy``) and
    return its SQLAlchemy URL."""
    if fresh:
        drop_database(server_url, name)
    with _admin(server_url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            if file_copy:
                statement += sql.SQL(" STRATEGY FILE_COPY")
            conn.execute(statement)
    return with_database(server_url, name)


def ensure_database(settings: Settings, name: str, fresh: bool = False) -> str:
    """Database ``name`` on the embedded server, created if needed (recreated when
    ``fresh``); its SQLAlchemy URL."""
    return create_database(server.start(settings.data_dir), name, fresh=fresh)
