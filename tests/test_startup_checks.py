"""Start-up checks (Job.startup_check): one line per check, a failed check names itself.

PostgreSQL runs them; the T-SQL twin is checked statically (no SQL Server here):
it checks each item the SQL Server review asks for, in the same order as the twin.
"""

from __future__ import annotations

import re

import pytest

from orchestrator.db import procedures, startup
from tests.support.sql import execute, scalar

CHECKS_IN_ORDER = {
    "mssql": [
        "EngineVersion",
        "EngineEdition",
        "CompatibilityLevel",
        "SetOptions",
        "ProcedureSetOptions",
        "ReadCommittedSnapshot",
        "DatabaseOwner",
    ],
    "postgresql": [
        "EngineVersion",
        "EngineEdition",
        "DatabaseEncoding",
        "SetOptions",
        "ProcedureSetOptions",
        "ReadCommittedSnapshot",
        "DatabaseOwner",
    ],
}


def newest_text(engine: str) -> str:
    name = "startup_check"
    return procedures.read(engine, name, max(procedures.versions(engine)[name]))


def test_a_healthy_database_passes_every_check_and_reports_each_once(db):
    checks = startup.require(db)

    assert [c.name for c in checks] == CHECKS_IN_ORDER["postgresql"]
    assert [c.status for c in checks if c.failed] == []
    assert all(c.status in ("ok", "info") and c.detail for c in checks)
    version = next(c for c in checks if c.name == "EngineVersion")
    assert version.detail.startswith("PostgreSQL ")


def test_a_failed_check_names_itself_in_the_report_and_in_the_error(db):
    # A SECURITY DEFINER routine without a fixed search_path: ProcedureSetOptions fails.
    execute(
        db,
        "CREATE FUNCTION Job.t_unsafe() RETURNS integer LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
    )

    checks = startup.run_checks(db)

    failed = [c for c in checks if c.failed]
    assert [c.name for c in failed] == ["ProcedureSetOptions"]
    assert "job.t_unsafe" in failed[0].detail
    with pytest.raises(startup.StartupCheckFailed, match=r"ProcedureSetOptions: .*job\.t_unsafe") as raised:
        startup.require(db)
    assert raised.value.failed == failed


def test_the_procedure_raises_one_error_listing_the_failed_checks_by_default(db):
    execute(
        db,
        "CREATE FUNCTION Job.t_unsafe() RETURNS integer LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
    )
    with db.connect() as conn, pytest.raises(Exception, match=r"1 check\(s\) failed: ProcedureSetOptions"):
        db.call(conn, "Job.startup_check", {}, ("Failed", "Report"))


def test_the_report_counts_the_failed_lines(db):
    with db.connect() as conn:
        out = db.call(conn, "Job.startup_check", {"RaiseOnFailure": "N"}, ("Failed", "Report"))
    assert out["Failed"] == 0
    assert len(out["Report"].splitlines()) == len(CHECKS_IN_ORDER["postgresql"])


def test_a_bad_parameter_is_refused_naming_it(db):
    with db.connect() as conn, pytest.raises(Exception, match="RaiseOnFailure"):
        db.call(conn, "Job.startup_check", {"RaiseOnFailure": "X"}, ("Failed", "Report"))


def test_the_orchestrator_role_may_run_the_checks(db):
    assert scalar(
        db,
        "SELECT has_function_privilege('flp_orchestrator', 'job.startup_check(character, integer, text)', "
        "'EXECUTE')",
    )


def test_parse_report_reads_each_line():
    report = "ok EngineVersion: SQL Server 16.0\nFAILED DatabaseOwner: no login: ALTER AUTHORIZATION"
    assert startup.parse_report(report) == [
        startup.Check("ok", "EngineVersion", "SQL Server 16.0"),
        startup.Check("FAILED", "DatabaseOwner", "no login: ALTER AUTHORIZATION"),
    ]


# ---------------------------------------------------------------------------
# The T-SQL twin, statically
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("engine", procedures.ENGINES)
def test_each_engine_checks_the_same_steps_in_the_same_order(engine):
    body = (
        newest_text(engine).split("AS\n", 1)[1] if engine == "mssql" else newest_text(engine).split("$$")[1]
    )
    found = [
        m for m in re.findall(r"^ *-- ([A-Z][A-Za-z]+)\b", body, re.MULTILINE) if m in CHECKS_IN_ORDER[engine]
    ]
    assert found == CHECKS_IN_ORDER[engine]


@pytest.mark.parametrize(
    "needle",
    [
        "SERVERPROPERTY('ProductMajorVersion')",
        "SERVERPROPERTY('EngineEdition')",
        "d.compatibility_level",
        "SESSIONPROPERTY('ANSI_NULLS')",
        "SESSIONPROPERTY('QUOTED_IDENTIFIER')",
        "SESSIONPROPERTY('ARITHABORT')",
        "SESSIONPROPERTY('NUMERIC_ROUNDABORT')",
        "m.uses_quoted_identifier = 0",
        "d.is_read_committed_snapshot_on",
        "SUSER_SNAME(@OwnerSid)",
        "ALTER AUTHORIZATION ON DATABASE::",
    ],
)
def test_the_tsql_checks_read_what_the_review_names(needle):
    assert needle in newest_text("mssql")


def test_the_tsql_twin_reports_rcsi_without_failing_on_either_setting():
    text = newest_text("mssql")
    rcsi = text[text.index("-- ReadCommittedSnapshot (") : text.index("-- DatabaseOwner\n")]
    assert "'info'" in rcsi and "FAILED" not in rcsi


def test_every_tsql_check_names_itself_in_its_line():
    text = newest_text("mssql")
    for name in CHECKS_IN_ORDER["mssql"]:
        assert f"'{name}'," in text, name
