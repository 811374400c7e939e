"""The DBA's scripts (``flp db script``): re-runnable, checked where they start, downgrades too.

PostgreSQL's scripts are executed with psql (tests/test_migrations.py runs the
whole upgrade twice); the SQL Server script is checked for its structure: every
migration's batches guarded by the revision it starts from, sqlcmd's
``:on error exit`` first, and it parses.
"""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest

from orchestrator import cli
from orchestrator.db import migrate
from orchestrator.db.urls import libpq_url, sqlalchemy_url
from orchestrator.errors import UsageError
from tests.conftest import MSSQL_RESET_SQL
from tests.support import sqlchecks
from tests.test_migrations import catalog, catalog_diff, flp_schemas_present, rows, run_psql_file

RUNNING = re.compile(r"^-- Running (upgrade|downgrade) (\S*) ->(?: (\S*?))?(?:,|$)", re.MULTILINE)


# ---------------------------------------------------------------------------
# SQL Server: the structure of the script
# ---------------------------------------------------------------------------


def guard_problems(script: str) -> list[str]:
    """Each migration of a T-SQL offline script must run only at its starting revision.

    Expected, per migration: its '-- Running' comment alone in a batch, then the
    two NOEXEC guard batches (SQLCMD mode and the version table; the starting
    revision), BEGIN TRANSACTION, the migration's batches, COMMIT, SET NOEXEC OFF,
    and nothing else before the next migration.
    """
    found, rest = sqlchecks.batches(script)
    texts = [b.text.strip() for b in found if b.text.strip()]
    problems = []
    if rest.text.strip():
        problems.append("the script does not end with GO")
    starts = [i for i, t in enumerate(texts) if RUNNING.match(t)]
    if not starts:
        return [*problems, "no migration in the script"]
    header = texts[: starts[0]]
    if not header or header[0] != ":on error exit\n:setvar FlpSqlcmd on":
        problems.append("the script must start with ':on error exit' and ':setvar FlpSqlcmd on'")
    for n, start in enumerate(starts):
        match = RUNNING.match(texts[start])
        step, source = f"{match[1]} {match[2] or 'base'} -> {match[3] or 'base'}", match[2]
        end = starts[n + 1] if n + 1 < len(starts) else len(texts)
        body = texts[start + 1 : end]
        at_source = f"version_num = '{source}'"
        applied = (
            "IF EXISTS (SELECT 1 FROM alembic_version) SET NOEXEC ON;"
            if not source
            else f"IF NOT EXISTS (SELECT 1 FROM alembic_version WHERE {at_source}) SET NOEXEC ON;"
        )
        if len(body) < 5:
            problems.append(f"{step}: too few batches for guards, transaction and its end")
            continue
        if not body[0].endswith(
            "IF N'$(FlpSqlcmd)' <> N'on' OR OBJECT_ID(N'alembic_version', N'U') IS NULL SET NOEXEC ON;"
        ):
            problems.append(f"{step}: the first batch after its comment is not the SQLCMD-mode guard")
        if body[1] != applied:
            problems.append(f"{step}: the second batch is not the guard {applied!r}")
        if body[2] != "BEGIN TRANSACTION;":
            problems.append(f"{step}: its transaction does not start right after the guards")
        if body[-2:] != ["COMMIT;", "SET NOEXEC OFF;"]:
            problems.append(f"{step}: it does not end with COMMIT; then SET NOEXEC OFF;")
        inner = body[3:-2]
        if any("NOEXEC" in t for t in inner):
            problems.append(f"{step}: a migration batch changes NOEXEC itself")
    return problems


@pytest.fixture(scope="module")
def mssql_scripts() -> dict[str, str]:
    return {
        "upgrade": migrate.script("mssql"),
        "upgrade from 0003": migrate.script("mssql", "0003"),
        "downgrade to base": migrate.script("mssql", downgrade_to="base"),
        "downgrade 0005 to 0002": migrate.script("mssql", "0005", downgrade_to="0002"),
    }


