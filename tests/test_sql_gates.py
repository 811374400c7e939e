"""Quality gates for the two-engine SQL: T-SQL parses and lints clean, every routine
has a twin with the same signature, released files never change, and the SQL
Server offline script is fit for ``sqlcmd -I -b``.

sqlfluff takes about 0.3 s a file, so the real T-SQL tree is linted in one run
per session (fixture ``tsql_lint``); negative tests use small temporary files.
"""

from __future__ import annotations

import re
import shutil

import pytest

from orchestrator.db import migrate, procedures
from tests.support import sqlchecks

MSSQL_DIR = procedures.PROCEDURES_DIR / "mssql"
POSTGRESQL_DIR = procedures.PROCEDURES_DIR / "postgresql"
# The foundation routines: released with the foundation, listed in RELEASED.sha256.
FOUNDATION = (
    "job_run_start",
    "job_run_finish",
    "job_run_fail",
    "job_batch_log",
    "batch_settings_get",
    "health_check",
    "run_batched",
)
# Sources of the negative tests on the real script: files other work cannot change.
RELEASED_MSSQL = [MSSQL_DIR / f"{name}.v1.sql" for name in FOUNDATION]
# A released routine with defaults and outputs: the base of the negative tests.
SAMPLE = "job_run_start.v1.sql"
SQLFLUFF_DEFAULT_SKIP_BYTES = 20_000  # sqlfluff skips larger files unless .sqlfluff says otherwise
OFFLINE_HEADER = "SET ANSI_NULLS ON;\nSET QUOTED_IDENTIFIER ON;\nGO\n"
PROCEDURE_BATCH = (
    "-- Job.probe, version 1.\nCREATE OR ALTER PROCEDURE Job.probe\nAS\nBEGIN\n    SELECT 1;\nEND;\n"
)


@pytest.fixture(scope="session")
def tsql_lint() -> list[str]:
    return sqlchecks.lint_problems(sqlchecks.TSQL_DIRS)


@pytest.fixture(scope="session")
def mssql_script() -> str:
    return migrate.script("mssql")


