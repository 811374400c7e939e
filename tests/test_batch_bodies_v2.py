"""Version 2 of the batch bodies (issue 7): archive_aim_batch, session_purge_batch,
log_cleanup_batch (+ log_cleanup_batch_as_owner) and log_partitions_ensure.

What SQL Server alone would show (RCSI, IMPLICIT_TRANSACTIONS callers, a database
owner without a login, a drifted switch-out table, minutes-long low-priority
waits) is checked statically on the T-SQL with the gates in
tests/support/sqlchecks.py, each with a negative test on a small file. What
PostgreSQL can run is a test on a real database: ``contract_db`` where the test
needs only procedures and SQL both engines take, ``db`` where it needs
PostgreSQL's own tools (EXPLAIN, partitions, a transaction around a call).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from orchestrator.db import procedures
from orchestrator.db.files import SCHEMA_DIR
from orchestrator.db.urls import libpq_url
from orchestrator.jobs import JOBS
from orchestrator.runner import run_job
from tests.support import sqlchecks
from tests.support.sql import execute, fetch_all, scalar

MSSQL = procedures.PROCEDURES_DIR / "mssql"
POSTGRESQL = procedures.PROCEDURES_DIR / "postgresql"
# The routines of this change, at the versions migration 0005 applies.
BODIES = {
    "archive_aim_batch": 3,
    "session_purge_batch": 2,
    "log_partitions_ensure": 2,
    "log_cleanup_batch_as_owner": 2,
    "log_cleanup_batch": 2,
}
BATCH_PROCEDURES = (
    "archive_aim_batch",
    "session_purge_batch",
    "log_cleanup_batch",
    "log_cleanup_batch_as_owner",
)
DEFAULT_ONLY_MONTH = datetime(2023, 5, 1)  # no partition before 2024 on PostgreSQL: the default partition
EPOCH_0001 = datetime(1, 1, 1)
CLEANUP = JOBS["log_cleanup"]


def mssql_file(name: str) -> sqlchecks.Path:
    return MSSQL / f"{name}.v{BODIES[name]}.sql"


def postgresql_file(name: str) -> sqlchecks.Path:
    return POSTGRESQL / f"{name}.v{BODIES[name]}.sql"


def mine(engine: str = "mssql") -> list:
    return [(mssql_file if engine == "mssql" else postgresql_file)(name) for name in BODIES]


def code_of(path) -> str:
    """The file's SQL with comments and strings blanked (positions kept)."""
    return sqlchecks._blank_comments_and_strings(path.read_text(encoding="utf-8"))


