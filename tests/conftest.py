"""Test harness: real servers on loopback, started and stopped by the fixtures.

PostgreSQL: ``FLP_TEST_DATABASE_URL`` (a server URL; each test gets its own
database on it) or, by default, an embedded pgserver in a temporary folder.
The schema is migrated once into a template database; every test that asks for
``db`` gets a fresh copy of it (CREATE DATABASE ... TEMPLATE), so tests never
see each other's rows.

SQL Server: with ``FLP_TEST_MSSQL_URL`` set, every contract test (those using
``contract_db``) also runs against that database, migrated once and reset before
each test by the test-only procedure ``dbo.flp_test_reset``
(tests/support/mssql_reset.sql: every PLSP and Ops table emptied, then the
migrated Ops.Setting rows, read from the PostgreSQL template, put back).

``FLP_REQUIRE_SERVICES=1`` (CI) turns a missing service into a failure.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from orchestrator.db import migrate
from orchestrator.db.connection import Database
from orchestrator.db.databases import create_database, drop_database
from orchestrator.db.server import start_throwaway
from orchestrator.db.urls import sqlalchemy_url
from tests.support.services import mongo_server, rabbitmq_server  # noqa: F401  (session fixtures)

TEMPLATE_NAME = f"flp_template_{os.getpid()}"


def require_service(what: str) -> None:
    """Skip when a service is missing, or fail when FLP_REQUIRE_SERVICES=1."""
    if os.environ.get("FLP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {what} (FLP_REQUIRE_SERVICES=1)")
    pytest.skip(f"service missing: {what}")


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """URL of a PostgreSQL server (its maintenance database)."""
    url = os.environ.get("FLP_TEST_DATABASE_URL")
    if url:
        yield sqlalchemy_url(url)
        return
    try:
        server = start_throwaway(Path(tempfile.mkdtemp(prefix="flp-test-pg-")))
    except ImportError:  # pragma: no cover - pgserver missing
        require_service("PostgreSQL (pgserver not installed, FLP_TEST_DATABASE_URL unset)")
    yield sqlalchemy_url(server.get_uri())
    server.cleanup()


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


MSSQL_RESET_SQL = Path(__file__).parent / "support" / "mssql_reset.sql"


@pytest.fixture(scope="session")
def mssql_db() -> Database:
    """The SQL Server test database, migrated once; ``contract_db`` resets it before each test."""
    url = os.environ["FLP_TEST_MSSQL_URL"]
    migrate.upgrade(url)
    database = Database(url)
    with database.connect() as conn:
        cur = conn.cursor()
        try:
            cur.execute(MSSQL_RESET_SQL.read_text(encoding="utf-8"))  # dbo.flp_test_reset, test-only
        finally:
            cur.close()
    return database


@pytest.fixture(scope="session")
def migrated_settings(template_db_url) -> list[tuple]:
    """Ops.Setting as the migrations leave it (the same rows on both engines)."""
    template = Database(template_db_url)
    try:
        with template.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT JobName, Name, Value, Description FROM Ops.Setting ORDER BY JobName, Name")
            return [tuple(r) for r in cur.fetchall()]
    finally:
        template.engine.dispose()


def reset_mssql(database: Database, settings: list[tuple]) -> None:
    """Every PLSP and Ops table emptied, Ops.Setting back to the migrated rows."""
    with database.connect() as conn:
        cur = conn.cursor()
        try:
            cur.execute("EXEC dbo.flp_test_reset;")
            cur.executemany(
                "INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES (?, ?, ?, ?)", settings
            )
        finally:
            cur.close()


def pytest_generate_tests(metafunc):
    # Contract tests run on PostgreSQL always, and on SQL Server when one is given.
    if "contract_db" in metafunc.fixturenames:
        engines = ["postgresql"] + (["mssql"] if os.environ.get("FLP_TEST_MSSQL_URL") else [])
        metafunc.parametrize("contract_db", engines, indirect=True)


@pytest.fixture
def contract_db(request) -> Database:
    """A migrated database in a known state: on PostgreSQL a fresh copy of the template; on
    SQL Server the one test database, reset (data emptied, settings as migrated) first."""
    if request.param == "mssql":
        database = request.getfixturevalue("mssql_db")
        reset_mssql(database, request.getfixturevalue("migrated_settings"))
        return database
    return request.getfixturevalue("db")


@pytest.fixture
def restore_logging():
    """``flp`` replaces the root logger's handlers; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def data_dir() -> Path:
    """A fresh FLP data folder for an embedded server (``flp demo`` in a child process).

    Under /tmp, not pytest's tmp tree: as root pgserver opens the parent folders
    for its OS user, and pytest's own folders (mode 0700, pruned and created by
    other workers) can take that away mid-test (initdb: Permission denied)."""
    folder = Path(tempfile.mkdtemp(prefix="flp-test-data-"))
    yield folder / "data"
    shutil.rmtree(folder, ignore_errors=True)
