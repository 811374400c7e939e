"""Archive AIM: delivered FLP_AIM rows move to FLP_AIM_History, nothing else, never half.

The helpers live in tests/support/archive.py, shared with tests/test_batch_engine.py.
"""

from __future__ import annotations

import random
import re
import time
from datetime import timedelta

import pytest

from orchestrator.db import migrate
from tests.support.archive import (
    BATCH_OUT,
    COPY_TO_HISTORY,
    DELIVERED_OLD,
    DELIVERED_YOUNG,
    DOCUMENTED_PSQL_DRY_RUN,
    DOCUMENTED_PSQL_RUN,
    JOB_LOCK_FILTER,
    LOCK_WAIT_SECONDS,
    PENDING,
    QUEUED,
    RETENTION_DAYS,
    JobThread,
    admin,
    aim_rows,
    assert_conserved,
    batches,
    job_backend_pid,
    kill_context,
    load_aim,
    may_go,
    run,
    set_setting,
    set_settings,
    slow_down_batches,
    utc_now,
    wait_for,
)
from tests.support.paths import REPO_ROOT
from tests.support.sql import execute, fetch_all, fetch_one, scalar


def test_moves_exactly_the_delivered_rows_older_than_the_retention(contract_db):
    db = contract_db
    set_setting(db, "RetentionDays", str(RETENTION_DAYS))
    expected = load_aim(db, 60)
    original = aim_rows(db)
    go = may_go(original, utc_now())
    assert len(go) == expected == 20

    result = run(db)

    assert (result.result, result.rows) == ("succeeded", expected)
    hot, history = assert_conserved(db, original)
    assert history == go
    assert {original[i][2] for i in hot} == {0, 1, 2}  # pending, queued, young or undated stay
    archived = fetch_all(db, "SELECT ArchivedUtc FROM PLSP.FLP_AIM_History")
    assert all(a is not None for (a,) in archived)
    run_row = "SELECT Status, RowsAffected FROM Ops.JobRun WHERE JobRunId = ?"
    assert fetch_one(db, run_row, (result.job_run_id,)) == ("succeeded", expected)


def test_retention_zero_moves_every_delivered_row_with_a_time(db):
    set_setting(db, "RetentionDays", "0")
    load_aim(db, 60)
    original = aim_rows(db)

    result = run(db)

    _, history = assert_conserved(db, original)
    assert history == {i for i, r in original.items() if r[2] == 2 and r[5] is not None}
    assert result.rows == len(history) == 30


def test_dry_run_writes_nothing_and_counts_what_a_real_run_then_moves(contract_db):
    db = contract_db
    set_setting(db, "RetentionDays", str(RETENTION_DAYS))
    set_settings(db, BatchSizeStart=7, BatchSizeMin=5)  # several batches
    expected = load_aim(db, 90)
    original = aim_rows(db)

    dry = run(db, execute=False)

    assert (dry.result, dry.rows, dry.job_run_id) == ("dry_run", expected, None)
    assert aim_rows(db) == original
    assert scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM_History") == 0
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun") == 0
    assert scalar(db, "SELECT count(*) FROM Ops.JobRunBatch") == 0

    real = run(db)

    assert (real.result, real.rows) == ("succeeded", dry.rows)


def test_nothing_to_do_runs_no_batch_and_says_so(contract_db):
    # What "nothing to do" costs is the benchmark's business (bench/bench_archive.py);
    # here: the probe finds no row, so no batch runs and nothing moves. A wall-clock
    # bound failed on a loaded machine without anything being wrong.
    db = contract_db
    load_aim(db, 300, kinds=(PENDING, QUEUED, DELIVERED_YOUNG))
    set_setting(db, "RetentionDays", str(RETENTION_DAYS))

    result = run(db)

    assert (result.result, result.rows) == ("succeeded", 0)
    message, started, ended = fetch_one(
        db, "SELECT Message, StartedUtc, EndedUtc FROM Ops.JobRun WHERE JobRunId = ?", (result.job_run_id,)
    )
    assert message == "0 batches; nothing to do"
    assert started <= ended
    assert scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM_History") == 0
    assert scalar(db, "SELECT count(*) FROM Ops.JobRunBatch") == 0


