"""Ops retention: old job runs, their batch rows, quiet heartbeats, old dead letters, CDA access
log rows, job slot claims and upload dead letters go; nothing recent, nothing running.

Ages are relative to the moment the test runs, each well clear of its setting
(100 days against 90, 40 against 30, 8 against 7, 401 against 400, 31 against
30), so the tests hold on every day of the year.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from orchestrator.db.urls import libpq_url
from orchestrator.jobs import JOBS
from orchestrator.runner import run_job
from tests.support.paths import REPO_ROOT
from tests.support.sql import execute, fetch_all, scalar

JOB = JOBS["ops_retention"]
BATCH_OUT = ("Position", "Rows", "Done", "Note")


def utc_ago(days: float) -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(days=days)


def add_run(db, name: str, started_days_ago: float, status: str, batches: int) -> int:
    """One Ops.JobRun row (job ``name``, unique in the test) with ``batches`` batch rows."""
    started = utc_ago(started_days_ago)
    ended = None if status == "running" else started + timedelta(minutes=1)
    execute(
        db,
        "INSERT INTO Ops.JobRun (JobName, TriggeredBy, Host, StartedUtc, EndedUtc, Status) "
        "VALUES (?, 'test', 'test-host', ?, ?, ?)",
        (name, started, ended, status),
    )
    run_id = scalar(db, "SELECT JobRunId FROM Ops.JobRun WHERE JobName = ?", (name,))
    for batch_no in range(1, batches + 1):
        execute(
            db,
            "INSERT INTO Ops.JobRunBatch (JobRunId, BatchNo, StartedUtc, DurationMs, BatchSize, "
            "RowsAffected) VALUES (?, ?, ?, 5, 100, 100)",
            (run_id, batch_no, started),
        )
    return run_id


def add_heartbeat(db, component: str, beat_days_ago: float) -> None:
    beat = utc_ago(beat_days_ago)
    execute(
        db,
        "INSERT INTO Ops.Heartbeat (Component, Host, ProcessId, StartedUtc, BeatUtc) "
        "VALUES (?, 'test-host', 1, ?, ?)",
        (component, beat, beat),
    )


def add_dead_letter(db, reason: str, days_ago: float) -> None:
    at = utc_ago(days_ago)
    execute(
        db,
        "INSERT INTO Ops.QueueDeadLetter (QueueName, Body, EnqueuedUtc, DeliveryCount, Reason, "
        "DeadLetteredUtc) VALUES ('flp.aim', '{}', ?, 5, ?, ?)",
        (at, reason, at),
    )


def add_access(db, requester: str, days_ago: float, count: int = 1) -> None:
    at = utc_ago(days_ago)
    for _ in range(count):
        execute(
            db,
            "INSERT INTO PLSP.CdaAccessLog (AccessedUtc, RequesterKind, Requester, Purpose, HttpStatus, "
            "LatencyMs) VALUES (?, 'dds', ?, 'dds-retrieve', 200, 3)",
            (at, requester),
        )


def add_slot(db, job: str, days_ago: float) -> None:
    at = utc_ago(days_ago)
    execute(
        db,
        "INSERT INTO Ops.JobSlot (JobName, SlotUtc, ClaimedBy, Host, ClaimedUtc) "
        "VALUES (?, ?, 'orchestrator', 'test-host', ?)",
        (job, at, at),
    )


def add_upload_dead_letter(db, doc_no: int, days_ago: float) -> None:
    """One Upload.DeadLetterDocument row (document ``doc_no``) of the test's one bulk upload."""
    upload_id = scalar(db, "SELECT min(UploadId) FROM PLSP.Upload WHERE SorCode = '999999'")
    if upload_id is None:
        execute(
            db, "INSERT INTO PLSP.Upload (SorCode, Ydernummer, Status) VALUES ('999999', '999999', 'done')"
        )
        upload_id = scalar(db, "SELECT min(UploadId) FROM PLSP.Upload WHERE SorCode = '999999'")
    execute(
        db,
        "INSERT INTO Upload.DeadLetterDocument (UploadId, DocNo, DocRows, Document, Attempts, Reason, "
        "DeadLetteredUtc) VALUES (?, ?, 1, '{}', 3, 'test', ?)",
        (upload_id, doc_no, utc_ago(days_ago)),
    )


def upload_dead_letters(db) -> list[int]:
    return sorted(r[0] for r in fetch_all(db, "SELECT DocNo FROM Upload.DeadLetterDocument"))


