"""Database URLs: the pinned driver per engine, another database on the same server,
and which engine a URL or dialect is."""

from __future__ import annotations

from sqlalchemy.engine import make_url

ENGINES = ("mssql", "postgresql")


def sqlalchemy_url(url: str) -> str:
    """Pin the driver: psycopg 3 for PostgreSQL, mssql-python for SQL Server."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "mssql":
        parsed = parsed.set(drivername="mssql+mssqlpython")
    return parsed.render_as_string(hide_password=False)


def with_database(url: str, name: str) -> str:
    """The same server and credentials, database ``name``."""
    return make_url(sqlalchemy_url(url)).set(database=name).render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """A PostgreSQL URL as libpq (psycopg.connect, psql) reads it."""
    return sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


def engine_of(dialect_or_url: str) -> str:
    """'mssql' or 'postgresql' for a dialect name (``mssql``) or a URL (``mssql+pyodbc://``)."""
    return "mssql" if dialect_or_url.startswith("mssql") else "postgresql"