def test_documented_psql_calls_work(db):
    doc = (REPO_ROOT / "docs" / "jobs" / "archive_aim.md").read_text(encoding="utf-8")
    assert DOCUMENTED_PSQL_DRY_RUN in doc and DOCUMENTED_PSQL_RUN in doc
    load_aim(db, 12)
    with db.connect() as conn:
        dry = conn.execute(DOCUMENTED_PSQL_DRY_RUN).fetchone()
        real = conn.execute(DOCUMENTED_PSQL_RUN).fetchone()
    assert dry == (None, "dry_run", 6)
    assert real == (1, "succeeded", 6)
    assert scalar(db, "SELECT TriggeredBy FROM Ops.JobRun WHERE JobRunId = 1") == "manual"


# ------------------------------------------------------------------------------
# The batch procedure's contract
# ------------------------------------------------------------------------------


def call_batch(db, conn, size: int, execute_flag: str, position: int | None) -> dict:
    params = {"BatchSize": size, "Execute": execute_flag}
    if db.kind == "postgresql":
        with conn.cursor() as cur:
            cur.execute(
                "CALL Job.archive_aim_batch(p_BatchSize => %s, p_Execute => %s, p_Position => %s)",
                (size, execute_flag, position),
            )
            return dict(zip(BATCH_OUT, cur.fetchone(), strict=True))
    cur = conn.cursor()
    try:
        cur.execute(
            "SET NOCOUNT ON; DECLARE @p bigint = ?, @r int, @d bit, @n nvarchar(400); "
            "EXEC Job.archive_aim_batch @BatchSize = ?, @Execute = ?, @Position = @p OUTPUT, "
            "@Rows = @r OUTPUT, @Done = @d OUTPUT, @Note = @n OUTPUT; SELECT @p, @r, @d, @n;",
            (position, *params.values()),
        )
        return dict(zip(BATCH_OUT, cur.fetchone(), strict=True))
    finally:
        cur.close()


def test_batch_walks_the_key_upward_and_says_when_it_is_done(contract_db):
    db = contract_db
    set_setting(db, "RetentionDays", str(RETENTION_DAYS))
    load_aim(db, 30)  # ten rows may go
    go = sorted(may_go(aim_rows(db), utc_now()))
    with db.connect() as conn:
        counted = call_batch(db, conn, 4, "N", None)
        assert (counted["Position"], counted["Rows"], bool(counted["Done"])) == (go[3], 4, False)
        assert counted["Note"] == f"Id 1..{go[3]}: would move 4"
        assert scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM_History") == 0

        first = call_batch(db, conn, 4, "Y", None)
        assert (first["Position"], first["Rows"], bool(first["Done"])) == (go[3], 4, False)
        second = call_batch(db, conn, 4, "Y", first["Position"])
        assert (second["Position"], second["Rows"], bool(second["Done"])) == (go[7], 4, False)
        last = call_batch(db, conn, 4, "Y", second["Position"])
        assert (last["Position"], last["Rows"], bool(last["Done"])) == (go[9], 2, True)
        after = call_batch(db, conn, 4, "Y", last["Position"])
        assert (after["Position"], after["Rows"], bool(after["Done"])) == (go[9], 0, True)
        assert after["Note"] == f"no rows to move after Id {go[9]}"
    assert sorted(aim_rows(db, "PLSP.FLP_AIM_History")) == go


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"BatchSize": 0, "Execute": "Y"}, "BatchSize"),
        ({"BatchSize": 5000, "Execute": "Y"}, "BatchSize"),
        ({"BatchSize": 10, "Execute": "X"}, "Execute"),
        ({"BatchSize": 10, "Execute": "Y", "Position": -1}, "Position"),
    ],
)
def test_batch_refuses_bad_parameters_naming_them(contract_db, params, named):
    db = contract_db
    load_aim(db, 12)
    outputs = tuple(o for o in BATCH_OUT if o not in params)
    with db.connect() as conn, pytest.raises(Exception, match=named):
        db.call(conn, "Job.archive_aim_batch", params, outputs)
    assert scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM_History") == 0