def other_tables(db) -> dict:
    """What the tables version 2 of the job keeps short hold."""
    return {
        "dead_letters": sorted(r[0] for r in fetch_all(db, "SELECT Reason FROM Ops.QueueDeadLetter")),
        "accesses": sorted(r[0] for r in fetch_all(db, "SELECT Requester FROM PLSP.CdaAccessLog")),
        "slots": sorted(r[0] for r in fetch_all(db, "SELECT JobName FROM Ops.JobSlot")),
    }


def history(db) -> dict:
    """What the Ops tables hold, the retention job's own runs left out."""
    runs = fetch_all(db, "SELECT JobRunId FROM Ops.JobRun WHERE JobName <> 'ops_retention'")
    batches = fetch_all(
        db,
        "SELECT b.JobRunId, b.BatchNo FROM Ops.JobRunBatch AS b "
        "INNER JOIN Ops.JobRun AS r ON r.JobRunId = b.JobRunId WHERE r.JobName <> 'ops_retention'",
    )
    beats = fetch_all(db, "SELECT Component FROM Ops.Heartbeat")
    return {
        "runs": {r[0] for r in runs},
        "batches": {(r[0], r[1]) for r in batches},
        "heartbeats": {r[0] for r in beats},
    }


@pytest.fixture
def old_and_new(contract_db):
    """Runs and heartbeats on both sides of each setting; what must go is in ``gone``."""
    db = contract_db
    runs = {
        "old": add_run(db, "t_old", 100, "succeeded", 3),  # run and batch rows go
        "old_running": add_run(db, "t_old_running", 100, "running", 2),  # never touched
        "old_batches": add_run(db, "t_old_batches", 40, "succeeded", 2),  # batch rows go, run stays
        "recent": add_run(db, "t_recent", 10, "failed", 2),  # stays
        "old_no_batches": add_run(db, "t_old_no_batches", 100, "stopped", 0),  # run goes
    }
    add_heartbeat(db, "orchestrator@gone:1", 8)
    add_heartbeat(db, "orchestrator@alive:2", 0.001)
    before = history(db)
    gone_runs = {runs["old"], runs["old_no_batches"]}
    gone_batches = {b for b in before["batches"] if b[0] in (runs["old"], runs["old_batches"])}
    expected = {
        "runs": before["runs"] - gone_runs,
        "batches": before["batches"] - gone_batches,
        "heartbeats": {"orchestrator@alive:2"},
    }
    return db, before, expected, len(gone_runs) + len(gone_batches) + 1


def run(db, **kwargs):
    return run_job(db, JOB, triggered_by="test", **kwargs)


def test_the_job_is_in_the_timetable():
    assert JOB.procedure == "Job.ops_retention"
    assert JOB.timetable.daily_at is not None


def test_only_what_is_old_goes_and_a_running_run_never(old_and_new):
    db, _before, expected, removed = old_and_new

    result = run(db)

    assert result.result == "succeeded", result.error
    assert result.rows == removed
    assert history(db) == expected
    # The job's own run is recorded (and kept: it is recent).
    assert scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?", (result.job_run_id,)) == "succeeded"


def test_dry_run_writes_nothing_and_counts_what_a_real_run_then_removes(old_and_new):
    db, before, _expected, removed = old_and_new

    dry = run(db, execute=False)

    assert dry.result == "dry_run", dry.error
    assert dry.rows == removed
    assert history(db) == before
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun WHERE JobName = 'ops_retention'") == 0
    assert run(db).rows == removed


def test_a_second_run_finds_nothing_to_do(old_and_new):
    db, _before, expected, _removed = old_and_new
    assert run(db).result == "succeeded"

    again = run(db)

    assert again.result == "succeeded" and again.rows == 0
    assert history(db) == expected


def test_a_run_with_more_batch_rows_than_a_batch_goes_over_several_batches(contract_db):
    db = contract_db
    for name, value in (("BatchSizeStart", "40"), ("BatchSizeMin", "40"), ("BatchSizeMax", "40")):
        execute(
            db,
            "INSERT INTO Ops.Setting (JobName, Name, Value, Description) "
            "VALUES ('ops_retention', ?, ?, 'test')",
            (name, value),
        )
    big = add_run(db, "t_big", 100, "succeeded", 150)
    small = add_run(db, "t_small", 100, "succeeded", 10)
    keep = add_run(db, "t_keep", 1, "succeeded", 5)

    result = run(db)

    assert result.result == "succeeded", result.error
    assert result.rows == 150 + 1 + 10 + 1
    assert history(db)["runs"] == {keep}
    assert big not in history(db)["runs"] and small not in history(db)["runs"]
    batches = scalar(db, "SELECT count(*) FROM Ops.JobRunBatch WHERE JobRunId = ?", (result.job_run_id,))
    assert batches >= 5  # 162 rows in batches of at most 40


