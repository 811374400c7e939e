"""Session purge: expired sessions go, in batches along the expiry order; live ones never."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from orchestrator.db.urls import libpq_url
from orchestrator.jobs import JOBS
from orchestrator.runner import run_job
from tests.support.sql import execute, fetch_all, scalar

JOB = JOBS["session_purge"]
BATCH_OUT = ("Position", "Rows", "Done", "Note")
WAIT_SECONDS = 10  # longest a test waits for the job to reach a state
POLL_SECONDS = 0.01
DOCUMENTED_PSQL_CALL = "CALL Job.session_purge(p_Execute => 'N')"


def utc_now() -> datetime:
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def add_sessions(db, expiries: list[datetime], user: str = "user") -> list[str]:
    """Insert one session per expiry time; return their ids in the same order."""
    ids = [str(uuid.uuid4()) for _ in expiries]
    with db.connect() as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO PLSP.Session (SessionId, UserRef, ExpiresUtc) VALUES (%s, %s, %s)",
            [(i, f"{user}{n}", e) for n, (i, e) in enumerate(zip(ids, expiries, strict=True))],
        )
    return ids


def session_ids(db) -> set[str]:
    return {str(r[0]) for r in fetch_all(db, "SELECT SessionId FROM PLSP.Session")}


def set_setting(db, name: str, value: str) -> None:
    execute(
        db,
        "INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES ('session_purge', ?, ?, 'test') "
        "ON CONFLICT (JobName, Name) DO UPDATE SET Value = EXCLUDED.Value",
        (name, value),
    )


def wait_until(db, count_sql: str) -> None:
    """Poll until ``count_sql`` counts something, for WAIT_SECONDS at most."""
    deadline = time.monotonic() + WAIT_SECONDS
    while scalar(db, count_sql) == 0:
        assert time.monotonic() < deadline, f"never true: {count_sql}"
        time.sleep(POLL_SECONDS)


@pytest.fixture
def quick(db):
    """No pause between batches: the tests do not wait for the sleep."""
    set_setting(db, "SleepFactor", "0")
    return db


def test_only_expired_sessions_go(quick):
    db = quick
    now = utc_now()
    ages = (timedelta(days=3), timedelta(minutes=5), timedelta(seconds=1))
    expired = add_sessions(db, [now - age for age in ages])
    live = add_sessions(db, [now + age for age in (timedelta(seconds=2), *ages[:2])])

    result = run_job(db, JOB, triggered_by="test")

    assert (result.result, result.rows) == ("succeeded", len(expired))
    assert session_ids(db) == set(live)
    assert scalar(db, "SELECT RowsAffected FROM Ops.JobRun WHERE JobRunId = ?", (result.job_run_id,)) == 3


def test_a_session_expiring_exactly_now_stays(db):
    # "Now" is the clock when the batch starts (not the transaction's start), cut
    # to the millisecond; the batch's note names it. Sessions expiring at every
    # millisecond around it show the edge: before it they go, at it they stay.
    with psycopg.connect(libpq_url(db.url)) as conn:
        clock = "SELECT date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC')"
        start = conn.execute(clock).fetchone()[0]
        conn.execute(
            "INSERT INTO PLSP.Session (SessionId, UserRef, ExpiresUtc) "
            "SELECT gen_random_uuid(), 'u' || g, %s + g * INTERVAL '1 millisecond' "
            "FROM generate_series(0, 2000) AS g",
            (start,),
        )
        note = conn.execute("CALL Job.session_purge_batch(4000, 'Y', NULL, NULL, NULL, NULL)").fetchone()[3]
        first_left = conn.execute("SELECT min(ExpiresUtc) FROM PLSP.Session").fetchone()[0]
        conn.rollback()
    now = datetime.fromisoformat(note.split(" expired before ")[1].split(",")[0])
    assert start < now < start + timedelta(seconds=2), note
    assert first_left == now


def test_dry_run_counts_every_expired_session_once_and_writes_nothing(quick):
    db = quick
    set_setting(db, "BatchSizeStart", "100")
    set_setting(db, "BatchSizeMax", "100")
    now = utc_now()
    # 250 sessions share one millisecond: more than a batch, counted once each.
    tie = now - timedelta(hours=1)
    add_sessions(db, [tie] * 250 + [now - timedelta(seconds=s) for s in range(1, 131)])
    add_sessions(db, [now + timedelta(hours=1)] * 20, user="live")
    before = session_ids(db)

    result = run_job(db, JOB, triggered_by="test", execute=False)

    assert (result.result, result.rows, result.job_run_id) == ("dry_run", 380, None)
    assert session_ids(db) == before
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun") == 0
    assert scalar(db, "SELECT count(*) FROM Ops.JobRunBatch") == 0
    # The real run removes what the dry run counted.
    assert run_job(db, JOB, triggered_by="test").rows == 380
    assert len(session_ids(db)) == 20


def test_no_batch_exceeds_batch_size_max(quick):
    db = quick
    # A generous target makes the engine grow the batch as far as it may.
    for name, value in (("BatchTargetMs", "10000"), ("BatchSizeStart", "100"), ("BatchSizeMax", "150")):
        set_setting(db, name, value)
    now = utc_now()
    add_sessions(db, [now - timedelta(seconds=1 + i) for i in range(1000)])

    result = run_job(db, JOB, triggered_by="test")

    batches = fetch_all(
        db, "SELECT BatchSize, RowsAffected FROM Ops.JobRunBatch WHERE JobRunId = ?", (result.job_run_id,)
    )
    assert result.rows == 1000
    assert sum(rows for _, rows in batches) == 1000
    assert max(rows for _, rows in batches) == 150  # reached the cap ...
    assert max(size for size, _ in batches) == 150  # ... and never went past it


def test_a_second_run_is_refused_while_one_runs(quick):
    db = quick
    # Hold the first run in its health-gate pause: one session waiting for a lock
    # is "busy" with HealthMaxLockWaits = 0 (the pause lasts while busy and
    # HealthHoldSeconds after). It holds the job lock while paused.
    set_setting(db, "HealthMaxLockWaits", "0")
    set_setting(db, "HealthHoldSeconds", "1")
    now = utc_now()
    expired = add_sessions(db, [now - timedelta(minutes=m) for m in range(1, 51)])
    (blocker_row,) = add_sessions(db, [now + timedelta(days=1)], user="live")
    holder = psycopg.connect(libpq_url(db.url))
    waiter = psycopg.connect(libpq_url(db.url), autocommit=True)
    holder.execute("UPDATE PLSP.Session SET UserRef = 'held' WHERE SessionId = %s", (blocker_row,))
    waiting = threading.Thread(
        target=waiter.execute,
        args=("UPDATE PLSP.Session SET UserRef = 'waited' WHERE SessionId = %s", (blocker_row,)),
    )
    waiting.start()
    wait_until(db, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    first: list = []
    running = threading.Thread(target=lambda: first.append(run_job(db, JOB, triggered_by="test")))
    try:
        running.start()
        wait_until(db, "SELECT count(*) FROM Ops.JobRun WHERE Status = 'running'")

        second = run_job(db, JOB, triggered_by="test")

        assert second.result == "already_running"
        status = scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?", (second.job_run_id,))
        assert status == "skipped"
        assert set(expired) <= session_ids(db)  # the refused run deleted nothing
    finally:
        holder.rollback()
        waiting.join(WAIT_SECONDS)
        running.join(WAIT_SECONDS)
        holder.close()
        waiter.close()
    assert first[0].result == "succeeded" and first[0].rows == len(expired)
    assert session_ids(db) == {blocker_row}


def test_the_batch_procedure_names_a_bad_parameter(db):
    with db.connect() as conn, pytest.raises(Exception, match="p_BatchSize"):
        db.call(conn, "Job.session_purge_batch", {"BatchSize": 0, "Execute": "Y"}, BATCH_OUT)
    with db.connect() as conn, pytest.raises(Exception, match="p_Execute"):
        db.call(conn, "Job.session_purge_batch", {"BatchSize": 10, "Execute": "y"}, BATCH_OUT)


def test_the_documented_psql_call_works(quick):
    db = quick
    add_sessions(db, [utc_now() - timedelta(minutes=1)] * 3)
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(DOCUMENTED_PSQL_CALL)
        assert cur.fetchone() == (None, "dry_run", 3)


def test_the_orchestrator_role_runs_it_without_any_table_right(quick):
    db = quick
    add_sessions(db, [utc_now() - timedelta(minutes=1)] * 4)
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        conn.execute("SET ROLE flp_orchestrator")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM PLSP.Session")
        result = conn.execute("CALL Job.session_purge(p_TriggeredBy => 'test')").fetchone()
    assert result[1:] == ("succeeded", 4)
    assert session_ids(db) == set()
