"""The shared batch engine (Job.run_batched), tested through the Archive AIM job.

Where a test needs batches of a known duration, a statement trigger in the
test's own database makes every moving statement slower (``slow_down_batches``):
a slow server as the job sees it, not a replacement of anything the job does.
"""

from __future__ import annotations

import itertools
import threading
import time
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from tests.support.archive import (
    DELIVERED_OLD,
    DELIVERED_YOUNG,
    LOCK_WAIT_SECONDS,
    PENDING,
    RETENTION_DAYS,
    JobThread,
    admin,
    aim_rows,
    assert_conserved,
    batches,
    load_aim,
    may_go,
    run,
    set_setting,
    set_settings,
    slow_down_batches,
    utc_now,
    wait_for,
)
from tests.support.sql import fetch_all, fetch_one, scalar

HALF_MOVABLE = (PENDING, DELIVERED_OLD)  # every other row may go
GROWTH_CAP = Decimal("1.2")  # the engine grows a batch at most 20% a step
SMOOTHING = (Decimal("0.7"), Decimal("0.3"))  # weight of the old average, of the new batch
MS_SCALE = Decimal("0.001")  # the engine keeps its smoothed duration to 3 decimals


def round_half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def expected_sizes(sizes, durations, target_ms, size_min, size_max) -> list[int]:
    """Replay the engine's sizing rule on the logged durations: the size each next batch should have."""
    smoothed, expected = None, []
    for size, ms in zip(sizes, durations, strict=True):
        smoothed = Decimal(ms) if smoothed is None else SMOOTHING[0] * smoothed + SMOOTHING[1] * Decimal(ms)
        smoothed = smoothed.quantize(MS_SCALE, rounding=ROUND_HALF_UP)
        next_size = round_half_up(Decimal(size * target_ms) / max(smoothed, Decimal(1)))
        if next_size > size * GROWTH_CAP:
            next_size = round_half_up(size * GROWTH_CAP)
        expected.append(min(max(next_size, size_min), size_max))
    return expected


def batch_log(db, result) -> list[tuple]:
    return batches(db, result.job_run_id)


def run_row(db, result) -> tuple:
    return fetch_one(
        db, "SELECT Status, RowsAffected, Message FROM Ops.JobRun WHERE JobRunId = ?", (result.job_run_id,)
    )


class BusySession(threading.Thread):
    """Another client keeps the database busy: one long statement, then it goes away."""

    def __init__(self, db, sql: str) -> None:
        super().__init__(daemon=True)
        self.db, self.sql = db, sql
        self.ended: float | None = None  # time.monotonic() when the statement returned
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with admin(self.db) as conn:
                conn.execute(self.sql)
        except Exception as exc:  # cancelled on purpose
            self.error = exc
        self.ended = time.monotonic()


def active_others(conn) -> int:
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend'"
    ).fetchone()[0]


# ------------------------------------------------------------------------------
# Batches and their log
# ------------------------------------------------------------------------------


def test_logged_batches_add_up_to_the_run(contract_db):
    db = contract_db
    set_settings(db, BatchSizeStart=10, BatchSizeMin=10, BatchSizeMax=25)
    expected = load_aim(db, 240, kinds=HALF_MOVABLE)

    result = run(db)

    log = batch_log(db, result)
    assert [b[0] for b in log] == list(range(1, len(log) + 1))
    assert len(log) >= 5
    assert sum(b[3] for b in log) == result.rows == expected
    assert all(b[1] >= 0 and b[3] <= b[2] for b in log)  # DurationMs, rows within the batch size
    assert all(b[4].startswith("Id ") for b in log)
    status, rows, message = run_row(db, result)
    assert (status, rows) == ("succeeded", expected)
    assert message == f"{len(log)} batches"


