"""Migrations on PostgreSQL: up, down and up again; the offline script; procedure text.

The catalog is compared as a normalised snapshot (columns, constraints,
indexes, tables and partitions, routines with their argument lists and source,
and privileges), so "the same schema" means the same to the database, not the
same SQL text.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import psycopg
import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from orchestrator.db import migrate, migration_ops, procedures
from orchestrator.db.urls import libpq_url, sqlalchemy_url
from tests.conftest import require_service

FLP_SCHEMAS = ["plsp", "ops", "job", "api", "upload", "monitor"]
ROUTINE_SCHEMAS = ["job", "api", "upload", "monitor"]
PSQL_TIMEOUT_SECONDS = 120

CATALOG_QUERIES = {
    "tables": """
        SELECT n.nspname, c.relname, c.relkind::text, coalesce(pg_get_expr(c.relpartbound, c.oid), ''),
               coalesce(pg_get_partkeydef(c.oid), '')
        FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')""",
    "columns": """
        SELECT table_schema, table_name, column_name, ordinal_position, data_type,
               character_maximum_length, numeric_precision, numeric_scale, datetime_precision,
               is_nullable, column_default, is_identity, identity_generation
        FROM information_schema.columns WHERE table_schema = ANY(%(schemas)s)""",
    "constraints": """
        SELECT n.nspname, c.relname, k.conname, k.contype::text, pg_get_constraintdef(k.oid)
        FROM pg_constraint AS k
        JOIN pg_class AS c ON c.oid = k.conrelid
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s)""",
    "indexes": """
        SELECT schemaname, tablename, indexname, indexdef
        FROM pg_indexes WHERE schemaname = ANY(%(schemas)s)""",
    "routines": """
        SELECT n.nspname, p.proname, p.prokind::text, pg_get_function_arguments(p.oid),
               coalesce(pg_get_function_result(p.oid), ''), p.prosecdef, coalesce(p.proconfig::text, ''),
               p.prosrc
        FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
        WHERE n.nspname = ANY(%(schemas)s)""",
    "routine grants": """
        SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
               coalesce(r.rolname, 'PUBLIC'), a.privilege_type
        FROM pg_proc AS p
        JOIN pg_namespace AS n ON n.oid = p.pronamespace
        CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
        LEFT JOIN pg_roles AS r ON r.oid = a.grantee
        WHERE n.nspname = ANY(%(schemas)s)""",
    "table grants": """
        SELECT n.nspname, c.relname, coalesce(r.rolname, 'PUBLIC'), a.privilege_type
        FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) AS a
        LEFT JOIN pg_roles AS r ON r.oid = a.grantee
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S')""",
    "schema grants": """
        SELECT n.nspname, coalesce(r.rolname, 'PUBLIC'), a.privilege_type
        FROM pg_namespace AS n
        CROSS JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) AS a
        LEFT JOIN pg_roles AS r ON r.oid = a.grantee
        WHERE n.nspname = ANY(%(schemas)s)""",
    "revision": "SELECT version_num FROM public.alembic_version",
}


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(libpq_url(url), autocommit=True)


def rows(url: str, query: str, params: dict | None = None) -> list[tuple]:
    with connect(url) as conn:
        return conn.execute(query, params).fetchall()


def catalog(url: str) -> dict[str, set[tuple]]:
    """A normalised snapshot of everything FLP puts into a database."""
    with connect(url) as conn:
        return {
            name: {tuple(r) for r in conn.execute(query, {"schemas": FLP_SCHEMAS}).fetchall()}
            for name, query in CATALOG_QUERIES.items()
        }


def catalog_diff(expected: dict[str, set[tuple]], actual: dict[str, set[tuple]]) -> dict[str, dict]:
    """Per part of the catalog, what only one side has (empty when equal)."""
    diff = {}
    for name in expected.keys() | actual.keys():
        missing = expected.get(name, set()) - actual.get(name, set())
        extra = actual.get(name, set()) - expected.get(name, set())
        if missing or extra:
            diff[name] = {"missing": sorted(missing, key=str)[:5], "extra": sorted(extra, key=str)[:5]}
    return diff


def flp_schemas_present(url: str) -> list[str]:
    return [
        r[0]
        for r in rows(url, "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%(s)s)", {"s": FLP_SCHEMAS})
    ]


