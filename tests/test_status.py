"""The Monitor read procedures and ``flp status`` (issue 6).

Rows are put into Ops.JobRun with times relative to the database's own now, so
the tests mean the same on every day of the year. Contract tests (``contract_db``)
give every test its own job names: a SQL Server test database is shared.
"""

from __future__ import annotations

import uuid

import pytest

from orchestrator.db import migrate
from tests.support.sql import execute, scalar


def job_name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def ago(db, minutes: float, plus_seconds: float = 0) -> str:
    """SQL for the database's UTC now minus ``minutes``, plus ``plus_seconds``."""
    ms = round(-minutes * 60_000 + plus_seconds * 1000)
    if db.kind == "postgresql":
        return f"((now() AT TIME ZONE 'UTC') + interval '{ms} milliseconds')"
    return f"DATEADD(MILLISECOND, {ms}, SYSUTCDATETIME())"


def add_run(
    db,
    job: str,
    status: str,
    minutes_ago: float,
    seconds: float | None = 2,
    rows: int = 0,
    message: str | None = None,
    host: str = "host-a",
    triggered_by: str = "test",
) -> int:
    """One Ops.JobRun row started ``minutes_ago``; ``seconds`` None: still running."""
    ended = "NULL" if seconds is None else ago(db, minutes_ago, seconds)
    execute(
        db,
        "INSERT INTO Ops.JobRun (JobName, TriggeredBy, Host, StartedUtc, EndedUtc, Status, RowsAffected, "
        f"Parameters, Message) VALUES (?, ?, ?, {ago(db, minutes_ago)}, {ended}, ?, ?, ?, ?)",
        (job, triggered_by, host, status, rows, "Execute=Y", message),
    )
    return scalar(db, "SELECT MAX(JobRunId) FROM Ops.JobRun WHERE JobName = ?", (job,))


def add_batch(db, run_id: int, batch_no: int, rows: int, note: str) -> None:
    execute(
        db,
        "INSERT INTO Ops.JobRunBatch (JobRunId, BatchNo, StartedUtc, DurationMs, BatchSize, RowsAffected, "
        f"Note) VALUES (?, ?, {ago(db, 1)}, ?, ?, ?, ?)",
        (run_id, batch_no, 10 * batch_no, 1000, rows, note),
    )


def rows(db, routine: str, params: dict | None = None) -> list[dict]:
    with db.connect() as conn:
        return db.rows(conn, routine, params or {})


# ---------------------------------------------------------------------------
# Monitor procedures (contract tests: PostgreSQL, and SQL Server when given)
# ---------------------------------------------------------------------------


def test_schema_revision_is_the_applied_migration(contract_db):
    with contract_db.connect() as conn:
        out = contract_db.call(conn, "Monitor.schema_revision", {}, ("Revision",))
    assert out == {"Revision": migrate.current(contract_db.url)}
    assert out["Revision"] is not None


def test_last_runs_count_the_window_and_the_failures_in_a_row(contract_db):
    failing, healthy = job_name(), job_name()
    add_run(contract_db, failing, "succeeded", minutes_ago=30 * 60, rows=7)  # outside 24 hours
    add_run(contract_db, failing, "failed", minutes_ago=20 * 60, message="boom 1")
    add_run(contract_db, failing, "abandoned", minutes_ago=15 * 60)  # neither counts nor breaks
    add_run(contract_db, failing, "failed", minutes_ago=10 * 60, message="boom 2")
    last = add_run(contract_db, failing, "failed", minutes_ago=120, seconds=3.5, message="boom 3", host="h2")
    add_run(contract_db, failing, "skipped", minutes_ago=1, seconds=0)  # not the last *run*
    add_run(contract_db, healthy, "failed", minutes_ago=300)
    add_run(contract_db, healthy, "stopped", minutes_ago=200, rows=5)  # a clean end breaks the streak
    add_run(contract_db, healthy, "failed", minutes_ago=100)
    add_run(contract_db, healthy, "succeeded", minutes_ago=50, rows=9)

    found = {r["jobname"]: r for r in rows(contract_db, "Monitor.job_last_runs")}
    f, h = found[failing], found[healthy]

    assert (f["jobrunid"], f["status"], f["host"], f["message"]) == (last, "failed", "h2", "boom 3")
    assert (f["runsinwindow"], f["failuresinwindow"], f["consecutivefailures"]) == (5, 3, 3)
    assert f["durationms"] == 3500
    since_success = f["nowutc"] - f["lastsucceededutc"]
    assert 30 * 3600 - 60 < since_success.total_seconds() < 30 * 3600 + 60
    assert (h["status"], h["rowsaffected"], h["consecutivefailures"]) == ("succeeded", 9, 0)
    assert (h["runsinwindow"], h["failuresinwindow"]) == (4, 2)