@pytest.mark.parametrize(
    ("target_ms", "start", "size_min", "size_max", "rows"),
    [
        (400, 100, 10, 400, 5000),  # batches far under target: grow 20% a step up to the max
        (25, 400, 10, 400, 1600),  # batches over target: shrink toward it, down to the min
    ],
    ids=["grows", "shrinks"],
)
def test_batch_size_adapts_toward_the_target_within_its_bounds(
    db, target_ms, start, size_min, size_max, rows
):
    slow_down_batches(db, 50)
    set_settings(
        db, BatchTargetMs=target_ms, BatchSizeStart=start, BatchSizeMin=size_min, BatchSizeMax=size_max
    )
    # The time rule alone: sizing by time efficiency (engine v2) is tested in test_engine_v2.py.
    set_settings(db, SleepFactor=0, TimeEfficiencyMin=0)
    load_aim(db, rows, kinds=HALF_MOVABLE)

    result = run(db)

    assert result.result == "succeeded"
    log = batch_log(db, result)
    sizes, durations = [b[2] for b in log], [b[1] for b in log]
    assert sizes[0] == start
    assert all(size_min <= s <= size_max for s in sizes)
    for before, after in itertools.pairwise(sizes):
        assert after <= round_half_up(before * GROWTH_CAP)
    replay = expected_sizes(sizes, durations, target_ms, size_min, size_max)
    for i, (actual, wanted) in enumerate(zip(sizes[1:], replay, strict=False), start=2):
        assert abs(actual - wanted) <= 1, f"batch {i}: size {actual}, the rule gives {wanted}"
    if target_ms > durations[0]:
        assert sizes[1] > sizes[0] and size_max in sizes
    else:
        assert sizes[1] < sizes[0] and sizes[-1] == size_min


LOWER_MAXIMUM = "UPDATE Ops.Setting SET Value = '30' WHERE JobName = 'archive_aim' AND Name = 'BatchSizeMax'"


def test_setting_changed_mid_run_takes_effect_at_the_next_batch(db):
    slow_down_batches(db, 20)
    set_settings(db, BatchTargetMs=1000, BatchSizeStart=100, BatchSizeMin=10, BatchSizeMax=100, SleepFactor=8)
    expected = load_aim(db, 1600, kinds=HALF_MOVABLE)
    job = JobThread(db)
    job.start()
    # Two batches done, the job now sleeps at least 8 x 20 ms: a DBA lowers the maximum.
    wait_for(lambda: scalar(db, "SELECT count(*) FROM Ops.JobRunBatch") >= 2, "two batches")
    with admin(db) as conn:
        # Only the maximum: BatchSizeStart (100) is clamped into the new bounds, not refused.
        conn.execute(LOWER_MAXIMUM)
        changed_after = conn.execute("SELECT max(BatchNo) FROM Ops.JobRunBatch").fetchone()[0]
        conn.execute(
            "UPDATE Ops.Setting SET Value = '0' WHERE JobName = 'archive_aim' AND Name = 'SleepFactor'"
        )
    job.join(LOCK_WAIT_SECONDS * 3)

    assert job.error is None and job.result.result == "succeeded"
    assert job.result.rows == expected
    sizes = [b[2] for b in batch_log(db, job.result)]
    assert sizes[:changed_after] == [100] * changed_after
    assert len(sizes) > changed_after
    assert all(s <= 30 for s in sizes[changed_after:])


# ------------------------------------------------------------------------------
# Time limit
# ------------------------------------------------------------------------------


@pytest.mark.parametrize("limit_from", ["parameter", "setting"])
def test_time_limit_stops_the_run_and_the_next_run_carries_on(db, limit_from):
    slow_down_batches(db, 100)
    set_settings(db, BatchSizeStart=20, BatchSizeMin=20, BatchSizeMax=20, SleepFactor=1)
    set_setting(db, "RetentionDays", str(RETENTION_DAYS))
    expected = load_aim(db, 600, kinds=(PENDING, DELIVERED_OLD, DELIVERED_YOUNG))
    original = aim_rows(db)
    if limit_from == "setting":
        set_setting(db, "TimeLimitSeconds", "1")
        stopped = run(db)
    else:
        stopped = run(db, time_limit_seconds=1)

    assert stopped.result == "stopped"
    status, rows, message = run_row(db, stopped)
    assert status == "stopped" and message.endswith("; time limit reached")
    assert 0 < rows == stopped.rows < expected
    # The limit is kept to within one batch and its sleep, by the database's own clock (so a
    # loaded machine's slower batches move the bound with them): no batch starts after the
    # limit, and the run ends after the last batch and its sleep (SleepFactor 1: as long as it).
    run_started, run_ended = fetch_one(
        db, "SELECT StartedUtc, EndedUtc FROM Ops.JobRun WHERE JobRunId = ?", (stopped.job_run_id,)
    )
    started = fetch_all(
        db,
        "SELECT StartedUtc, DurationMs FROM Ops.JobRunBatch WHERE JobRunId = ? ORDER BY BatchNo",
        (stopped.job_run_id,),
    )
    assert all(at < run_started + timedelta(seconds=1) for at, _ in started)
    last_at, last_ms = started[-1]
    assert run_ended - (last_at + timedelta(milliseconds=2 * last_ms)) < timedelta(seconds=0.5)
    assert stopped.seconds >= 1.0

    set_settings(db, TimeLimitSeconds=3600, SleepFactor=0, BatchSizeMax=4000)
    rest = run(db)

    assert rest.result == "succeeded"
    assert stopped.rows + rest.rows == expected
    _, history = assert_conserved(db, original)
    assert history == may_go(original, utc_now())