@pytest.mark.parametrize(
    "kind", ["upgrade", "upgrade from 0003", "downgrade to base", "downgrade 0005 to 0002"]
)
def test_every_migration_of_the_mssql_script_is_guarded_by_its_starting_revision(mssql_scripts, kind):
    script = mssql_scripts[kind]

    assert guard_problems(script) == []
    assert len(RUNNING.findall(script)) > 0


def test_a_migration_without_its_guard_is_reported(mssql_scripts):
    script = mssql_scripts["upgrade"]
    guard = "IF NOT EXISTS (SELECT 1 FROM alembic_version WHERE version_num = '0002') SET NOEXEC ON;"
    assert script.count(guard) == 1

    problems = guard_problems(script.replace(guard, "PRINT 'unguarded';"))

    assert problems == [f"upgrade 0002 -> 0003: the second batch is not the guard {guard!r}"]


def test_the_mssql_script_stops_at_the_first_error_and_refuses_a_foreign_start(mssql_scripts):
    script = mssql_scripts["upgrade from 0003"]

    assert script.startswith(":on error exit\n:setvar FlpSqlcmd on\n")
    assert "IF @FlpRevision NOT IN ('0003', '0004', '0005', '0006', '0007'" in script
    assert "THROW 50000, @FlpMessage, 1;" in script
    # From 0003 on, the version table exists already: no CREATE TABLE for it.
    assert "CREATE TABLE alembic_version" not in script
    assert (
        "IF N'$(FlpSqlcmd)' = N'on' AND OBJECT_ID(N'alembic_version', N'U') IS NULL\nCREATE TABLE"
        in (mssql_scripts["upgrade"])
    )


@pytest.mark.parametrize("kind", ["upgrade", "downgrade to base"])
def test_the_mssql_script_uses_no_sqlcmd_variable_but_its_own(mssql_scripts, kind):
    # sqlcmd replaces $(Name) everywhere, in procedure text too, and stops at an
    # undefined one; the script must run without -x (which would switch its guards off).
    assert set(re.findall(r"\$\([^)]*\)", mssql_scripts[kind])) == {"$(FlpSqlcmd)"}


def test_the_mssql_downgrade_drops_role_members_before_the_roles(mssql_scripts):
    script = mssql_scripts["downgrade to base"]

    foundation = script.index("-- Running downgrade 0001 -> ")
    drop_members = "ALTER ROLE ' + QUOTENAME(r.name) + N' DROP MEMBER ' + QUOTENAME(m.name)"
    members = script.index(drop_members, foundation)
    assert members < script.index("DROP ROLE flp_orchestrator;", foundation)
    assert "DELETE FROM alembic_version WHERE alembic_version.version_num = '0001';" in script


def test_the_mssql_downgrade_script_parses(mssql_scripts, tmp_path):
    path = tmp_path / "flp_mssql_downgrade.sql"
    text = sqlchecks.sqlcmd_commands_as_comments(mssql_scripts["downgrade to base"])
    path.write_text(text, encoding="utf-8")

    assert sqlchecks.unparsable_sections([path]) == []


def test_to_and_downgrade_to_together_are_refused():
    with pytest.raises(UsageError, match="--downgrade-to"):
        migrate.script("mssql", to_revision="0003", downgrade_to="0001")


def test_an_unknown_revision_is_refused_naming_it():
    with pytest.raises(UsageError, match="9999"):
        migrate.script("postgresql", "9999")


# ---------------------------------------------------------------------------
# PostgreSQL: the scripts executed by psql
# ---------------------------------------------------------------------------


def revision(url: str) -> list[tuple]:
    return rows(url, "SELECT version_num FROM public.alembic_version")


def test_a_script_from_another_revision_stops_before_changing_anything(empty_db_url, tmp_path):
    url = empty_db_url
    migrate.upgrade(url, "0002")
    before = catalog(url)
    script = tmp_path / "from_0003.sql"
    script.write_text(migrate.script("postgresql", "0003"), encoding="utf-8")

    result = run_psql_file(url, script)

    assert result.returncode != 0
    assert "the database is at revision '0002'" in result.stderr
    assert "expects one of 0003, 0004" in result.stderr
    assert catalog_diff(before, catalog(url)) == {}