def test_last_runs_of_one_job_and_a_wider_window(contract_db):
    job, other = job_name(), job_name()
    add_run(contract_db, job, "succeeded", minutes_ago=30 * 60)
    add_run(contract_db, job, "failed", minutes_ago=60)
    add_run(contract_db, other, "succeeded", minutes_ago=60)

    found = rows(contract_db, "Monitor.job_last_runs", {"JobName": job, "WindowHours": 48})

    assert [(r["jobname"], r["runsinwindow"], r["failuresinwindow"]) for r in found] == [(job, 2, 1)]


def test_a_running_run_lasts_until_the_database_now(contract_db):
    job = job_name()
    add_run(contract_db, job, "running", minutes_ago=5, seconds=None)

    (found,) = rows(contract_db, "Monitor.job_last_runs", {"JobName": job})

    assert found["status"] == "running" and found["endedutc"] is None
    assert 5 * 60_000 - 5_000 < found["durationms"] < 5 * 60_000 + 5_000
    assert found["lastsucceededutc"] is None


def test_runs_of_a_job_come_newest_first_with_their_batches(contract_db):
    job = job_name()
    oldest = add_run(contract_db, job, "succeeded", minutes_ago=30)
    middle = add_run(contract_db, job, "succeeded", minutes_ago=20, rows=3)
    newest = add_run(contract_db, job, "failed", minutes_ago=10)
    add_batch(contract_db, middle, 1, 2, "ids 1-2")
    add_batch(contract_db, middle, 2, 1, "ids 3-3")

    found = rows(contract_db, "Monitor.job_runs", {"JobName": job, "Limit": 2})
    every = rows(contract_db, "Monitor.job_runs", {"JobName": job})

    assert [(r["jobrunid"], r["batches"]) for r in found] == [(newest, 0), (middle, 2)]
    assert [r["jobrunid"] for r in every] == [newest, middle, oldest]


def test_one_run_and_its_batches_in_order(contract_db):
    job = job_name()
    run = add_run(contract_db, job, "succeeded", minutes_ago=10, rows=30, message="2 batches")
    add_batch(contract_db, run, 2, 10, "ids 21-30")
    add_batch(contract_db, run, 1, 20, "ids 1-20")

    (header,) = rows(contract_db, "Monitor.job_run", {"JobRunId": run})
    batches = rows(contract_db, "Monitor.job_run_batches", {"JobRunId": run})

    assert (header["jobname"], header["parameters"], header["batches"]) == (job, "Execute=Y", 2)
    assert [(b["batchno"], b["rowsaffected"], b["note"]) for b in batches] == [
        (1, 20, "ids 1-20"),
        (2, 10, "ids 21-30"),
    ]
    assert rows(contract_db, "Monitor.job_run", {"JobRunId": run + 1000}) == []
    assert rows(contract_db, "Monitor.job_run_batches", {"JobRunId": run + 1000}) == []


def test_heartbeats_come_most_recent_first(contract_db):
    stale, fresh = f"orchestrator@{job_name()}", f"orchestrator@{job_name()}"
    for component, minutes in ((stale, 90), (fresh, 0.5)):
        execute(
            contract_db,
            "INSERT INTO Ops.Heartbeat (Component, Host, ProcessId, StartedUtc, BeatUtc) "
            f"VALUES (?, 'host-a', 42, {ago(contract_db, 120)}, {ago(contract_db, minutes)})",
            (component,),
        )

    found = [r for r in rows(contract_db, "Monitor.heartbeats") if r["component"] in (stale, fresh)]

    assert [r["component"] for r in found] == [fresh, stale]
    age = (found[1]["nowutc"] - found[1]["beatutc"]).total_seconds()
    assert 90 * 60 - 60 < age < 90 * 60 + 60


@pytest.mark.parametrize(
    ("routine", "params", "named"),
    [
        ("Monitor.job_last_runs", {"JobName": "Not A Job"}, "JobName"),
        ("Monitor.job_last_runs", {"WindowHours": 0}, "WindowHours"),
        ("Monitor.job_runs", {"JobName": None}, "JobName"),
        ("Monitor.job_runs", {"JobName": "archive_aim", "Limit": 0}, "Limit"),
        ("Monitor.job_run", {"JobRunId": 0}, "JobRunId"),
        ("Monitor.job_run_batches", {"JobRunId": None}, "JobRunId"),
    ],
)
def test_a_bad_parameter_is_refused_by_name(contract_db, routine, params, named):
    with pytest.raises(Exception, match=f"parameter [@p_]*{named} is not supported"):
        rows(contract_db, routine, params)