# ------------------------------------------------------------------------------
# Health gate
# ------------------------------------------------------------------------------

HOLD_SECONDS = 1
BUSY_SECONDS = 2
HEALTH_POLL_SECONDS = 0.25  # the engine looks again this often while paused
CLOCK_SLACK_SECONDS = 0.1  # between a statement's end on the server and the client seeing it


def test_health_gate_pauses_while_the_database_is_busy_and_continues_after(db):
    expected = load_aim(db, 200, kinds=HALF_MOVABLE)
    set_settings(db, HealthMaxActive=0, HealthHoldSeconds=HOLD_SECONDS, HealthMaxPauseSeconds=30)
    busy = BusySession(db, f"SELECT pg_sleep({BUSY_SECONDS})")
    with admin(db) as conn:
        busy.start()
        wait_for(lambda: active_others(conn) == 1, "the busy session")

    result = run(db)
    finished = time.monotonic()

    busy.join()
    assert busy.error is None
    assert (result.result, result.rows) == ("succeeded", expected)
    # It waited for the load to go, then for the hold time after its last busy look.
    assert finished - busy.ended >= HOLD_SECONDS - HEALTH_POLL_SECONDS - CLOCK_SLACK_SECONDS
    assert result.seconds >= BUSY_SECONDS - HEALTH_POLL_SECONDS + HOLD_SECONDS - HEALTH_POLL_SECONDS


@pytest.mark.parametrize(
    ("limits", "load", "reason"),
    [
        ({"HealthMaxActive": 0}, "active", "active sessions 1 (limit 0)"),
        ({"HealthMaxActive": 100, "HealthMaxLockWaits": 0}, "lock_wait", "lock waits 1 (limit 0)"),
    ],
)
def test_busy_too_long_stops_the_run_and_a_later_run_continues(db, limits, load, reason):
    expected = load_aim(db, 200, kinds=HALF_MOVABLE)
    set_settings(db, HealthHoldSeconds=HOLD_SECONDS, HealthMaxPauseSeconds=1, **limits)
    with admin(db) as holder, admin(db) as conn:
        if load == "active":
            busy = BusySession(db, "SELECT pg_sleep(60)")
        else:  # one session waits for a lock another holds
            holder.execute("BEGIN")
            holder.execute("LOCK TABLE PLSP.Klinik IN ACCESS EXCLUSIVE MODE")
            busy = BusySession(db, "SELECT count(*) FROM PLSP.Klinik")
        busy.start()
        wait_for(lambda: active_others(conn) == 1, "the load")

        stopped = run(db)

        conn.execute(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE state = 'active' "
            "AND pid <> pg_backend_pid() AND datname = current_database()"
        )
        busy.join(LOCK_WAIT_SECONDS)
        if load == "lock_wait":
            holder.execute("ROLLBACK")

    assert (stopped.result, stopped.rows) == ("stopped", 0)
    status, _, message = run_row(db, stopped)
    assert status == "stopped"
    assert message.startswith("0 batches; paused 1 s for a busy database; database busy too long: ")
    assert reason in message
    assert 1.0 <= stopped.seconds < 2.5

    again = run(db)

    assert (again.result, again.rows) == ("succeeded", expected)


