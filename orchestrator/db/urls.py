"""Database URLs: the pinned driver per engine, another database on the same server,
and which engine a URL or dialect is."""

from __future__ import annotations

from sqlalchemy.engine import make_url

ENGINES = ("mssql", "postgresql")


# SQL Server is reached through pyodbc and Microsoft's ODBC Driver 18 (FreeTDS's
# tdsodbc where no Microsoft driver is installed); docs/operations.md lists the
# connection-string options. pyodbc is imported by SQLAlchemy only when an
# engine for such a URL is created, so PostgreSQL alone never needs libodbc.
MSSQL_DRIVERNAME = "mssql+pyodbc"
MSSQL_ODBC_DRIVER = "ODBC Driver 18 for SQL Server"


def sqlalchemy_url(url: str) -> str:
    """Pin the driver: psycopg 3 for PostgreSQL, pyodbc for SQL Server.

    A plain ``mssql://`` URL becomes ``mssql+pyodbc://``, and a pyodbc URL with a
    host but no ``driver`` (nor ``odbc_connect``) gets ODBC Driver 18. Another
    SQLAlchemy SQL Server dialect named explicitly (``mssql+mssqlpython``) is kept.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "mssql":
        parsed = parsed.set(drivername=MSSQL_DRIVERNAME)
    if (
        parsed.drivername == MSSQL_DRIVERNAME
        and parsed.host
        and not {"driver", "odbc_connect"} & {k.lower() for k in parsed.query}
    ):
        parsed = parsed.update_query_dict({"driver": MSSQL_ODBC_DRIVER})
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