def month_start(offset: int = 0) -> datetime:
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 1 + offset
    return datetime(index // 12, index % 12 + 1, 1)


def partition_name(month: datetime) -> str:
    return f"plsp.log_{month:%Y%m}"


def add_log_rows(db, start: datetime, count: int, step_ms: int = 1000) -> None:
    execute(
        db,
        "INSERT INTO PLSP.Log (LoggedUtc, Level, Source, Message) "
        "SELECT ?::timestamp + g * ? * INTERVAL '1 millisecond', 'INFO', 'test', 'row ' || g "
        "FROM generate_series(0, ? - 1) AS g",
        (start, step_ms, count),
    )


def no_pause(db) -> None:
    execute(db, "UPDATE Ops.Setting SET Value = '0' WHERE JobName = '*' AND Name = 'SleepFactor'")


def notes_and_rows(db, job_run_id: int) -> list[tuple[str, int]]:
    return fetch_all(
        db,
        "SELECT Note, RowsAffected FROM Ops.JobRunBatch WHERE JobRunId = ? ORDER BY BatchNo",
        (job_run_id,),
    )


def call_batch(conn, procedure: str, batch_size: int, execute_: str, position) -> tuple:
    """One call of a batch procedure on PostgreSQL: (position, rows, done, note)."""
    return conn.execute(
        f"CALL Job.{procedure}(%s, %s, %s, NULL, NULL, NULL)", (batch_size, execute_, position)
    ).fetchone()


# ------------------------------------------------------------------------------
# The files: versions, twins, the migration
# ------------------------------------------------------------------------------


# Versions later migrations apply instead of 0005's (the bodies checked here are the newest).
LATER = {
    ("archive_aim_batch", 3): "0014_ops_hardening.py",
    ("log_cleanup_batch_as_owner", 2): "0014_ops_hardening.py",
}


def test_every_body_has_its_version_on_both_engines_and_migration_0005_applies_it():
    versions = sqlchecks.REPO_ROOT / "db" / "migrations" / "versions"
    for name, version in BODIES.items():
        assert mssql_file(name).is_file() and postgresql_file(name).is_file(), name
        text = (versions / LATER.get((name, version), "0005_jobs_v2.py")).read_text(encoding="utf-8")
        assert f'("{name}", {version})' in text, name
    parity = sqlchecks.parity_problems(MSSQL, POSTGRESQL)
    assert [p for p in parity if any(name in p for name in BODIES)] == []


def test_the_tsql_bodies_parse_and_lint_clean():
    assert sqlchecks.lint_problems([*mine("mssql"), SCHEMA_DIR / "mssql" / "0005_jobs_v2.up.sql"]) == []


# ------------------------------------------------------------------------------
# 1. READPAST on RCSI databases
# ------------------------------------------------------------------------------


def test_every_readpast_has_a_locking_hint_beside_it():
    # Every T-SQL routine a database at head runs, whoever wrote it.
    problems = sqlchecks.readpast_problems(sqlchecks.latest_tsql_procedures())
    assert [p for p in problems if "without READCOMMITTEDLOCK" in p] == []


def test_every_readpast_of_the_bodies_says_why_in_a_comment():
    assert sqlchecks.readpast_problems(mine()) == []
    assert any("READPAST" in code_of(path) for path in mine())  # the rule is not vacuous


def test_a_bare_readpast_and_a_silent_one_are_reported(tmp_path):
    bare = tmp_path / "bare.sql"
    bare.write_text("SELECT 1 FROM PLSP.Session AS s WITH (ROWLOCK, READPAST);\n", encoding="utf-8")
    silent = tmp_path / "silent.sql"
    silent.write_text("SELECT 1\nFROM PLSP.Session AS s WITH (UPDLOCK, READPAST);\n", encoding="utf-8")

    problems = sqlchecks.readpast_problems([bare, silent])

    assert any(p.startswith(f"{bare}:1: READPAST without") for p in problems), problems
    assert any(p.startswith(f"{silent}:2: READPAST hint without a comment") for p in problems), problems
    assert not any(f"{silent}:2: READPAST without" in p for p in problems)


# ------------------------------------------------------------------------------
# 2. SET options on entry; 6/15. bounded lock waits
# ------------------------------------------------------------------------------


def test_the_bodies_set_implicit_transactions_off_and_low_deadlock_priority_on_entry():
    assert sqlchecks.set_on_entry_problems(mine()) == []


def test_a_missing_set_on_entry_is_reported(tmp_path):
    path = tmp_path / "p.sql"
    path.write_text(
        "CREATE OR ALTER PROCEDURE Job.p\nAS\nBEGIN\n    SET NOCOUNT, XACT_ABORT ON;\n"
        "    DECLARE @x int;\n    SET DEADLOCK_PRIORITY LOW;\nEND;\n",
        encoding="utf-8",
    )

    problems = sqlchecks.set_on_entry_problems([path])

    assert len(problems) == 2, problems
    assert any("IMPLICIT_TRANSACTIONS OFF" in p for p in problems)
    assert any("DEADLOCK_PRIORITY LOW" in p for p in problems)  # after the DECLARE: not on entry


def test_no_lock_wait_of_the_bodies_is_unbounded_or_counted_in_minutes():
    assert sqlchecks.unbounded_lock_wait_problems(mine()) == []
    for name in BODIES:
        if name != "log_partitions_ensure":  # it runs only inside log_cleanup_batch_as_owner
            code = code_of(mssql_file(name))
            assert (
                re.search(r"IF @@LOCK_TIMEOUT < 0\s+SET LOCK_TIMEOUT 1000;", code)
                or "EXEC Job.log_cleanup" in code
            )


def test_wait_forever_and_a_low_priority_wait_are_reported(tmp_path):
    path = tmp_path / "p.sql"
    path.write_text(
        "SET LOCK_TIMEOUT -1;\nEXEC sys.sp_executesql N'ALTER TABLE t SWITCH PARTITION 2 TO u PARTITION 2 "
        "WITH (WAIT_AT_LOW_PRIORITY (MAX_DURATION = 1 MINUTES, ABORT_AFTER_WAIT = SELF));';\n",
        encoding="utf-8",
    )

    problems = sqlchecks.unbounded_lock_wait_problems([path])

    assert [p.split(": ", 1)[0] for p in problems] == [f"{path}:1", f"{path}:2"], problems


def test_the_switch_tries_for_lock_wait_ms_without_queueing_like_postgresql():
    # 15: one meaning of LockWaitMs. SQL Server: LOCK_TIMEOUT 0 inside the SWITCH's
    # dynamic batch, again every 10 ms until LockWaitMs; PostgreSQL: NOWAIT, the same.
    tsql = mssql_file("log_cleanup_batch_as_owner").read_text(encoding="utf-8")
    switch = re.search(r"N'SET LOCK_TIMEOUT 0;\s+ALTER TABLE PLSP\.Log SWITCH PARTITION", tsql)
    assert switch, "the SWITCH is not asked for with LOCK_TIMEOUT 0"
    loop = tsql[tsql.rindex("WHILE @Switched = 0", 0, switch.start()) : switch.start() + 2000]
    assert "ERROR_NUMBER() <> 1222" in loop
    assert "DATEDIFF(MILLISECOND, @WaitStartedUtc, SYSUTCDATETIME()) >= @LockWaitMs" in loop
    assert "WAITFOR DELAY '00:00:00.010'" in loop
    assert "WAIT_AT_LOW_PRIORITY" not in code_of(mssql_file("log_cleanup_batch_as_owner"))
    pg = postgresql_file("log_cleanup_batch_as_owner").read_text(encoding="utf-8")
    assert "IN ACCESS EXCLUSIVE MODE NOWAIT" in pg and "v_LockWaitMs * INTERVAL '1 millisecond'" in pg
    assert "pg_sleep(0.01)" in pg


# ------------------------------------------------------------------------------
# 3. The database owner without a login
# ------------------------------------------------------------------------------


def test_the_owner_module_is_reached_only_through_the_owner_check():
    files = sqlchecks.latest_tsql_procedures()
    assert sqlchecks.execute_as_owner_problems(files) == []
    front = code_of(mssql_file("log_cleanup_batch"))
    assert "EXECUTE AS" not in front  # the check must run before any impersonation
    assert "EXEC Job.log_cleanup_batch_as_owner" in front
    text = mssql_file("log_cleanup_batch").read_text(encoding="utf-8")
    assert "ALTER AUTHORIZATION ON DATABASE::" in text and "SUSER_SNAME(d.owner_sid)" in text


def test_a_batch_procedure_running_as_owner_or_an_unchecked_caller_is_reported(tmp_path):
    owner = tmp_path / "x_batch.v1.sql"
    owner.write_text(
        "CREATE OR ALTER PROCEDURE Job.x_batch\n    @A int\nWITH EXECUTE AS OWNER\n"
        "AS\nBEGIN\n    SELECT 1;\nEND;\n",
        encoding="utf-8",
    )
    caller = tmp_path / "x.v1.sql"
    caller.write_text(
        "CREATE OR ALTER PROCEDURE Job.x\nAS\nBEGIN\n    EXEC Job.x_batch @A = 1;\nEND;\n", encoding="utf-8"
    )

    problems = sqlchecks.execute_as_owner_problems([owner, caller])

    assert any(p.startswith(f"{owner}: a batch procedure WITH EXECUTE AS OWNER") for p in problems), problems
    assert any(p.startswith(f"{caller}: calls Job.x_batch") for p in problems), problems


# ------------------------------------------------------------------------------
# 5. SWITCH target drift
# ------------------------------------------------------------------------------


def test_the_switch_compares_its_target_first_and_names_what_differs():
    assert sqlchecks.switch_target_check_problems(sqlchecks.latest_tsql_procedures()) == []
    text = mssql_file("log_cleanup_batch_as_owner").read_text(encoding="utf-8")
    check, switch = text.index("INSERT INTO @Shapes"), text.index("SWITCH PARTITION @PartitionNumber")
    assert check < text.index("THROW 50003, @Drift, 1;") < switch
    assert "has none like it" in text and "When the switch-out table drifts" in text


def test_a_switch_without_a_target_check_is_reported(tmp_path):
    path = tmp_path / "p.sql"
    path.write_text(
        "SELECT 1 FROM sys.indexes;\n"
        "EXEC sys.sp_executesql\n"
        "    N'ALTER TABLE PLSP.Log SWITCH PARTITION @n TO PLSP.Log_SwitchOut PARTITION @n;';\n",
        encoding="utf-8",
    )

    problems = sqlchecks.switch_target_check_problems([path])

    assert len(problems) == 1 and "is_included_column" in problems[0], problems


# ------------------------------------------------------------------------------
# 11. The archive's filtered index; the log clean-up's straggler keyset
# ------------------------------------------------------------------------------

ARCHIVE_PICK = "a.Id > {from_} AND a.Status = 2 AND a.DeliveredUtc < {cutoff}"


def test_the_tsql_archive_pick_seeks_the_filtered_index():
    # No plan can be shown here: the index exists in the schema, and the pick
    # filters on the literal Status = 2 its filter needs to match.
    schema = (SCHEMA_DIR / "mssql" / "0005_jobs_v2.up.sql").read_text(encoding="utf-8")
    assert re.search(
        r"^    N'CREATE NONCLUSTERED INDEX IX_FLP_AIM_Delivered ON PLSP\.FLP_AIM \(Id\) "
        r"INCLUDE \(DeliveredUtc\) WHERE Status = 2',$",
        schema,
        re.MULTILINE,
    )
    # Built ONLINE where the edition supports it (Enterprise/Developer, Azure SQL Database, Managed Instance).
    assert "CAST(SERVERPROPERTY('EngineEdition') AS int) IN (3, 5, 8) THEN N' WITH (ONLINE = ON)'" in schema
    assert "EXEC sys.sp_executesql @DeliveredIndexSql;" in schema
    tsql = mssql_file("archive_aim_batch").read_text(encoding="utf-8")
    assert ARCHIVE_PICK.format(from_="@FromId", cutoff="@CutoffUtc") in tsql
    assert "seek on IX_FLP_AIM_Delivered" in tsql
    down = (SCHEMA_DIR / "mssql" / "0005_jobs_v2.down.sql").read_text(encoding="utf-8")
    assert "DROP INDEX IX_FLP_AIM_Delivered ON PLSP.FLP_AIM;" in down


def explain(conn, sql: str, params=()) -> list[dict]:
    """The plan nodes of ``sql``, flattened."""
    (plan,) = conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    nodes, todo = [], [plan[0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo += node.get("Plans", [])
    return nodes


def test_the_postgresql_archive_pick_is_an_index_scan_on_the_partial_index(db):
    # 40,000 rows, one in twenty delivered long ago: the rest are what a
    # primary-key scan filtering Status would read and throw away.
    execute(
        db,
        "INSERT INTO PLSP.FLP_AIM (ForloebsplanId, Status, CreatedUtc, QueuedUtc, DeliveredUtc) "
        "SELECT g, CASE WHEN mod(g, 20) = 0 THEN 2 ELSE mod(g, 2) END, TIMESTAMP '2026-01-01', NULL, "
        "CASE WHEN mod(g, 20) = 0 THEN TIMESTAMP '2026-01-02' END FROM generate_series(1, 40000) AS g",
    )
    execute(db, "ANALYZE PLSP.FLP_AIM")
    pick = (
        "SELECT a.Id FROM PLSP.FLP_AIM AS a WHERE "
        + ARCHIVE_PICK.format(from_="{0}", cutoff="{1}")
        + " ORDER BY a.Id LIMIT {2}"
    )
    assert ARCHIVE_PICK.format(from_="v_FromId", cutoff="v_CutoffUtc") in postgresql_file(
        "archive_aim_batch"
    ).read_text(encoding="utf-8")
    with db.connect() as conn:
        custom = explain(conn, pick.format("%s", "%s", "%s"), (0, datetime(2026, 6, 1), 1000))
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE pick(bigint, timestamp, integer) AS {pick.format('$1', '$2', '$3')}")
        generic = explain(conn, "EXECUTE pick(0, '2026-06-01', 1000)")
    for plan in (custom, generic):
        scans = [n for n in plan if n.get("Relation Name") == "flp_aim"]
        assert [(n["Node Type"], n.get("Index Name")) for n in scans] in (
            [("Index Scan", "ix_flp_aim_delivered")],
            [("Index Only Scan", "ix_flp_aim_delivered")],
        ), scans


def test_the_tsql_straggler_delete_walks_a_keyset_in_key_order():
    code = code_of(mssql_file("log_cleanup_batch_as_owner"))
    assert "DELETE TOP" not in code  # v1 sought from the cutoff partition's start every batch
    step = code[code.index("WITH batch AS") : code.index("DELETE FROM batch")]
    assert "l.LoggedUtc >= @KeyFrom AND l.LoggedUtc < @Cutoff" in step
    assert "ORDER BY l.LoggedUtc, l.LogId" in step
    assert "SET @Position = -1 - DATEDIFF_BIG(MILLISECOND" in code


def test_the_straggler_keyset_moves_forward_oldest_first(db):
    # 25 old rows in the default partition, three sharing each second.
    add_log_rows(db, DEFAULT_ONLY_MONTH, 25, step_ms=333)
    rows = fetch_all(db, "SELECT LogId, LoggedUtc FROM PLSP.Log_Default ORDER BY LoggedUtc, LogId")
    with db.connect() as conn:
        position, deleted, done, note = call_batch(conn, "log_cleanup_batch", 10, "Y", -1)
        assert (deleted, done) == (10, False), note
        last = rows[9][1]
        assert position == -1 - round((last - EPOCH_0001).total_seconds() * 1000)
        left = fetch_all(db, "SELECT LogId FROM PLSP.Log_Default ORDER BY LoggedUtc, LogId")
        assert [r[0] for r in left] == [r[0] for r in rows[10:]]  # the ten oldest went
        # A row behind the keyset is not read again by the next batch: it seeks from the position.
        add_log_rows(db, DEFAULT_ONLY_MONTH - timedelta(days=1), 1)
        position, deleted, done, _ = call_batch(conn, "log_cleanup_batch", 10, "Y", position)
        assert (deleted, done) == (10, False)
        position, deleted, done, _ = call_batch(conn, "log_cleanup_batch", 10, "Y", position)
        assert (deleted, done) == (5, True)
    assert scalar(db, "SELECT count(*) FROM PLSP.Log_Default") == 1  # the late one, for the next run


def test_a_dry_run_counts_stragglers_exactly_in_keyset_batches(db):
    # 40 rows, ten sharing the millisecond at the first batch's end: each counted once.
    add_log_rows(db, DEFAULT_ONLY_MONTH, 30)
    add_log_rows(db, DEFAULT_ONLY_MONTH + timedelta(seconds=9), 10, step_ms=0)
    counted, position, done = 0, -1, False
    with db.connect() as conn:
        while not done:
            position, rows, done, _ = call_batch(conn, "log_cleanup_batch", 12, "N", position)
            counted += rows
    assert counted == 40
    assert scalar(db, "SELECT count(*) FROM PLSP.Log_Default") == 40


# ------------------------------------------------------------------------------
# 12. The clock at the batch, not the transaction's start (PostgreSQL)
# ------------------------------------------------------------------------------


def test_the_postgresql_bodies_never_read_now():
    for path in mine("postgresql"):
        assert not re.search(r"\bnow\(\)", code_of(path), re.IGNORECASE), path.name


def test_the_purge_takes_the_clock_at_the_batch_not_the_transactions_start(db):
    with psycopg.connect(libpq_url(db.url)) as conn:  # one transaction, like run_batched's after a sleep
        started = conn.execute("SELECT now() AT TIME ZONE 'UTC'").fetchone()[0]
        conn.execute(
            "INSERT INTO PLSP.Session (SessionId, UserRef, ExpiresUtc) VALUES (gen_random_uuid(), 'u', %s)",
            (started + timedelta(milliseconds=200),),
        )
        conn.execute("SELECT pg_sleep(0.4)")
        _, deleted, _, note = call_batch(conn, "session_purge_batch", 100, "Y", None)
        conn.rollback()
    assert deleted == 1, note  # expired by the clock, though not by now()


# ------------------------------------------------------------------------------
# 14. One month per step, counted as months on both engines
# ------------------------------------------------------------------------------


def test_ensure_creates_one_month_per_call_and_says_whether_more_are_missing(db):
    for offset in (1, 2, 3):
        execute(db, f"DROP TABLE {partition_name(month_start(offset))}")
    calls = []
    with db.connect() as conn:
        dry = conn.execute("CALL Job.log_partitions_ensure(12, 'N', 1000, NULL, NULL, NULL)").fetchone()
        for _ in range(4):
            calls.append(
                conn.execute("CALL Job.log_partitions_ensure(12, 'Y', 1000, NULL, NULL, NULL)").fetchone()
            )
    assert (dry[0], dry[2]) == (3, False)  # a dry run counts every missing month at once
    assert [(created, more) for created, _, more in calls] == [(1, True), (1, True), (1, False), (0, False)]
    assert calls[0][1].startswith(f"created {partition_name(month_start(1)).removeprefix('plsp.')}")
    assert calls[3][1] is None


def test_the_cleanup_catches_up_one_month_per_step_and_counts_months(db):
    no_pause(db)
    for offset in (1, 2, 3):
        execute(db, f"DROP TABLE {partition_name(month_start(offset))}")

    dry = run_job(db, CLEANUP, triggered_by="test", execute=False)
    result = run_job(db, CLEANUP, triggered_by="test")

    assert (dry.result, dry.rows) == ("dry_run", 3)
    assert (result.result, result.rows) == ("succeeded", 3)
    steps = notes_and_rows(db, result.job_run_id)
    assert [rows for _, rows in steps] == [1, 1, 1], steps  # one month a step, each its own transaction
    assert all(note.startswith("created log_") for note, _ in steps), steps


# ------------------------------------------------------------------------------
# 16. Twin divergences
# ------------------------------------------------------------------------------


def test_both_engines_count_catch_up_in_months_and_stragglers_in_the_same_order():
    # T-SQL version 1 walked boundaries 0 .. MonthsAhead + 1 (one more than
    # PostgreSQL's months); both now walk months 0 .. MonthsAhead.
    tsql = code_of(mssql_file("log_partitions_ensure"))
    pg = code_of(postgresql_file("log_partitions_ensure"))
    assert "WHILE @Offset <= @MonthsAhead\n" in tsql and "@MonthsAhead + 1" not in tsql
    assert "FOR v_Offset IN 0 .. p_MonthsAhead LOOP" in pg
    assert "ORDER BY l.LoggedUtc, l.LogId" in code_of(mssql_file("log_cleanup_batch_as_owner"))
    assert "ORDER BY x.LoggedUtc, x.LogId" in code_of(postgresql_file("log_cleanup_batch_as_owner"))


def test_a_large_month_is_reported_with_the_catalog_count_and_stragglers_exactly(db):
    # Version 2 of log_cleanup_batch_as_owner: a month of more than 10,000 rows is
    # not read to be counted (the step's time would grow with its rows); its note
    # says the number is the catalog's. Small months and stragglers: exact.
    no_pause(db)
    add_log_rows(db, month_start(-2), 12_345, step_ms=100)
    add_log_rows(db, month_start(-3), 1_000, step_ms=100)
    add_log_rows(db, DEFAULT_ONLY_MONTH, 10_001, step_ms=100)
    execute(db, "ANALYZE PLSP.Log")  # the catalog's count, as the nightly autovacuum leaves it

    dry = run_job(db, CLEANUP, triggered_by="test", execute=False)
    result = run_job(db, CLEANUP, triggered_by="test")

    assert dry.rows == result.rows == 12_345 + 1_000 + 10_001
    notes = [note for note, _ in notes_and_rows(db, result.job_run_id)]
    assert any(n.endswith("about 12345 rows (catalog count)") for n in notes), notes
    assert any(n.endswith("), 1000 rows") for n in notes), notes
    assert sum(
        r for n, r in notes_and_rows(db, result.job_run_id) if "Log_Default" in n or "straggler" in n
    ) in (
        0,
        10_001,
    )
    assert scalar(db, "SELECT count(*) FROM PLSP.Log WHERE LoggedUtc < ?", (month_start(0),)) == 0
    # Both engines: at most 10,001 rows read to decide, then the catalog.
    tsql = code_of(mssql_file("log_cleanup_batch_as_owner"))
    pg = postgresql_file("log_cleanup_batch_as_owner").read_text(encoding="utf-8")
    assert tsql.count("SELECT TOP (10001)") == 2 and "FROM sys.partitions AS p" in tsql
    assert "LIMIT 10001" in pg and "pg_stat_all_tables" in pg and "reltuples" in pg


@pytest.mark.parametrize("value", [" 200", "+5", ".5", "1e3", "200 "])
def test_a_lock_wait_setting_that_is_not_plain_digits_is_refused_naming_it(contract_db, value):
    db = contract_db
    old = scalar(db, "SELECT Value FROM Ops.Setting WHERE JobName = 'log_cleanup' AND Name = 'LockWaitMs'")
    try:
        execute(
            db,
            "UPDATE Ops.Setting SET Value = ? WHERE JobName = 'log_cleanup' AND Name = 'LockWaitMs'",
            (value,),
        )

        result = run_job(db, CLEANUP, triggered_by="test", execute=False)

        assert result.result == "failed"
        assert "Setting LockWaitMs (Ops.Setting, log_cleanup) must be a whole number" in result.error
    finally:
        execute(
            db,
            "UPDATE Ops.Setting SET Value = ? WHERE JobName = 'log_cleanup' AND Name = 'LockWaitMs'",
            (old,),
        )


@pytest.mark.parametrize("procedure", BATCH_PROCEDURES)
def test_an_over_long_execute_flag_is_refused_naming_the_parameter(db, procedure):
    # PostgreSQL passes 'YES' whole to a char(1) parameter; the check names it.
    # (SQL Server cuts it to 'Y' before the body runs: documented in each file.)
    with db.connect() as conn, pytest.raises(psycopg.Error, match="p_Execute"):
        call_batch(conn, procedure, 10, "YES", None)
    with db.connect() as conn, pytest.raises(psycopg.Error, match="p_Execute"):
        conn.execute("CALL Job.log_partitions_ensure(12, 'YES', 1000, NULL, NULL, NULL)")
    for name in BATCH_PROCEDURES:
        assert "'YES'" in mssql_file(name).read_text(encoding="utf-8"), name


@pytest.mark.parametrize("procedure", ("archive_aim_batch", "session_purge_batch", "log_cleanup_batch"))
def test_a_batch_over_4000_rows_is_refused_naming_the_parameter(contract_db, procedure):
    with (
        contract_db.connect() as conn,
        pytest.raises(Exception, match="BatchSize is not supported: give 1 to 4000"),
    ):
        contract_db.call(
            conn,
            f"Job.{procedure}",
            {"BatchSize": 4001, "Execute": "N"},
            ("Position", "Rows", "Done", "Note"),
        )