@pytest.mark.parametrize("value", ["-1", "seven", "", "99999"])
def test_malformed_retention_stops_the_job_naming_the_setting(contract_db, value):
    db = contract_db
    load_aim(db, 12)
    set_setting(db, "RetentionDays", value)
    try:
        result = run(db)

        assert result.result == "failed"
        assert "RetentionDays" in result.error
        assert scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM_History") == 0
        assert fetch_one(db, "SELECT Status FROM Ops.JobRun") == ("failed",)
    finally:
        set_setting(db, "RetentionDays", "0")  # the migrated value, even when an assertion failed
    assert run(db).result == "succeeded"  # the lock was freed


# ------------------------------------------------------------------------------
# Concurrency
# ------------------------------------------------------------------------------


def test_second_concurrent_run_is_refused_with_already_running(db):
    set_setting(db, "RetentionDays", str(RETENTION_DAYS))
    expected = load_aim(db, 600)
    set_settings(db, BatchSizeStart=20, BatchSizeMin=20, BatchSizeMax=20, SleepFactor=5)
    slow_down_batches(db, 20)  # a run takes 10 batches of at least 120 ms
    first = JobThread(db)
    with admin(db) as conn:
        first.start()
        wait_for(lambda: job_backend_pid(conn) is not None, "the first run to take the lock")

        second = run(db)

        assert second.result == "already_running"
        status = "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?"
        assert scalar(db, status, (second.job_run_id,)) == "skipped"
        set_settings(db, SleepFactor=0, BatchSizeMax=4000)
        first.join(LOCK_WAIT_SECONDS)
    assert first.error is None
    assert (first.result.result, first.result.rows) == ("succeeded", expected)


def test_rows_locked_by_another_session_are_skipped_not_waited_for_nor_moved_half(db):
    set_setting(db, "RetentionDays", str(RETENTION_DAYS))
    load_aim(db, 30)
    original = aim_rows(db)
    go = sorted(may_go(original, utc_now()))
    requeued = go[0]  # the fetcher takes a delivered row back: Status 1, no delivery time
    queued = min(i for i, r in original.items() if r[2] == 1)  # and delivers a queued one
    old = utc_now() - timedelta(days=RETENTION_DAYS + 5)
    with admin(db) as fetcher:
        fetcher.execute("BEGIN")
        fetcher.execute("UPDATE PLSP.FLP_AIM SET Status = 1, DeliveredUtc = NULL WHERE Id = %s", (requeued,))
        fetcher.execute("UPDATE PLSP.FLP_AIM SET Status = 2, DeliveredUtc = %s WHERE Id = %s", (old, queued))

        result = run(db)  # must not wait for the fetcher

        assert (result.result, result.rows) == ("succeeded", len(go) - 1)
        assert result.seconds < 2
        fetcher.execute("COMMIT")
    history = aim_rows(db, "PLSP.FLP_AIM_History")
    assert requeued not in history and queued not in history
    notes = [b[4] for b in batches(db, result.job_run_id)]
    assert any("left for the next run" in n for n in notes), notes

    again = run(db)

    assert again.rows == 1
    hot = aim_rows(db)
    assert hot[requeued][2:] == (1, original[requeued][3], original[requeued][4], None)
    assert queued in aim_rows(db, "PLSP.FLP_AIM_History")


# ------------------------------------------------------------------------------
# Crashes: a row is in exactly one table at every moment
# ------------------------------------------------------------------------------


def test_row_already_in_history_is_never_duplicated_the_batch_rolls_back_whole(db):
    load_aim(db, 30)
    original = aim_rows(db)
    go = sorted(may_go(original, utc_now(), 0))
    execute(db, COPY_TO_HISTORY, (go[2],))

    result = run(db)

    assert result.result == "failed"
    assert "pk_flp_aim_history" in result.error.lower()
    assert aim_rows(db) == original  # the batch that met the copy moved nothing
    assert scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM_History") == 1
    assert fetch_one(db, "SELECT Status FROM Ops.JobRun") == ("failed",)