def overloaded_routines(url: str) -> list[tuple]:
    return rows(
        url,
        """SELECT n.nspname, p.proname, count(*) FROM pg_proc AS p
           JOIN pg_namespace AS n ON n.oid = p.pronamespace
           WHERE n.nspname = ANY(%(s)s) GROUP BY 1, 2 HAVING count(*) <> 1""",
        {"s": ROUTINE_SCHEMAS},
    )


def latest_routines() -> list[procedures.Routine]:
    """The newest version of every routine in db/procedures/postgresql."""
    return [
        procedures.routine("postgresql", name, max(found))
        for name, found in sorted(procedures.versions("postgresql").items())
    ]


def missing_routines(url: str) -> list[str]:
    present = {
        (schema, name, kind)
        for schema, name, kind in rows(
            url,
            """SELECT n.nspname, p.proname, p.prokind::text FROM pg_proc AS p
               JOIN pg_namespace AS n ON n.oid = p.pronamespace WHERE n.nspname = ANY(%(s)s)""",
            {"s": FLP_SCHEMAS},
        )
    }
    kinds = {"procedure": "p", "function": "f"}
    return [
        f"{r.path.name}: {r.qualified}"
        for r in latest_routines()
        if (r.schema.lower(), r.name, kinds[r.kind]) not in present
    ]


def body_of(path: Path) -> str:
    """The text between the dollar quotes of a PL/pgSQL routine file (what prosrc holds)."""
    text = path.read_text(encoding="utf-8")
    start = text.index("AS $$") + len("AS $$")
    return text[start : text.index("$$", start)]


def head_revision() -> str:
    return ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()


def psql_binary() -> str | None:
    """psql of the server's own version when pgserver provides one, else any on PATH."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH
        bundled = Path(POSTGRES_BIN_PATH) / "psql"
        if bundled.is_file():
            return str(bundled)
    except ImportError:
        pass
    return shutil.which("psql")


# ---------------------------------------------------------------------------
# Online: up, down, up again
# ---------------------------------------------------------------------------


def test_upgrade_downgrade_upgrade_gives_the_same_catalog(empty_db_url):
    url = empty_db_url
    head = head_revision()

    migrate.upgrade(url)
    assert migrate.current(url) == head
    assert overloaded_routines(url) == []
    assert missing_routines(url) == []
    first = catalog(url)
    assert first["routines"], "no routine was created: the comparisons below would prove nothing"

    migrate.downgrade(url, "base")
    assert migrate.current(url) is None
    assert flp_schemas_present(url) == []

    migrate.upgrade(url)
    assert migrate.current(url) == head
    assert overloaded_routines(url) == []
    assert missing_routines(url) == []
    assert catalog_diff(first, catalog(url)) == {}


def test_each_revision_downgrades_to_its_predecessor(empty_db_url):
    # Step by step, so a downgrade that leaves a newer routine behind shows up at its revision.
    url = empty_db_url
    script = ScriptDirectory.from_config(migrate.alembic_config())
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    snapshots = {}
    for revision in revisions:
        migrate.upgrade(url, revision)
        snapshots[revision] = catalog(url)
        assert overloaded_routines(url) == [], revision
    for revision, previous in zip(reversed(revisions[1:]), reversed(revisions[:-1]), strict=True):
        migrate.downgrade(url, previous)
        assert catalog_diff(snapshots[previous], catalog(url)) == {}, f"downgrade {revision} -> {previous}"
    migrate.downgrade(url, "base")
    assert flp_schemas_present(url) == []


# ---------------------------------------------------------------------------
# Offline: the script a DBA runs with psql
# ---------------------------------------------------------------------------


def run_psql_file(url: str, path: Path) -> subprocess.CompletedProcess:
    """``psql -f path`` against ``url``, as a DBA runs an offline script (stops at the first error)."""
    psql = psql_binary()
    if psql is None:
        require_service("psql (neither pgserver's nor one on PATH)")
    return subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", libpq_url(url), "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=PSQL_TIMEOUT_SECONDS,
        env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"},
    )


def test_the_offline_script_run_by_psql_gives_the_online_catalog_and_a_rerun_does_nothing(
    empty_db_url, db, tmp_path
):
    script = tmp_path / "flp_postgresql.sql"
    script.write_text(migrate.script("postgresql"), encoding="utf-8")

    result = run_psql_file(empty_db_url, script)

    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr, result.stderr
    first = catalog(empty_db_url)
    assert catalog_diff(catalog(db.url), first) == {}

    again = run_psql_file(empty_db_url, script)  # every migration is already applied: skipped

    assert again.returncode == 0, again.stderr
    assert "ERROR" not in again.stderr, again.stderr
    assert again.stdout.count("skipped") == len(
        list(ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions())
    )
    assert catalog_diff(first, catalog(empty_db_url)) == {}


# ---------------------------------------------------------------------------
# Procedure text reaches the database and the script unchanged
# ---------------------------------------------------------------------------


def test_every_routine_body_reaches_the_database_verbatim(db):
    stored = {
        (schema, name): source
        for schema, name, source in rows(
            db.url,
            """SELECT n.nspname, p.proname, p.prosrc FROM pg_proc AS p
               JOIN pg_namespace AS n ON n.oid = p.pronamespace WHERE n.nspname = ANY(%(s)s)""",
            {"s": FLP_SCHEMAS},
        )
    }
    routines = latest_routines()
    assert any("%" in body_of(r.path) for r in routines), "no body with % left to prove anything"
    for r in routines:
        assert stored.get((r.schema.lower(), r.name)) == body_of(r.path), r.path.name


@pytest.mark.parametrize("engine", procedures.ENGINES)
def test_every_procedure_file_is_in_the_offline_script_verbatim(engine):
    script = migrate.script(engine)
    for name, found in procedures.versions(engine).items():
        for version in found:
            text = procedures.read(engine, name, version).strip()
            assert text in script, f"{engine}/{name}.v{version}.sql"


# Test data: routine text full of what SQLAlchemy's text() and a DBAPI's
# paramstyle would take for bind parameters (:name, :1, %s, %(name)s).
PROBE_NAME = "colon_percent_probe"
PROBE_RESULT = "12:00 :name :1 %s %(name)s 100%"
PROBE_FILES = {
    "postgresql": f"""-- Job.{PROBE_NAME}, version 1: test data of tests/test_migrations.py.
