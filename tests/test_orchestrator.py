"""The orchestrator side: run_job, the timetable, the heartbeat, the demo."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from orchestrator.jobs import JOBS, Job, Timetable
from orchestrator.runner import run_job
from orchestrator.scheduler import Orchestrator, next_runs
from tests.support.sql import execute, fetch_one, scalar

THREAD_WAIT = 30.0  # seconds a scheduled job may take in these tests


def job_procedure(name: str, body: str) -> str:
    """A test job procedure with the standard job signature, taking its lock first."""
    return f"""
CREATE PROCEDURE Job.{name}(
    p_Execute char(1) DEFAULT 'Y', p_TimeLimitSeconds integer DEFAULT NULL,
    p_TriggeredBy varchar(20) DEFAULT 'manual', p_Host varchar(128) DEFAULT NULL,
    INOUT p_JobRunId bigint DEFAULT NULL, INOUT p_Result varchar(20) DEFAULT NULL,
    INOUT p_RowsAffected bigint DEFAULT NULL)
LANGUAGE plpgsql AS $$
BEGIN
    CALL Job.job_run_start('{name}', p_TriggeredBy, p_Host, NULL, p_JobRunId, p_Result);
{body}
END $$;
"""


# Fails after taking its lock, as a real job can.
FAILING_JOB_SQL = job_procedure("test_failing_job", "    COMMIT;\n    RAISE EXCEPTION 'disk on fire';")

# Works for a second.
SLOW_JOB_SQL = job_procedure(
    "test_slow_job",
    """    PERFORM pg_sleep(1);
    CALL Job.job_run_finish(p_JobRunId, 'succeeded', 0, NULL);
    p_Result := 'succeeded';
    p_RowsAffected := 0;""",
)


def test_every_job_has_a_timetable_and_a_next_run():
    assert all(job.timetable for job in JOBS.values())
    assert set(next_runs()) == set(JOBS)
    assert all("next" in text for text in next_runs().values())


def test_failed_job_is_reported_finished_and_its_lock_freed(db):
    execute(db, FAILING_JOB_SQL)
    job = Job("test_failing_job", "Job.test_failing_job", "fails on purpose", Timetable(every_minutes=1))
    result = run_job(db, job, triggered_by="test")
    assert result.result == "failed"
    assert "disk on fire" in result.error
    assert fetch_one(db, "SELECT Status, Message FROM Ops.JobRun WHERE JobName = 'test_failing_job'") == (
        "failed",
        result.error,
    )
    # The lock went with the failure: the next run starts (and fails) normally.
    assert run_job(db, job, triggered_by="test").result == "failed"
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun WHERE Status = 'failed'") == 2


def test_orchestrator_runs_a_job_in_its_thread_and_beats(db):
    orchestrator = Orchestrator(db, component="test-orchestrator")
    orchestrator.beat()
    first_beat = scalar(db, "SELECT BeatUtc FROM Ops.Heartbeat WHERE Component = 'test-orchestrator'")
    assert first_beat is not None

    orchestrator.start_job(JOBS["session_purge"])
    orchestrator._running["session_purge"].join(THREAD_WAIT)
    row = fetch_one(db, "SELECT TriggeredBy, Status FROM Ops.JobRun WHERE JobName = 'session_purge'")
    assert row == ("orchestrator", "succeeded")

    time.sleep(0.01)
    orchestrator.beat()
    assert scalar(db, "SELECT count(*) FROM Ops.Heartbeat") == 1
    assert scalar(db, "SELECT BeatUtc FROM Ops.Heartbeat") > first_beat


def test_orchestrator_does_not_start_a_job_it_is_still_running(db):
    execute(db, SLOW_JOB_SQL)
    job = Job("test_slow_job", "Job.test_slow_job", "sleeps", Timetable(every_minutes=1))
    orchestrator = Orchestrator(db, component="test-orchestrator")
    orchestrator.start_job(job)
    first = orchestrator._running["test_slow_job"]
    orchestrator.start_job(job)  # still running here: must not start a second thread
    assert orchestrator._running["test_slow_job"] is first
    first.join(THREAD_WAIT)
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun WHERE JobName = 'test_slow_job'") == 1


@pytest.mark.slow
def test_flp_demo_on_a_fresh_data_folder(data_dir, tmp_path):
    env = {**os.environ, "FLP_DATA_DIR": str(data_dir)}
    env.pop("FLP_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "demo", "--patients", "300"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("migrate", "seed", *JOBS):
        assert name in done.stdout
    assert "failed" not in done.stdout