def replace_once(path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{path.name}: expected {old!r} exactly once"
    path.write_text(text.replace(old, new), encoding="utf-8")


# ---------------------------------------------------------------------------
# sqlfluff
# ---------------------------------------------------------------------------


def test_the_checked_tsql_folders_hold_the_foundation_files():
    # Guards the gates below against passing on empty folders.
    for name in FOUNDATION:
        assert (MSSQL_DIR / f"{name}.v1.sql").is_file()
    assert list(sqlchecks.TSQL_DIRS[1].glob("*.up.sql"))


def test_every_tsql_file_parses(tsql_lint):
    assert [p for p in tsql_lint if ": PRS " in p] == []


def test_every_tsql_file_lints_clean(tsql_lint):
    assert tsql_lint == []


def test_an_unparsable_section_is_reported_with_file_and_line(tmp_path):
    bad = tmp_path / "broken.sql"
    bad.write_text("SELECT 1;\nGO\nSELECT * FROM (;\nGO\n", encoding="utf-8")
    (tmp_path / "fine.sql").write_text("SELECT 1;\n", encoding="utf-8")

    problems = sqlchecks.unparsable_sections([tmp_path])

    assert len(problems) == 1
    assert problems[0].startswith(f"{bad.resolve()}:3:")


def test_a_file_over_sqlfluffs_default_size_limit_is_still_checked(tmp_path):
    big = tmp_path / "big.sql"
    # Comments make the bytes: cheap to lex, so the test stays fast.
    filler = f"-- {'x' * 97}\n" * (SQLFLUFF_DEFAULT_SKIP_BYTES // 100 + 1)
    big.write_text(filler + "SELECT * FROM (;\n", encoding="utf-8")
    assert big.stat().st_size > SQLFLUFF_DEFAULT_SKIP_BYTES

    problems = sqlchecks.unparsable_sections([big])

    assert len(problems) == 1
    assert problems[0].startswith(f"{big.resolve()}:{filler.count(chr(10)) + 1}:")


def test_lint_reports_rule_findings_and_unparsable_sections(tmp_path):
    (tmp_path / "style.sql").write_text("SELECT 1 AS One;\nselect 2 AS Two;\n", encoding="utf-8")
    (tmp_path / "broken.sql").write_text("SELECT * FROM (;\n", encoding="utf-8")

    problems = sqlchecks.lint_problems([tmp_path])

    assert any(": CP01 " in p and "style.sql:2:" in p for p in problems), problems
    assert any(": PRS " in p and "broken.sql:1:" in p for p in problems), problems


def test_a_missing_path_is_a_problem_not_a_pass(tmp_path):
    assert sqlchecks.lint_problems([tmp_path / "nowhere"]) == [
        f"{tmp_path / 'nowhere'}: no such file or folder"
    ]


# ---------------------------------------------------------------------------
# Twin parity
# ---------------------------------------------------------------------------


@pytest.fixture
def twins(tmp_path):
    """Copies of released routines on both engines, to be altered by a test.

    Released files only: they never change, so files other work adds to the real
    folders cannot disturb these tests.
    """
    mssql, postgresql = tmp_path / "mssql", tmp_path / "postgresql"
    for folder, source in ((mssql, MSSQL_DIR), (postgresql, POSTGRESQL_DIR)):
        folder.mkdir()
        for name in FOUNDATION:
            shutil.copy(source / f"{name}.v1.sql", folder)
    return mssql, postgresql


def test_the_real_procedure_folders_are_twins():
    assert sqlchecks.parity_problems(MSSQL_DIR, POSTGRESQL_DIR) == []


def test_unaltered_copies_are_twins(twins):
    assert sqlchecks.parity_problems(*twins) == []


@pytest.mark.parametrize("engine", ["mssql", "postgresql"])
def test_a_routine_without_its_twin_is_reported(twins, engine):
    mssql, postgresql = twins
    folder, other = (mssql, postgresql) if engine == "mssql" else (postgresql, mssql)
    (other / SAMPLE).unlink()

    problems = sqlchecks.parity_problems(mssql, postgresql)

    assert problems == [f"{folder / SAMPLE}: no twin {other / SAMPLE}"]


@pytest.mark.parametrize(
    ("engine", "old", "new", "reported"),
    [
        pytest.param(
            "postgresql", "p_TriggeredBy varchar", "p_Trigger varchar", "name or order", id="renamed"
        ),
        pytest.param(
            "mssql",
            "    @TriggeredBy varchar(20) = 'manual',\n    @Host nvarchar(128) = NULL,\n",
            "    @Host nvarchar(128) = NULL,\n    @TriggeredBy varchar(20) = 'manual',\n",
            "name or order",
            id="reordered",
        ),
        pytest.param("postgresql", "DEFAULT 'manual'", "DEFAULT 'agent'", "default 'manual'", id="default"),
        pytest.param("mssql", "= 'manual'", "= 'Manual'", "default 'Manual'", id="default-case"),
        pytest.param(
            "postgresql", "p_Host varchar(128) DEFAULT NULL", "p_Host varchar(128)", "default", id="required"
        ),
        pytest.param("postgresql", "INOUT p_Result", "p_Result", "output in T-SQL but input", id="direction"),
        pytest.param(
            "mssql", "@JobRunId bigint = NULL OUTPUT", "@JobRunId bigint = NULL", "input", id="direction2"
        ),
        pytest.param(
            "postgresql", "PROCEDURE Job.job_run_start", "PROCEDURE Api.job_run_start", "schema", id="schema"
        ),
        pytest.param("postgresql", "p_JobName varchar(100)", "p_JobName integer", "type INT", id="type"),
        pytest.param("postgresql", "p_JobName varchar(100)", "p_JobName varchar(50)", "size", id="size"),
    ],
)
def test_a_signature_difference_is_reported(twins, engine, old, new, reported):
    mssql, postgresql = twins
    replace_once((mssql if engine == "mssql" else postgresql) / SAMPLE, old, new)

    problems = sqlchecks.parity_problems(mssql, postgresql)

    assert problems, "the alteration went unnoticed"
    assert all(p.startswith(f"{SAMPLE} (mssql vs postgresql)") for p in problems), problems
    assert any(reported in p for p in problems), problems


def test_a_procedure_turned_function_is_reported(twins):
    mssql, postgresql = twins
    replace_once(
        postgresql / "health_check.v1.sql",
        "CREATE PROCEDURE Job.health_check",
        "CREATE FUNCTION Job.health_check",
    )

    problems = sqlchecks.parity_problems(mssql, postgresql)

    assert any("a procedure in T-SQL but a function in PostgreSQL" in p for p in problems), problems


# ---------------------------------------------------------------------------
# Released files
# ---------------------------------------------------------------------------


def test_released_procedure_files_are_unchanged():
    assert sqlchecks.released_changes(procedures.PROCEDURES_DIR, sqlchecks.RELEASED_MANIFEST) == []


def test_the_foundation_routines_are_released_on_both_engines():
    listed = {
        line.split()[1]
        for line in sqlchecks.RELEASED_MANIFEST.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    expected = {f"{engine}/{name}.v1.sql" for engine in procedures.ENGINES for name in FOUNDATION}
    assert expected <= listed


@pytest.fixture
def released(tmp_path):
    """A copy of db/procedures with its manifest."""
    root = tmp_path / "procedures"
    shutil.copytree(procedures.PROCEDURES_DIR, root)
    return root, root / sqlchecks.RELEASED_MANIFEST.name


def test_a_changed_released_file_is_reported(released):
    root, manifest = released
    with (root / "postgresql" / SAMPLE).open("a", encoding="utf-8") as f:
        f.write("-- a harmless-looking comment is still a change\n")

    problems = sqlchecks.released_changes(root, manifest)

    assert len(problems) == 1
    assert problems[0].startswith(f"{root / 'postgresql' / SAMPLE}: released")
    assert "changed" in problems[0]


def test_a_deleted_released_file_is_reported(released):
    root, manifest = released
    (root / "mssql" / SAMPLE).unlink()

    problems = sqlchecks.released_changes(root, manifest)

    assert len(problems) == 1 and "missing" in problems[0]


def test_an_unreleased_file_may_change(released):
    root, manifest = released
    (root / "mssql" / "draft_routine.v1.sql").write_text("-- work in progress\n", encoding="utf-8")

    assert sqlchecks.released_changes(root, manifest) == []


def test_a_malformed_or_one_sided_manifest_line_is_reported(released):
    root, manifest = released
    text = manifest.read_text(encoding="utf-8")
    twin_line = next(line for line in text.splitlines() if line.endswith(f"postgresql/{SAMPLE}"))
    manifest.write_text(text.replace(twin_line + "\n", "") + "not a manifest line\n", encoding="utf-8")

    problems = sqlchecks.released_changes(root, manifest)

    assert len(problems) == 2, problems
    assert any("not '<sha256>  <engine>/<file>'" in p for p in problems)
    assert any(f"its twin postgresql/{SAMPLE} is not" in p for p in problems)


# ---------------------------------------------------------------------------
# The SQL Server offline script
# ---------------------------------------------------------------------------


def test_the_mssql_offline_script_is_fit_for_sqlcmd(mssql_script):
    assert sqlchecks.offline_script_problems(mssql_script) == []


def test_the_mssql_offline_script_parses(mssql_script, tmp_path):
    # The files' own text is parsed by the lint gate; here the glue around it.
    glue = sqlchecks.script_glue(mssql_script)
    assert glue.count("SELECT 1;") >= len(sqlchecks.default_offline_sources())
    script = tmp_path / "flp_mssql.sql"
    script.write_text(sqlchecks.sqlcmd_commands_as_comments(glue), encoding="utf-8")

    assert sqlchecks.unparsable_sections([script]) == []


def test_a_minimal_script_passes():
    assert sqlchecks.offline_script_problems(OFFLINE_HEADER + PROCEDURE_BATCH + "GO\n", sources=[]) == []


def test_a_script_without_the_header_is_reported():
    problems = sqlchecks.offline_script_problems(
        "SET ANSI_NULLS ON;\nGO\n" + PROCEDURE_BATCH + "GO\n", sources=[]
    )

    assert len(problems) == 1 and "must start with the batch" in problems[0]


def test_a_create_procedure_after_another_statement_in_its_batch_is_reported():
    script = OFFLINE_HEADER + "BEGIN TRANSACTION;\n\n" + PROCEDURE_BATCH + "GO\n"

    problems = sqlchecks.offline_script_problems(script, sources=[])

    assert problems == [
        "line 7: CREATE PROCEDURE Job.probe is not the first statement of its batch "
        "(a GO is missing before it)"
    ]


def test_create_procedure_in_a_comment_or_string_is_not_a_statement():
    batch = (
        "-- CREATE PROCEDURE in a comment\nPRINT 'x';\n"
        "EXEC sys.sp_executesql N'CREATE PROCEDURE Job.y AS SELECT 1';\n/* CREATE VIEW v */\n"
    )
    assert sqlchecks.offline_script_problems(OFFLINE_HEADER + batch + "GO\n", sources=[]) == []


def test_a_script_whose_last_batch_has_no_go_is_reported():
    problems = sqlchecks.offline_script_problems(OFFLINE_HEADER + PROCEDURE_BATCH, sources=[])

    assert problems == ["line 4: the last batch does not end with GO"]


def test_alembics_comment_inside_a_procedure_batch_is_reported():
    script = OFFLINE_HEADER + "-- Running upgrade 0001 -> 0002\n\n" + PROCEDURE_BATCH + "GO\n"

    problems = sqlchecks.offline_script_problems(script, sources=[])

    assert len(problems) == 1 and "'-- Running upgrade' comment is in the batch" in problems[0]


def test_a_missing_go_in_the_real_script_is_reported(mssql_script):
    create = mssql_script.index("CREATE OR ALTER PROCEDURE Job.job_run_finish")
    go = mssql_script.rindex("\nGO\n", 0, create)
    broken = mssql_script[:go] + "\n" + mssql_script[go + len("\nGO\n") :]

    problems = sqlchecks.offline_script_problems(broken, sources=RELEASED_MSSQL)

    assert len(problems) == 1
    assert "CREATE PROCEDURE Job.job_run_finish is not the first statement of its batch" in problems[0]


def test_procedure_text_changed_on_the_way_into_the_script_is_reported(mssql_script):
    # What Alembic does to an unescaped :name in offline mode.
    time_literal = re.search(r"'00:00:00\.\d+'", mssql_script)
    assert time_literal, "run_batched's WAITFOR DELAY literal was the probe; pick another"
    broken = mssql_script.replace(time_literal[0], "'00NULL:00.250'", 1)

    problems = sqlchecks.offline_script_problems(broken, sources=RELEASED_MSSQL)

    assert len(problems) == 1
    assert problems[0].startswith(f"{MSSQL_DIR / 'run_batched.v1.sql'}: 1 part(s) not in the script verbatim")


# ---------------------------------------------------------------------------
# Issue 7, the batch engine: static rules on the T-SQL a database at head runs
# (no SQL Server engine runs here). The READPAST rule over every file is in
# tests/test_batch_bodies_v2.py.
# ---------------------------------------------------------------------------

IMPLICIT_TRANSACTIONS_OFF = r"SET\s+IMPLICIT_TRANSACTIONS\s+OFF"


def newest_mssql(name: str):
    return MSSQL_DIR / f"{name}.v{max(procedures.versions('mssql')[name])}.sql"


def test_every_job_and_batch_procedure_sets_implicit_transactions_off_on_entry():
    from orchestrator.jobs import JOBS

    found = procedures.versions("mssql")
    names = {job.procedure.split(".")[-1] for job in JOBS.values()} | {"run_batched"}
    names |= {name for name in found if name.endswith("_batch")}
    files = [newest_mssql(name) for name in sorted(names)]
    assert {"archive_aim", "run_batched", "archive_aim_batch"} <= {f.name.split(".v")[0] for f in files}

    assert sqlchecks.set_on_entry_problems(files, required=[IMPLICIT_TRANSACTIONS_OFF]) == []


def test_the_engine_bounds_each_batchs_lock_waits_and_retries_deadlock_victims():
    assert sqlchecks.engine_lock_problems(newest_mssql("run_batched")) == []


def test_an_engine_without_lock_timeout_or_deadlock_handling_is_reported():
    problems = sqlchecks.engine_lock_problems(MSSQL_DIR / "run_batched.v1.sql")

    assert len(problems) == 4, problems
    assert any("SET LOCK_TIMEOUT" in p for p in problems) and any("1205" in p for p in problems)


def test_job_locks_are_taken_under_the_orchestrators_principal():
    newest = sqlchecks.latest_tsql_procedures()
    assert sqlchecks.applock_principal_problems(newest) == []
    calls = [p for p in newest if "sp_getapplock" in p.read_text(encoding="utf-8")]
    assert newest_mssql("job_run_start") in calls  # the rule is not vacuous


def test_an_applock_under_public_or_without_a_principal_is_reported(tmp_path):
    bare = tmp_path / "bare.sql"
    bare.write_text(
        "EXEC @r = sys.sp_getapplock @Resource = N'x', @LockMode = 'Exclusive', @LockOwner = 'Session';\n",
        encoding="utf-8",
    )

    problems = sqlchecks.applock_principal_problems([MSSQL_DIR / "job_run_start.v1.sql", bare])

    assert any("job_run_start.v1.sql" in p and "under the public principal" in p for p in problems), problems
    assert any(p.startswith(f"{bare}:1: sp_getapplock without the principal") for p in problems), problems


@pytest.fixture(scope="session")
def mssql_downgrade_to_0003() -> str:
    return migrate.script("mssql", downgrade_to="0003")


def test_every_migration_re_signs_health_check_after_re_creating_it(mssql_script, mssql_downgrade_to_0003):
    assert sqlchecks.signature_problems(mssql_script) == []
    assert sqlchecks.signature_problems(mssql_downgrade_to_0003) == []
    # Not vacuous: 0004 re-creates the procedure both ways, and signs it.
    for script in (mssql_script, mssql_downgrade_to_0003):
        assert "CREATE OR ALTER PROCEDURE Job.health_check" in script
        assert "ADD SIGNATURE TO Job.health_check BY CERTIFICATE FlpHealthCheckSigner" in script
    assert (
        "IF NOT EXISTS (SELECT 1 FROM sys.certificates WHERE name = N'FlpHealthCheckSigner')" in mssql_script
    )


def test_a_migration_that_re_creates_health_check_without_signing_it_is_reported(mssql_script):
    unsigned = mssql_script.replace(
        "ADD SIGNATURE TO Job.health_check BY CERTIFICATE FlpHealthCheckSigner", "SELECT 1"
    )

    problems = sqlchecks.signature_problems(unsigned)

    assert problems == [
        "upgrade 0003 -> 0004: CREATE OR ALTER Job.health_check is not followed by "
        "ADD SIGNATURE TO Job.health_check BY CERTIFICATE FlpHealthCheckSigner"
    ]


def test_the_health_gate_counts_this_databases_lock_waits_and_accepts_performance_state():
    text = newest_mssql("health_check").read_text(encoding="utf-8")
    code = sqlchecks._blank_comments_and_strings(text)
    for part in ("r.database_id = DB_ID()", "r.blocking_session_id > 0", "r.session_id <> @@SPID"):
        assert part in code, part
    for literal in ("LCK[_]M[_]%", "WAITFOR", "BROKER_RECEIVE_WAITFOR", "VIEW SERVER PERFORMANCE STATE"):
        assert f"'{literal}'" in text, literal
    assert "FlpHealthCheckSigner" in text.split("CREATE OR ALTER")[0]  # signing is the documented default


def test_the_batch_size_cap_is_4000_and_says_why():
    text = newest_mssql("batch_settings_get").read_text(encoding="utf-8")
    assert "@BatchSizeMax > 4000" in text
    assert "lock escalation" in text.split("CREATE OR ALTER")[0]