def test_health_gate_with_no_hold_time_still_waits_while_busy(db):
    load_aim(db, 20, kinds=HALF_MOVABLE)
    set_settings(db, HealthMaxActive=0, HealthHoldSeconds=0, HealthMaxPauseSeconds=30)
    busy = BusySession(db, f"SELECT pg_sleep({BUSY_SECONDS})")
    with admin(db) as conn:
        busy.start()
        wait_for(lambda: active_others(conn) == 1, "the busy session")

    result = run(db)

    busy.join()
    assert result.result == "succeeded"
    assert result.seconds >= BUSY_SECONDS - 2 * HEALTH_POLL_SECONDS


def test_no_batch_starts_after_the_time_limit_even_after_a_pause(db):
    load_aim(db, 20, kinds=HALF_MOVABLE)
    set_settings(db, HealthMaxActive=0, HealthHoldSeconds=HOLD_SECONDS, HealthMaxPauseSeconds=30)
    busy = BusySession(db, f"SELECT pg_sleep({BUSY_SECONDS})")
    with admin(db) as conn:
        busy.start()
        wait_for(lambda: active_others(conn) == 1, "the busy session")

    result = run(db, time_limit_seconds=1)

    busy.join()
    assert result.result == "stopped"
    assert result.rows == 0  # the limit passed during the pause: no batch may start
    assert result.seconds < BUSY_SECONDS + HOLD_SECONDS


# ------------------------------------------------------------------------------
# Bad settings and parameters
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BatchSizeMax", "lots"),
        ("BatchSizeMax", "5000"),
        ("BatchSizeMin", "0"),
        ("SleepFactor", "-1"),
        ("BatchTargetMs", "1.5"),
        ("HealthHoldSeconds", "soon"),
    ],
)
def test_malformed_setting_stops_the_job_naming_the_setting(contract_db, name, value):
    db = contract_db
    load_aim(db, 20, kinds=HALF_MOVABLE)
    set_setting(db, name, value)

    result = run(db)

    assert result.result == "failed"
    assert f"Setting {name} " in result.error
    assert scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM_History") == 0
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun WHERE Status = 'running'") == 0


def test_setting_broken_mid_run_fails_the_run_naming_it_and_frees_the_lock(db):
    slow_down_batches(db, 20)
    set_settings(db, BatchSizeStart=20, BatchSizeMin=20, BatchSizeMax=20, SleepFactor=4)
    expected = load_aim(db, 400, kinds=HALF_MOVABLE)
    original = aim_rows(db)
    job = JobThread(db)
    job.start()
    wait_for(lambda: scalar(db, "SELECT count(*) FROM Ops.JobRunBatch") >= 1, "a batch")
    set_setting(db, "SleepFactor", "fast")
    job.join(LOCK_WAIT_SECONDS)

    assert job.result.result == "failed" and job.error == job.result.error
    status, rows, message = fetch_one(db, "SELECT Status, RowsAffected, Message FROM Ops.JobRun")
    assert status == "failed" and "Setting SleepFactor " in message
    _, history = assert_conserved(db, original)
    assert 0 < len(history) == rows < expected

    set_setting(db, "SleepFactor", "0")
    rest = run(db)

    assert (rest.result, rows + rest.rows) == ("succeeded", expected)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"Execute": "X"}, "Execute"),
        ({"TimeLimitSeconds": 0}, "TimeLimitSeconds"),
        ({"TriggeredBy": "cron"}, "TriggeredBy"),
    ],
)
def test_bad_parameters_are_refused_naming_them(contract_db, kwargs, named):
    db = contract_db
    load_aim(db, 20, kinds=HALF_MOVABLE)
    params = {"Execute": "Y", "TriggeredBy": "test", **kwargs}
    with db.connect() as conn, pytest.raises(Exception, match=f"parameter @?p?_?{named} is not supported"):
        db.call(conn, "Job.archive_aim", params, ("JobRunId", "Result", "RowsAffected"))
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun") == 0
    assert scalar(db, "SELECT count(*) FROM PLSP.FLP_AIM_History") == 0


def test_health_check_finds_an_idle_database_idle(db):
    with db.connect() as conn:
        out = db.call(conn, "Job.health_check", {"MaxActive": 0, "MaxLockWaits": 0}, ("Busy", "Reason"))
    assert out == {"Busy": False, "Reason": "active sessions 0 (limit 0), lock waits 0 (limit 0)"}