def test_killed_inside_a_batch_transaction_loses_and_duplicates_nothing(db):
    load_aim(db, 300)
    original = aim_rows(db)
    go = sorted(may_go(original, utc_now(), 0))
    # The batch stops in the middle of its moving statement, at the fifth row:
    # four rows are gone from the hot table in its open transaction.
    execute(
        db,
        f"""CREATE FUNCTION public.test_stall() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.Id = {go[4]} THEN
                PERFORM pg_sleep(60);
            END IF;
            RETURN OLD;
        END
        $$;
        CREATE TRIGGER test_stall BEFORE DELETE ON PLSP.FLP_AIM
            FOR EACH ROW EXECUTE FUNCTION public.test_stall();""",
    )
    with admin(db) as conn:
        job = JobThread(db)
        job.start()
        wait_for(
            lambda: (
                conn.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event = 'PgSleep' AND query LIKE 'CALL Job.archive_aim(%'"
                ).fetchone()
                is not None
            ),
            "the batch to stall inside its transaction",
        )
        assert_conserved(db, original)  # what others see while the batch is open

        assert conn.execute("SELECT pg_terminate_backend(%s, 5000)", (job_backend_pid(conn),)).fetchone()[0]
        job.join(LOCK_WAIT_SECONDS)
        conn.execute("DROP TRIGGER test_stall ON PLSP.FLP_AIM")
    assert job.error is not None
    assert aim_rows(db) == original

    final = run(db)

    assert (final.result, final.rows) == ("succeeded", len(go))
    _, history = assert_conserved(db, original)
    assert history == set(go)
    assert [s for (s,) in fetch_all(db, "SELECT Status FROM Ops.JobRun ORDER BY JobRunId")] == [
        "abandoned",
        "succeeded",
    ]


KILLS = 10
KILLS_IN_MOVE = 3  # of them at least this many inside the moving statement itself
MOVE_STATEMENT = "WITH moved AS"
KILL_ATTEMPTS = 40
KILL_DELAY_SECONDS = (0.0, 0.02)  # after the run took its lock; a whole run takes about 0.5 s
TARGETED_EVERY = 3  # every third attempt waits until the run sleeps inside the moving statement
SLOW_MOVE_MS = 2  # every moving statement takes this much longer (a slow disk)
TARGETED_SLOW_MOVE_MS = 300  # ... on a targeted attempt: long enough to be seen and killed there


def slow_moves(db) -> None:
    """Every moving statement sleeps public.test_slow_move.ms more (a statement trigger, this test's)."""
    execute(
        db,
        f"""CREATE TABLE public.test_slow_move (ms integer NOT NULL);
        INSERT INTO public.test_slow_move VALUES ({SLOW_MOVE_MS});
        CREATE FUNCTION public.test_slow_move() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_sleep((SELECT s.ms FROM public.test_slow_move AS s) / 1000.0);
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER test_slow_move AFTER DELETE ON PLSP.FLP_AIM
            FOR EACH STATEMENT EXECUTE FUNCTION public.test_slow_move();""",
    )