SETTINGS = (
    "JobRunDays",
    "JobRunBatchDays",
    "HeartbeatDays",
    "DeadLetterDays",
    "CdaAccessLogDays",
    "JobSlotDays",
    "UploadDeadLetterDays",
)


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("value", ["0", "ninety", "", "99999"])
def test_a_malformed_setting_stops_the_job_naming_it(contract_db, name, value):
    db = contract_db
    add_run(db, "t_old", 100, "succeeded", 1)
    original = scalar(
        db, "SELECT Value FROM Ops.Setting WHERE JobName = 'ops_retention' AND Name = ?", (name,)
    )
    try:
        execute(
            db, "UPDATE Ops.Setting SET Value = ? WHERE JobName = 'ops_retention' AND Name = ?", (value, name)
        )

        result = run(db)

        assert result.result == "failed"
        assert name in result.error
        assert scalar(db, "SELECT count(*) FROM Ops.JobRun WHERE JobName = 't_old'") == 1
    finally:
        execute(
            db,
            "UPDATE Ops.Setting SET Value = ? WHERE JobName = 'ops_retention' AND Name = ?",
            (original, name),
        )
    assert run(db).result == "succeeded"  # the lock was freed


def test_job_slots_are_kept_at_least_8_days(contract_db):
    # Job.job_slot_claim reads the last 7 days of a job's claims (its 'first' rule).
    db = contract_db
    update = "UPDATE Ops.Setting SET Value = ? WHERE JobName = 'ops_retention' AND Name = 'JobSlotDays'"
    execute(db, update, ("7",))
    try:
        result = run(db)
        assert result.result == "failed"
        assert "JobSlotDays" in result.error and "from 8 to 36500" in result.error
    finally:
        execute(db, update, ("30",))


def test_old_dead_letters_access_log_rows_and_job_slots_go_and_recent_ones_stay(contract_db):
    db = contract_db
    add_dead_letter(db, "old", 91)
    add_dead_letter(db, "recent", 89)
    add_access(db, "old", 401)
    add_access(db, "recent", 399)
    add_slot(db, "t_old_slot", 31)
    add_slot(db, "t_recent_slot", 29)
    add_run(db, "t_recent", 1, "succeeded", 1)

    dry = run(db, execute=False)
    assert dry.result == "dry_run", dry.error
    assert dry.rows == 3
    assert other_tables(db)["accesses"] == ["old", "recent"]

    result = run(db)

    assert result.result == "succeeded", result.error
    assert result.rows == 3
    assert other_tables(db) == {
        "dead_letters": ["recent"],
        "accesses": ["recent"],
        "slots": ["t_recent_slot"],
    }
    assert run(db).rows == 0


def test_full_batches_walk_each_table_oldest_first_to_the_end(contract_db):
    # Batches of 40: many rows share one millisecond (the keyset starts again at
    # the last time removed, inclusive), and each table needs several batches.
    db = contract_db
    for name, value in (("BatchSizeStart", "40"), ("BatchSizeMin", "40"), ("BatchSizeMax", "40")):
        execute(
            db,
            "INSERT INTO Ops.Setting (JobName, Name, Value, Description) "
            "VALUES ('ops_retention', ?, ?, 'test')",
            (name, value),
        )
    for days in (500, 450, 420):
        add_access(db, f"old{days}", days, count=30)  # 90 old rows, 30 to a millisecond
    add_access(db, "recent", 10, count=5)
    for n in range(45):
        add_dead_letter(db, f"old{n:02}", 100 + n)
    add_dead_letter(db, "recent", 1)
    for n in range(41):
        add_slot(db, f"t_slot_{n:02}", 40 + n / 10)
    add_slot(db, "t_recent_slot", 1)
    for n in range(85):
        add_heartbeat(db, f"orchestrator@gone:{n}", 9)

    dry = run(db, execute=False)
    result = run(db)

    assert result.result == "succeeded", result.error
    assert dry.rows == result.rows == 90 + 45 + 41 + 85
    assert other_tables(db) == {
        "dead_letters": ["recent"],
        "accesses": ["recent"] * 5,
        "slots": ["t_recent_slot"],
    }
    assert history(db)["heartbeats"] == set()
    sizes = fetch_all(
        db,
        "SELECT RowsAffected FROM Ops.JobRunBatch WHERE JobRunId = ? ORDER BY BatchNo",
        (result.job_run_id,),
    )
    assert max(r[0] for r in sizes) <= 40
    assert len(sizes) >= 3 + 2 + 2 + 2


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"BatchSize": 0, "Execute": "Y"}, "BatchSize"),
        ({"BatchSize": 4001, "Execute": "N"}, "BatchSize"),
        ({"BatchSize": 10, "Execute": "X"}, "Execute"),
        ({"BatchSize": 10, "Execute": "N", "Position": -1}, "Position"),
    ],
)
def test_the_batch_refuses_bad_parameters_naming_them(contract_db, params, named):
    db = contract_db
    with db.connect() as conn, pytest.raises(Exception, match=named):
        db.call(conn, "Job.ops_retention_batch", params, BATCH_OUT)