CREATE PROCEDURE Job.{PROBE_NAME}(
    INOUT p_Text varchar(200) DEFAULT NULL
)
LANGUAGE plpgsql
AS $$
BEGIN
    -- :name in a comment, and 50% of a percent sign
    p_Text := format('%s :name :1 %%s %%(name)s 100%%', '12:00');
    RAISE NOTICE 'probe: %', p_Text;
END;
$$;
""",
    "mssql": f"""-- Job.{PROBE_NAME}, version 1: test data of tests/test_migrations.py.
CREATE OR ALTER PROCEDURE Job.{PROBE_NAME}
    @Text varchar(200) = NULL OUTPUT
AS
BEGIN
    -- :name in a comment, and 50% of a percent sign
    SET @Text = CONCAT('12:00', ' :name :1 %s %(name)s 100%');
END;
""",
}


@pytest.fixture
def probe_procedures(tmp_path, monkeypatch):
    """db/procedures moved to a temporary folder holding only the probe routine."""
    for engine, text in PROBE_FILES.items():
        (tmp_path / engine).mkdir()
        (tmp_path / engine / f"{PROBE_NAME}.v1.sql").write_text(text, encoding="utf-8")
    monkeypatch.setattr(procedures, "PROCEDURES_DIR", tmp_path)
    procedures.routine.cache_clear()
    yield tmp_path
    procedures.routine.cache_clear()


def test_colons_and_percent_signs_reach_the_database_unchanged(db, probe_procedures):
    engine = create_engine(sqlalchemy_url(db.url), poolclass=NullPool)
    try:
        # As env.py runs a migration: inside a transaction of the Alembic connection.
        with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
            migration_ops.apply_procedure(PROBE_NAME, 1)
    finally:
        engine.dispose()

    (source,) = rows(db.url, "SELECT prosrc FROM pg_proc WHERE proname = %(n)s", {"n": PROBE_NAME})[0]
    assert source == body_of(probe_procedures / "postgresql" / f"{PROBE_NAME}.v1.sql")
    assert rows(db.url, f"CALL job.{PROBE_NAME}(NULL)") == [(PROBE_RESULT,)]


@pytest.mark.parametrize("engine", procedures.ENGINES)
def test_colons_and_percent_signs_reach_the_offline_script_unchanged(engine, probe_procedures):
    out = io.StringIO()
    context = MigrationContext.configure(
        dialect_name="mssql" if engine == "mssql" else "postgresql",
        opts={"as_sql": True, "output_buffer": out},
    )
    with Operations.context(context):
        migration_ops.apply_procedure(PROBE_NAME, 1)

    assert PROBE_FILES[engine].strip() in out.getvalue()