def test_a_run_that_fails_and_cannot_be_ended_reports_its_own_error_and_frees_the_lock(db):
    """v5 (migration 0025): the run fails (a setting broken mid-run) and ending it as failed fails
    too (a trigger in the test's own database refuses that UPDATE of Ops.JobRun: a run row that
    cannot be written, as a lock timeout or a full disk would make it). The caller still gets the
    run's own error, not job_run_finish's (v4 raised that one), and the lock is gone: the next run
    starts and marks the old one abandoned."""
    slow_down_batches(db, 20)
    set_settings(db, BatchSizeStart=20, BatchSizeMin=20, BatchSizeMax=20, SleepFactor=4)
    load_aim(db, 400, kinds=HALF_MOVABLE)
    with admin(db) as conn:
        conn.execute(
            "CREATE FUNCTION ops.test_refuse_failed_end() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.Status = 'failed' THEN RAISE EXCEPTION 'test: this run cannot be ended failed'; "
            "END IF; "
            "RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER test_refuse_failed_end BEFORE UPDATE ON Ops.JobRun "
            "FOR EACH ROW EXECUTE FUNCTION ops.test_refuse_failed_end()"
        )
    job = JobThread(db)
    job.start()
    wait_for(lambda: scalar(db, "SELECT count(*) FROM Ops.JobRunBatch") >= 1, "a batch")
    set_setting(db, "SleepFactor", "fast")
    job.join(LOCK_WAIT_SECONDS)

    assert job.result is not None and job.result.result == "failed"
    assert "Setting SleepFactor " in job.result.error and "cannot be ended" not in job.result.error
    failed_run = scalar(db, "SELECT JobRunId FROM Ops.JobRun WHERE Status = 'running'")

    set_setting(db, "SleepFactor", "0")
    rest = run(db)

    assert rest.result == "succeeded"
    assert scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?", (failed_run,)) == "abandoned"


@pytest.mark.parametrize("engine", ["postgresql", "mssql"])
def test_run_batched_v5_is_v4_with_the_failed_run_ended_in_its_own_block_and_nothing_else(engine):
    """0025's v5 changes only how a failed run is ended (and its header): a change to v4 while it
    is unreleased must reach v5 too, or head would silently lose it."""
    from orchestrator.db import procedures

    folder = procedures.PROCEDURES_DIR / engine
    v4 = (folder / "run_batched.v4.sql").read_text(encoding="utf-8")
    v5 = (folder / "run_batched.v5.sql").read_text(encoding="utf-8")
    marker = "CREATE OR ALTER PROCEDURE" if engine == "mssql" else "CREATE PROCEDURE"
    body4, body5 = v4[v4.index(marker) :], v5[v5.index(marker) :]
    if engine == "mssql":
        old = (
            "            EXEC Job.job_run_finish\n"
            "                @JobRunId = @JobRunId,\n"
            "                @Status = 'failed',\n"
            "                @RowsAffected = @RowsAffected,\n"
            "                @Message = @Message;\n"
        )
        start, end = "            BEGIN TRY\n", "            END CATCH;\n"
    else:
        old = "            CALL Job.job_run_finish(p_JobRunId, 'failed', p_RowsAffected, v_Message);\n"
        start, end = "            BEGIN\n", "            END;\n"
    assert body4.count(old) == 1
    # v5 puts the same call, indented one step, inside a block of its own.
    before, after = body4.split(old)
    if engine == "mssql":
        rethrow = "        END;\n        THROW;\n"
        assert after.count(rethrow) == 1
        after = after.replace(
            rethrow,
            "        END;\n"
            "        -- Back in the outer CATCH block's scope: THROW raises the error that failed the run.\n"
            "        THROW;\n",
        )
    assert body5.startswith(before + start) and body5.endswith(after)
    block = body5[len(before) : len(body5) - len(after)]
    assert block.endswith(end) and "    " + old.replace("\n", "\n    ").rstrip(" ") in block
    assert "-- Job.run_batched, version 5.\n" in v5 and v5.index("-- Version 4:") < v5.index(marker)
