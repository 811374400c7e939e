"""Contract: starting and finishing job runs under the per-job database lock."""

from __future__ import annotations

import time

import pytest

from tests.support.sql import fetch_one, scalar

START_OUT = ("JobRunId", "Result")
SESSION_END_SECONDS = 5.0  # longest the server takes to end a closed client's session


def start(db, conn, job="contract_job", triggered_by="test"):
    return db.call(conn, "Job.job_run_start", {"JobName": job, "TriggeredBy": triggered_by}, START_OUT)


def test_start_and_finish_writes_one_run_row(contract_db):
    db = contract_db
    with db.connect() as conn:
        out = start(db, conn)
        assert out["Result"] == "started"
        run_id = out["JobRunId"]
        assert scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?", (run_id,)) == "running"
        db.call(
            conn,
            "Job.job_run_finish",
            {"JobRunId": run_id, "Status": "succeeded", "RowsAffected": 42, "Message": "ok"},
        )
    row = fetch_one(
        db, "SELECT Status, RowsAffected, Message, EndedUtc FROM Ops.JobRun WHERE JobRunId = ?", (run_id,)
    )
    assert row[:3] == ("succeeded", 42, "ok")
    assert row[3] is not None


def test_second_start_is_refused_at_once_while_the_first_holds_the_lock(contract_db):
    db = contract_db
    with db.connect() as first, db.connect() as second:
        assert start(db, first)["Result"] == "started"
        refused = start(db, second)
        assert refused["Result"] == "already_running"
        assert (
            scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?", (refused["JobRunId"],))
            == "skipped"
        )
        # Another job is not affected by this job's lock.
        assert start(db, second, job="other_job")["Result"] == "started"


def test_run_of_a_dead_session_is_marked_abandoned_by_the_next_run(contract_db):
    db = contract_db
    with db.connect() as conn:
        dead = start(db, conn)["JobRunId"]
    # The session ended without finishing: its lock goes with it once the server
    # has ended the session, which happens just after the client closes.
    deadline = time.monotonic() + SESSION_END_SECONDS
    with db.connect() as conn:
        result = start(db, conn)["Result"]
        while result == "already_running" and time.monotonic() < deadline:
            time.sleep(0.05)
            result = start(db, conn)["Result"]
        assert result == "started"
    assert scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?", (dead,)) == "abandoned"


def test_job_run_fail_finishes_the_run_and_frees_the_lock(contract_db):
    db = contract_db
    with db.connect() as conn, db.connect() as other:
        run_id = start(db, conn)["JobRunId"]
        db.call(conn, "Job.job_run_fail", {"JobName": "contract_job", "Message": "boom"})
        assert fetch_one(db, "SELECT Status, Message FROM Ops.JobRun WHERE JobRunId = ?", (run_id,)) == (
            "failed",
            "boom",
        )
        assert start(db, other)["Result"] == "started"
        # Without the lock it changes nothing.
        db.call(conn, "Job.job_run_fail", {"JobName": "contract_job", "Message": "again"})
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun WHERE Status = 'failed'") == 1


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"JobName": ""}, "JobName"),
        ({"JobName": "x", "TriggeredBy": "cron"}, "TriggeredBy"),
    ],
)
def test_bad_parameters_are_refused_with_their_name(contract_db, params, named):
    db = contract_db
    with db.connect() as conn, pytest.raises(Exception, match=named):
        db.call(conn, "Job.job_run_start", params, START_OUT)
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun") == 0


def test_finish_of_an_unknown_run_names_the_parameter(contract_db):
    db = contract_db
    with db.connect() as conn, pytest.raises(Exception, match="JobRunId"):
        db.call(conn, "Job.job_run_finish", {"JobRunId": 999999, "Status": "succeeded"})


def test_a_session_holding_the_lock_cannot_start_the_job_again(contract_db):
    # A run that failed in this session (e.g. in psql) still holds the lock: a
    # second start here must say so, not mark the first run abandoned.
    db = contract_db
    with db.connect() as conn:
        first = start(db, conn)["JobRunId"]
        with pytest.raises(Exception, match="holds the job's lock already"):
            start(db, conn)
        assert scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?", (first,)) == "running"
        db.call(conn, "Job.job_run_fail", {"JobName": "contract_job", "Message": "failed here"})
        assert start(db, conn)["Result"] == "started"


def test_job_names_are_lower_case_so_lock_and_rows_agree(contract_db):
    db = contract_db
    with db.connect() as conn, pytest.raises(Exception, match="lower-case letters"):
        start(db, conn, job="Contract_Job")


def test_another_session_cannot_finish_a_live_run(contract_db):
    db = contract_db
    with db.connect() as owner, db.connect() as other:
        run_id = start(db, owner)["JobRunId"]
        with pytest.raises(Exception, match="does not hold that run's job lock"):
            db.call(other, "Job.job_run_finish", {"JobRunId": run_id, "Status": "succeeded"})
        assert scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?", (run_id,)) == "running"
        db.call(owner, "Job.job_run_finish", {"JobRunId": run_id, "Status": "succeeded"})
    assert scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?", (run_id,)) == "succeeded"


# ------------------------------------------------------------------------------
# A failure while ending a run still releases the job's lock (v4, migration 0025)
# ------------------------------------------------------------------------------

BLOCKED_UPDATE_TIMEOUT = "200ms"  # the run's session gives up on the row lock after this


def holds_job_lock(admin_conn, pid: int) -> bool:
    return (
        admin_conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s", (pid,)
        ).fetchone()[0]
        > 0
    )


@pytest.mark.parametrize(
    ("procedure", "params"),
    [
        ("Job.job_run_finish", {"Status": "succeeded", "RowsAffected": 1, "Message": "ok"}),
        ("Job.job_run_fail", {"JobName": "contract_job", "Message": "boom"}),
    ],
)
def test_ending_a_run_whose_row_cannot_be_written_still_releases_the_lock(db, procedure, params):
    """Another session holds the run's row; the UPDATE gives up (lock_timeout): the procedure fails,
    and the job's lock goes with it, so the job can start again once the row is free (version 3
    kept the lock for the life of the session)."""
    from tests.support.archive import admin

    with db.connect() as conn, admin(db) as blocker:
        run_id = start(db, conn)["JobRunId"]
        conn.execute(f"SET lock_timeout = '{BLOCKED_UPDATE_TIMEOUT}'")
        pid = conn.info.backend_pid
        with blocker.transaction():
            blocker.execute("SELECT 1 FROM Ops.JobRun WHERE JobRunId = %s FOR NO KEY UPDATE", (run_id,))
            call_params = {"JobRunId": run_id, **params} if procedure.endswith("finish") else params
            with pytest.raises(Exception, match="lock timeout"):
                db.call(conn, procedure, call_params)
            assert not holds_job_lock(blocker, pid)
        # The row stayed 'running' (the CALL rolled back); the lock proves it dead.
        with db.connect() as other:
            assert start(db, other)["Result"] == "started"
    assert scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?", (run_id,)) == "abandoned"