def test_a_script_from_the_right_revision_upgrades_and_a_rerun_does_nothing(empty_db_url, db, tmp_path):
    url = empty_db_url
    migrate.upgrade(url, "0002")
    script = tmp_path / "from_0002.sql"
    script.write_text(migrate.script("postgresql", "0002"), encoding="utf-8")

    first = run_psql_file(url, script)
    assert first.returncode == 0, first.stderr
    assert catalog_diff(catalog(db.url), catalog(url)) == {}

    again = run_psql_file(url, script)
    assert again.returncode == 0, again.stderr
    assert catalog_diff(catalog(db.url), catalog(url)) == {}


def test_the_downgrade_script_matches_the_online_downgrade_and_is_rerunnable(empty_db_url, tmp_path):
    url = empty_db_url
    migrate.upgrade(url, "0003")
    at_0003 = catalog(url)
    migrate.upgrade(url)
    down = tmp_path / "down_0003.sql"
    down.write_text(migrate.script("postgresql", downgrade_to="0003"), encoding="utf-8")

    for _ in range(2):  # the second run finds every step done and skips it
        result = run_psql_file(url, down)
        assert result.returncode == 0, result.stderr
        assert catalog_diff(at_0003, catalog(url)) == {}

    to_base = tmp_path / "down_base.sql"
    to_base.write_text(migrate.script("postgresql", "0003", downgrade_to="base"), encoding="utf-8")
    for _ in range(2):
        result = run_psql_file(url, to_base)
        assert result.returncode == 0, result.stderr
        assert flp_schemas_present(url) == []
        assert revision(url) == []


# ---------------------------------------------------------------------------
# Downgrade to base with role members (online)
# ---------------------------------------------------------------------------


def test_downgrade_to_base_succeeds_when_the_roles_have_members(empty_db_url):
    url = empty_db_url
    member = f"flp_t_member_{uuid.uuid4().hex[:8]}"
    migrate.upgrade(url)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {member} NOLOGIN IN ROLE flp_orchestrator, flp_reader")
    try:
        migrate.downgrade(url, "base")

        assert flp_schemas_present(url) == []
        assert migrate.current(url) is None
    finally:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute(f"DROP ROLE {member}")


# ---------------------------------------------------------------------------
# The SQL Server driver the URLs name
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mssql://u:pw@sql1/FLP", "mssql+pyodbc://u:pw@sql1/FLP?driver=ODBC+Driver+18+for+SQL+Server"),
        ("mssql+pyodbc://u:pw@sql1/FLP?driver=FreeTDS", "mssql+pyodbc://u:pw@sql1/FLP?driver=FreeTDS"),
        ("mssql+pyodbc://", "mssql+pyodbc://"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_sql_server_urls_go_through_pyodbc(url, expected):
    assert sqlalchemy_url(url) == expected


# ---------------------------------------------------------------------------
# SQL Server test support: the reset before each contract test (tests/conftest.py)
# ---------------------------------------------------------------------------


def test_the_mssql_reset_procedure_parses_and_lints_clean():
    assert sqlchecks.lint_problems([MSSQL_RESET_SQL]) == []


def test_the_reset_restores_the_settings_a_fresh_migration_leaves(migrated_settings, db):
    fresh = rows(db.url, "SELECT JobName, Name, Value, Description FROM Ops.Setting ORDER BY JobName, Name")

    assert migrated_settings == fresh
    assert ("archive_aim", "RetentionDays", "0") in {s[:3] for s in migrated_settings}


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
def test_flp_db_script_prints_a_downgrade(capsys):
    assert cli.main(["db", "script", "--engine", "mssql", "--from", "0005", "--downgrade-to", "0003"]) == 0
    out = capsys.readouterr().out

    assert RUNNING.findall(out) == [("downgrade", "0005", "0004"), ("downgrade", "0004", "0003")]
    assert guard_problems(out) == []


@pytest.mark.usefixtures("restore_logging")
def test_flp_db_script_names_an_unknown_revision(capsys):
    assert cli.main(["db", "script", "--engine", "postgresql", "--downgrade-to", "9999"]) == 2
    assert "9999" in capsys.readouterr().err