def test_killed_at_random_points_loses_and_duplicates_nothing(db):
    # SleepFactor 0: the run is always inside the database (settings, health
    # check, batch, batch log), so a kill after a random delay lands anywhere in
    # it. Where it lands depends on the machine's speed, so the kills inside the
    # moving statement are not left to chance: every TARGETED_EVERY-th attempt
    # makes the statement sleep longer, waits until the run's backend is seen
    # sleeping there (pg_stat_activity, wait event PgSleep) and kills it then.
    # The outcomes are counted, not timed: each targeted kill must have landed
    # in the statement, and nothing may be lost or doubled after any kill.
    load_aim(db, 6000, kinds=(PENDING, DELIVERED_OLD, QUEUED, DELIVERED_OLD, DELIVERED_YOUNG, DELIVERED_OLD))
    set_setting(db, "RetentionDays", str(RETENTION_DAYS))
    set_settings(db, BatchSizeStart=30, BatchSizeMin=10, BatchSizeMax=30, SleepFactor=0)
    slow_moves(db)
    original = aim_rows(db)
    go = may_go(original, utc_now())
    rng = random.Random(20240601)
    kills, where, targeted = 0, [], []
    with admin(db) as conn:
        for attempt in range(KILL_ATTEMPTS):
            aimed = attempt % TARGETED_EVERY == TARGETED_EVERY - 1
            conn.execute(
                "UPDATE public.test_slow_move SET ms = %s",
                (TARGETED_SLOW_MOVE_MS if aimed else SLOW_MOVE_MS,),
            )
            job = JobThread(db)
            job.start()
            deadline = time.monotonic() + LOCK_WAIT_SECONDS
            while job_backend_pid(conn) is None and job.is_alive() and time.monotonic() < deadline:
                pass  # poll without sleeping: the run moves fast
            if aimed:
                pid = job_backend_pid(conn)
                while pid is not None and job.is_alive() and time.monotonic() < deadline:
                    state = conn.execute(
                        "SELECT wait_event FROM pg_stat_activity WHERE pid = %s", (pid,)
                    ).fetchone()
                    if state is not None and state[0] == "PgSleep":
                        break
            else:
                time.sleep(rng.uniform(*KILL_DELAY_SECONDS))
            killed = conn.execute(
                f"SELECT pg_terminate_backend(l.pid, 5000) FROM pg_locks AS l WHERE {JOB_LOCK_FILTER}"
            ).fetchone()
            job.join(LOCK_WAIT_SECONDS)
            assert not job.is_alive()
            _, history = assert_conserved(db, original)
            assert history <= go
            if killed and killed[0]:
                kills += 1
                assert job.error is not None
                where.append(kill_context(job.error))
                if aimed:
                    targeted.append(where[-1])
            if kills >= KILLS and sum(MOVE_STATEMENT in w for w in where) >= KILLS_IN_MOVE:
                break
        conn.execute("UPDATE public.test_slow_move SET ms = 0")
    print("killed in:", [w.splitlines()[0][:50] for w in where])
    assert kills >= KILLS
    assert len(targeted) >= KILLS_IN_MOVE, targeted
    assert all(MOVE_STATEMENT in w for w in targeted), targeted  # seen sleeping there, killed there
    assert sum(MOVE_STATEMENT in w for w in where) >= KILLS_IN_MOVE, where
    assert history != go, "the kills came too late: nothing was left to interrupt"

    final = run(db)

    assert final.result == "succeeded"
    _, history = assert_conserved(db, original)
    assert history == go
    statuses = [s for (s,) in fetch_all(db, "SELECT Status FROM Ops.JobRun ORDER BY JobRunId")]
    assert statuses[-1] == "succeeded"
    assert "running" not in statuses
    # Every kill after the run row was committed leaves it abandoned; a kill inside
    # job_run_start rolls the row back, and one on a statement boundary may land
    # either side of the COMMIT that follows it. Count, do not guess how many.
    in_start = sum("job_run_start" in w for w in where)
    either_side = sum(w == "between statements" or "at COMMIT" in w for w in where)
    abandoned = statuses.count("abandoned")
    assert kills - in_start - either_side <= abandoned <= kills - in_start, (statuses, where)


# ------------------------------------------------------------------------------
# Migration
# ------------------------------------------------------------------------------


def test_migration_adds_and_removes_the_job_and_its_settings(empty_db_url):
    from orchestrator.db.connection import Database

    migrate.upgrade(empty_db_url, "0002")
    db = Database(empty_db_url)
    try:
        settings = "SELECT Name, Value FROM Ops.Setting WHERE JobName = 'archive_aim' ORDER BY Name"
        assert fetch_all(db, settings) == [
            ("BatchSizeMin", "200"),
            ("BatchSizeStart", "1000"),
            ("BatchTargetMs", "5"),
            ("RetentionDays", "0"),
            ("SleepFactor", "0"),
        ]
        procs = "SELECT count(*) FROM pg_proc WHERE proname IN ('archive_aim', 'archive_aim_batch')"
        assert scalar(db, procs) == 2

        migrate.downgrade(empty_db_url, "0001")

        assert scalar(db, "SELECT count(*) FROM Ops.Setting WHERE JobName = 'archive_aim'") == 0
        assert scalar(db, procs) == 0
    finally:
        db.engine.dispose()


def test_offline_sql_server_script_creates_each_procedure_first_in_its_batch():
    script = migrate.script("mssql", "0001", "0002")
    batches = [b.strip() for b in re.split(r"^GO[ \t]*$", script, flags=re.MULTILINE)]
    for name in ("Job.archive_aim_batch", "Job.archive_aim"):
        (batch,) = [b for b in batches if f"CREATE OR ALTER PROCEDURE {name}\n" in b]
        code = [line for line in batch.splitlines() if line.strip() and not line.lstrip().startswith("--")]
        assert code[0] == f"CREATE OR ALTER PROCEDURE {name}"
    assert any(b.startswith("INSERT INTO Ops.Setting") and "'RetentionDays', '0'" in b for b in batches)
