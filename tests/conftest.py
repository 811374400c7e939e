"""Test harness: real servers on loopback, started and stopped by the fixtures.

PostgreSQL: ``FLP_TEST_DATABASE_URL`` (a server URL; each test gets its own
database on it) or, by default, an embedded pgserver in a temporary folder.
The schema is migrated once into a template database; every test that asks for
``db`` gets a fresh copy of it (CREATE DATABASE ... TEMPLATE), so tests never
see each other's rows.

SQL Server: with ``FLP_TEST_MSSQL_URL`` set, every contract test (those using
``contract_db``) also runs against that database, migrated once.

``FLP_REQUIRE_SERVICES=1`` (CI) turns a missing service into a failure.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
import warnings
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from orchestrator import migrate
from orchestrator.database import Database, sqlalchemy_url

TEMPLATE_NAME = f"flp_template_{os.getpid()}"


def require_service(what: str) -> None:
    """Skip when a service is missing, or fail when FLP_REQUIRE_SERVICES=1."""
    if os.environ.get("FLP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {what} (FLP_REQUIRE_SERVICES=1)")
    pytest.skip(f"service missing: {what}")


def with_database(url: str, name: str) -> str:
    return make_url(sqlalchemy_url(url)).set(database=name).render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """URL of a PostgreSQL server (its maintenance database)."""
    url = os.environ.get("FLP_TEST_DATABASE_URL")
    if url:
        yield sqlalchemy_url(url)
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:  # pragma: no cover - dev extra missing
        require_service("PostgreSQL (pgserver not installed, FLP_TEST_DATABASE_URL unset)")
    # Its own folder, not pytest's tmp tree: pytest prunes old tmp folders, which
    # can pull the data folder from under a server of another pytest process.
    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="flp-test-pg-")), cleanup_mode="delete")
    yield sqlalchemy_url(server.get_uri())
    server.cleanup()


def admin_connect(server_url: str) -> psycopg.Connection:
    return psycopg.connect(libpq_url(server_url), autocommit=True)


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    with admin_connect(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with admin_connect(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def template_db_url(pg_server_url) -> str:
    """A database migrated to head once per test session; copied for each test."""
    url = create_database(pg_server_url, TEMPLATE_NAME)
    migrate.upgrade(url)
    yield url
    drop_database(pg_server_url, TEMPLATE_NAME)


@pytest.fixture
def empty_db_url(pg_server_url) -> str:
    """A fresh, empty database (no migrations applied)."""
    name = f"flp_t_{uuid.uuid4().hex[:12]}"
    url = create_database(pg_server_url, name)
    yield url
    drop_database(pg_server_url, name)


@pytest.fixture
def db(pg_server_url, template_db_url) -> Database:
    """A fresh copy of the migrated template database."""
    name = f"flp_t_{uuid.uuid4().hex[:12]}"
    url = create_database(pg_server_url, name, template=TEMPLATE_NAME)
    database = Database(url)
    yield database
    database.engine.dispose()
    drop_database(pg_server_url, name)


@pytest.fixture(scope="session")
def mssql_db() -> Database:
    url = os.environ["FLP_TEST_MSSQL_URL"]
    migrate.upgrade(url)
    return Database(url)


def pytest_generate_tests(metafunc):
    # Contract tests run on PostgreSQL always, and on SQL Server when one is given.
    if "contract_db" in metafunc.fixturenames:
        engines = ["postgresql"] + (["mssql"] if os.environ.get("FLP_TEST_MSSQL_URL") else [])
        metafunc.parametrize("contract_db", engines, indirect=True)


@pytest.fixture
def contract_db(request) -> Database:
    if request.param == "mssql":
        return request.getfixturevalue("mssql_db")
    return request.getfixturevalue("db")


@pytest.fixture
def restore_logging():
    """``flp`` replaces the root logger's handlers; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
