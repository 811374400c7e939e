"""The orchestrator service (issue 10): claims, missed slots, failures, retries, SIGTERM.

In-process where the test is about decisions; a child process (tests/support/
service_main.py, the real service with a compressed timetable) where it is
about signals.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.jobs import JOBS, Job, Timetable
from orchestrator.scheduler import Orchestrator
from orchestrator.scheduler.timetable import local
from tests.support import archive
from tests.support.sql import execute, fetch_all, scalar
from tests.test_orchestrator import FAILING_JOB_SQL

ROOT = Path(__file__).resolve().parents[1]
WAIT = 60.0


def join_all(orchestrator: Orchestrator, seconds: float = WAIT) -> None:
    for thread in list(orchestrator._running.values()):
        thread.join(seconds)


def daily_at(minutes_ago: int) -> str:
    """A daily time (Danish) whose latest slot was ``minutes_ago`` minutes ago."""
    return f"{local(datetime.now(UTC) - timedelta(minutes=minutes_ago)):%H:%M}"


def test_at_start_a_missed_slot_runs_once_within_its_grace_else_one_missed_row(db):
    jobs = {
        # Its slot passed 10 minutes ago, the grace is an hour: runs now.
        "session_purge": Job(
            "session_purge", "Job.session_purge", "x", Timetable(daily_at=daily_at(10), grace_minutes=60)
        ),
        # Its slot passed 3 hours ago, the grace is an hour: one missed row.
        "ops_retention": Job(
            "ops_retention", "Job.ops_retention", "x", Timetable(daily_at=daily_at(180), grace_minutes=60)
        ),
    }
    first = Orchestrator(db, component="o1", host="h1", jobs=jobs)
    # Both jobs ran here before (a claim two days ago): this is a restart after downtime.
    for name in jobs:
        first._call(
            "Job.job_slot_claim",
            {"JobName": name, "SlotUtc": datetime.now(UTC).replace(tzinfo=None) - timedelta(days=2)},
            ("Result",),
        )
    first.catch_up(datetime.now(UTC))
    join_all(first)
    runs = fetch_all(db, "SELECT JobName, Status, TriggeredBy, Host FROM Ops.JobRun ORDER BY JobName")
    assert runs == [
        ("ops_retention", "missed", "orchestrator", "h1"),
        ("session_purge", "succeeded", "orchestrator", "h1"),
    ]
    message = scalar(db, "SELECT Message FROM Ops.JobRun WHERE Status = 'missed'")
    assert "grace period of 60 minutes" in message
    # A second service starting after it (or the same one restarted) finds the slots taken.
    second = Orchestrator(db, component="o2", host="h2", jobs=jobs)
    second.catch_up(datetime.now(UTC))
    join_all(second)
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun") == 2


def test_on_a_new_database_an_old_slot_is_neither_run_late_nor_missed(db):
    job = Job("ops_retention", "Job.ops_retention", "x", Timetable(daily_at=daily_at(180), grace_minutes=60))
    orchestrator = Orchestrator(db, component="o1", host="h1", jobs={job.name: job})
    orchestrator.catch_up(datetime.now(UTC))
    join_all(orchestrator)
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun") == 0
    assert scalar(db, "SELECT count(*) FROM Ops.JobSlot") == 1  # from now on its slots count


def test_a_failing_job_never_stops_the_loop_and_other_jobs_keep_their_slots(db):
    execute(db, FAILING_JOB_SQL)
    jobs = {
        "test_failing_job": Job("test_failing_job", "Job.test_failing_job", "x", Timetable(every_seconds=1)),
        "session_purge": Job("session_purge", "Job.session_purge", "x", Timetable(every_seconds=1)),
    }
    orchestrator = Orchestrator(db, component="o1", host="h1", jobs=jobs, heartbeat_seconds=1)
    loop = threading.Thread(target=orchestrator.run_forever)
    loop.start()
    time.sleep(4.5)
    orchestrator.stop()
    loop.join(WAIT)
    assert not loop.is_alive()
    counts = dict(fetch_all(db, "SELECT JobName || ':' || Status, count(*) FROM Ops.JobRun GROUP BY 1"))
    assert counts.get("test_failing_job:failed", 0) >= 3, counts
    assert counts.get("session_purge:succeeded", 0) >= 3, counts
    assert set(counts) == {"test_failing_job:failed", "session_purge:succeeded"}
    # Each slot claimed once, and each claimed slot run once.
    per_job = dict(fetch_all(db, "SELECT JobName, count(*) FROM Ops.JobSlot GROUP BY JobName"))
    assert per_job["session_purge"] == counts["session_purge:succeeded"]


def test_a_run_that_cannot_reach_the_database_is_retried_with_backoff_then_given_up(db, caplog):
    # A database that refuses connections: the claim is retried (tenacity), then logged, and the
    # thread ends; the loop's caller is never hit.
    from orchestrator.db.connection import Database

    unreachable = Database("postgresql+psycopg://nobody@127.0.0.1:9/flp")
    jobs = {"session_purge": JOBS["session_purge"]}
    orchestrator = Orchestrator(unreachable, component="o1", host="h1", jobs=jobs)
    with caplog.at_level("WARNING"):
        started = time.monotonic()
        orchestrator._run(JOBS["session_purge"], datetime.now(UTC), grace_check=False)
    retries = [r for r in caplog.records if r.getMessage() == "database error; retrying"]
    assert [r.attempt for r in retries] == [1, 2, 3]
    assert time.monotonic() - started >= 3  # about 1 + 2 + 4 seconds, with jitter
    assert any(r.getMessage() == "job could not be run" for r in caplog.records)


def start_service(url: str, jobs: dict, **spec) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.service_main", json.dumps({"url": url, "jobs": jobs, **spec})],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, what: str, seconds: float = WAIT, step: float = 0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_sigterm_during_an_archive_stops_it_at_its_next_batch_and_loses_nothing(db):
    archive.load_aim(db, 3000, kinds=(archive.DELIVERED_OLD,))
    archive.set_settings(
        db, BatchSizeStart=200, BatchSizeMin=200, BatchSizeMax=200, SleepFactor=0, RetentionDays=7
    )
    archive.slow_down_batches(db, 300)  # 15 batches of 0.3 s at least: still running when stopped
    original = archive.aim_rows(db)
    settings_before = fetch_all(db, "SELECT JobName, Name, Value FROM Ops.Setting ORDER BY 1, 2")
    # Every 10 minutes, grace 10 minutes: the latest slot runs at start.
    process = start_service(db.url, {"archive_aim": {"every_minutes": 10}}, stop_wait_seconds=30)
    try:
        wait_for(
            lambda: scalar(db, "SELECT count(*) FROM Ops.JobRunBatch") >= 2, "the archive's second batch", 30
        )
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=WAIT)
        took = time.monotonic() - stopped_at
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert took < 10, err  # the next batch, not the whole archive
    status, message, rows = fetch_all(db, "SELECT Status, Message, RowsAffected FROM Ops.JobRun")[0]
    assert (status, "time limit reached" in message) == ("stopped", True), message
    assert 0 < rows < 3000
    _hot, history = archive.assert_conserved(db, original)
    assert len(history) == rows
    # The stop request is undone: the job's settings are what they were.
    assert fetch_all(db, "SELECT JobName, Name, Value FROM Ops.Setting ORDER BY 1, 2") == settings_before
    assert "asked a running job to stop" in err and "result=requested" in err
    assert "waited for a running job" in err and "job=archive_aim finished=True" in err
    assert "Traceback" not in err


def test_a_timetable_override_takes_effect_without_a_restart_and_a_malformed_one_is_named_once(db, caplog):
    """Ops.Setting Enabled / DailyAt rows, re-read every half second here (REFRESH_SECONDS in service)."""
    caplog.set_level("INFO", logger="orchestrator")
    insert = "INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES (?, ?, ?, 'test')"
    jobs = {"session_purge": Job("session_purge", "Job.session_purge", "x", Timetable(every_seconds=2))}
    service = Orchestrator(db, component="o-override", host="h1", jobs=jobs, refresh_seconds=0.5)
    thread = threading.Thread(target=service.run_forever, daemon=True)
    thread.start()

    def records(message):
        return [r for r in caplog.records if r.getMessage() == message]

    def started_since(moment):
        sql = "SELECT count(*) FROM Ops.JobRun WHERE JobName = 'session_purge' AND StartedUtc > ?"
        return scalar(db, sql, (moment,))

    try:
        wait_for(lambda: started_since(datetime(2000, 1, 1)) >= 1, "a first run")
        execute(db, insert, ("session_purge", "Enabled", "N"))
        wait_for(lambda: records("timetable changed"), "the change logged")
        (change,) = records("timetable changed")
        assert (change.job, change.timetable, change.was) == (
            "session_purge",
            "disabled (overridden: Enabled; default every 2 seconds)",
            "every 2 seconds",
        )
        assert service.jobs == {}
        time.sleep(1)  # a run the last slot before the change started may still be on its way in
        off = scalar(db, "SELECT clock_timestamp() AT TIME ZONE 'UTC'")
        execute(db, insert, ("session_purge", "DailyAt", "25:00"))
        wait_for(lambda: records("timetable override ignored"), "the malformed override logged")
        time.sleep(3)  # six reads, and more than one slot of the job
        assert started_since(off) == 0
        (ignored,) = records("timetable override ignored")  # once, not once per read
        assert "job session_purge: setting DailyAt = '25:00'" in ignored.problem
        assert "keeps its default (every 2 seconds)" in ignored.problem
        assert len(records("timetable changed")) == 1
        execute(db, "UPDATE Ops.Setting SET Value = 'Y' WHERE JobName = 'session_purge' AND Name = 'Enabled'")
        on = scalar(db, "SELECT clock_timestamp() AT TIME ZONE 'UTC'")
        wait_for(lambda: started_since(on) >= 1, "runs again")
        assert thread.is_alive()  # a malformed override never stops the loop
    finally:
        service.stop()
        thread.join(WAIT)