def test_the_documented_default_settings_are_there(contract_db):
    settings = dict(
        fetch_all(contract_db, "SELECT Name, Value FROM Ops.Setting WHERE JobName = 'ops_retention'")
    )
    assert settings == {
        "JobRunDays": "90",
        "JobRunBatchDays": "30",
        "HeartbeatDays": "7",
        "DeadLetterDays": "90",
        "CdaAccessLogDays": "400",
        "JobSlotDays": "30",
        "UploadDeadLetterDays": "30",
    }


def test_the_documented_psql_calls_work(db):
    page = (REPO_ROOT / "docs" / "jobs" / "ops_retention.md").read_text(encoding="utf-8")
    calls = [line.split("--")[0].strip() for line in page.splitlines() if line.startswith("CALL ")]
    assert calls == ["CALL Job.ops_retention(p_Execute => 'N');"]
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        (row,) = conn.execute(calls[0]).fetchall()
    assert row[1] == "dry_run"


def test_upload_dead_letters_older_than_the_setting_go_and_younger_ones_stay(contract_db):
    db = contract_db
    add_upload_dead_letter(db, 0, 31)  # older than UploadDeadLetterDays 30: goes
    add_upload_dead_letter(db, 1, 29)  # younger: stays
    add_upload_dead_letter(db, 2, 45)  # goes

    dry = run(db, execute=False)

    assert dry.result == "dry_run", dry.error
    assert dry.rows == 2
    assert upload_dead_letters(db) == [0, 1, 2]  # the dry run deleted nothing

    result = run(db)

    assert result.result == "succeeded", result.error
    assert result.rows == 2
    assert upload_dead_letters(db) == [1]
    notes = fetch_all(db, "SELECT Note FROM Ops.JobRunBatch WHERE JobRunId = ?", (result.job_run_id,))
    assert any(n[0].startswith("phase 5: deleted 2 upload dead letters") for n in notes)
    assert run(db).rows == 0


def test_upload_dead_letters_follow_their_own_setting(contract_db):
    db = contract_db
    add_upload_dead_letter(db, 0, 10)
    add_upload_dead_letter(db, 1, 3)
    update = "UPDATE Ops.Setting SET Value = ? WHERE JobName = 'ops_retention' AND Name = ?"
    execute(db, update, ("7", "UploadDeadLetterDays"))
    try:
        result = run(db)
    finally:
        execute(db, update, ("30", "UploadDeadLetterDays"))
    assert result.result == "succeeded", result.error
    assert upload_dead_letters(db) == [1]


def test_upload_dead_letters_go_at_most_100_a_batch(contract_db):
    # A dead letter may hold a document of 4,000 rows: however large the engine's batch,
    # phase 5 removes at most 100 documents in one transaction.
    db = contract_db
    for n in range(230):
        add_upload_dead_letter(db, n, 40 + n / 100)  # 230 old, distinct times
    add_upload_dead_letter(db, 1000, 1)

    result = run(db)

    assert result.result == "succeeded", result.error
    assert result.rows == 230
    assert upload_dead_letters(db) == [1000]
    batches = fetch_all(
        db,
        "SELECT RowsAffected, Note FROM Ops.JobRunBatch WHERE JobRunId = ? ORDER BY BatchNo",
        (result.job_run_id,),
    )
    phase5 = [rows for rows, note in batches if note.startswith("phase 5:")]
    assert sum(phase5) == 230 and max(phase5) <= 100 and len(phase5) >= 3
