"""Archive AIM test helpers, shared by tests/test_archive_aim.py and
tests/test_batch_engine.py (which tests the batch engine through this job):
FLP_AIM rows of known kinds, settings, a slowed-down server, a job in a thread.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg

from orchestrator.db.urls import libpq_url
from orchestrator.jobs import JOBS
from orchestrator.runner import JobResult, run_job
from tests.support.sql import execute, fetch_all

JOB = JOBS["archive_aim"]
AIM_COLUMNS = "Id, ForloebsplanId, Status, CreatedUtc, QueuedUtc, DeliveredUtc"
RETENTION_DAYS = 7
BATCH_OUT = ("Position", "Rows", "Done", "Note")
LOCK_WAIT_SECONDS = 10  # longest a test waits for a job to reach a state
POLL_SECONDS = 0.005
# The job's session-level lock, as Job.job_run_start takes it.
# The calls docs/jobs/archive_aim.md shows, verbatim.
DOCUMENTED_PSQL_DRY_RUN = (
    "CALL job.archive_aim(p_Execute => 'N', p_JobRunId => NULL, p_Result => NULL, p_RowsAffected => NULL);"
)
DOCUMENTED_PSQL_RUN = (
    "CALL job.archive_aim(p_Execute => 'Y', p_TimeLimitSeconds => 600, p_TriggeredBy => 'manual');"
)
COPY_TO_HISTORY = (
    f"INSERT INTO PLSP.FLP_AIM_History ({AIM_COLUMNS}) SELECT {AIM_COLUMNS} FROM PLSP.FLP_AIM WHERE Id = ?"
)
JOB_LOCK_FILTER = """
    l.locktype = 'advisory' AND l.granted
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('flp-job:archive_aim', 0)
"""

# Row kinds: (Status, age of QueuedUtc in days, age of DeliveredUtc in days; None = NULL).
PENDING = (0, None, None)
QUEUED = (1, 3, None)
DELIVERED_OLD = (2, RETENTION_DAYS + 3, RETENTION_DAYS + 2)
DELIVERED_YOUNG = (2, 2, 1)
DELIVERED_UNDATED = (2, 3, None)  # delivered without a time: never old enough
MIX = (PENDING, QUEUED, DELIVERED_OLD, DELIVERED_YOUNG, DELIVERED_OLD, DELIVERED_UNDATED)


def utc_now() -> datetime:
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def load_aim(db, count: int, kinds=MIX) -> int:
    """Insert ``count`` FLP_AIM rows cycling through ``kinds``; return how many may go."""
    now = utc_now()
    rows = []
    for i in range(count):
        status, queued_days, delivered_days = kinds[i % len(kinds)]
        rows.append(
            (
                1000 + i,
                status,
                now - timedelta(days=30),
                None if queued_days is None else now - timedelta(days=queued_days),
                None if delivered_days is None else now - timedelta(days=delivered_days),
            )
        )
    sql = (
        "INSERT INTO PLSP.FLP_AIM (ForloebsplanId, Status, CreatedUtc, QueuedUtc, DeliveredUtc) "
        "VALUES (?, ?, ?, ?, ?)"
    )
    with db.connect() as conn:
        cur = conn.cursor()
        try:
            cur.executemany(sql.replace("?", "%s") if db.kind == "postgresql" else sql, rows)
        finally:
            cur.close()
    return sum(1 for i in range(count) if kinds[i % len(kinds)] == DELIVERED_OLD)


def aim_rows(db, table: str = "PLSP.FLP_AIM") -> dict[int, tuple]:
    return {r[0]: r for r in fetch_all(db, f"SELECT {AIM_COLUMNS} FROM {table} ORDER BY Id")}


def may_go(rows: dict[int, tuple], now: datetime, retention_days: int = RETENTION_DAYS) -> set[int]:
    cutoff = now - timedelta(days=retention_days)
    return {i for i, r in rows.items() if r[2] == 2 and r[5] is not None and r[5] < cutoff}


def set_setting(db, name: str, value: str, job: str = "archive_aim") -> None:
    execute(db, "DELETE FROM Ops.Setting WHERE JobName = ? AND Name = ?", (job, name))
    execute(
        db,
        "INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES (?, ?, ?, ?)",
        (job, name, value, "set by a test"),
    )


def set_settings(db, **values) -> None:
    for name, value in values.items():
        set_setting(db, name, str(value))


def slow_down_batches(db, ms: int) -> None:
    """Make every moving statement take at least ``ms`` more (a slow disk, as seen by the job).

    A statement trigger in the test's own database; the dry-run count is not slowed.
    """
    execute(
        db,
        f"""CREATE FUNCTION public.test_slow_batch() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_sleep({ms / 1000});
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER test_slow_batch AFTER DELETE ON PLSP.FLP_AIM
            FOR EACH STATEMENT EXECUTE FUNCTION public.test_slow_batch();""",
    )


def run(db, **kwargs) -> JobResult:
    return run_job(db, JOB, triggered_by="test", **kwargs)


def assert_conserved(db, original: dict[int, tuple]) -> tuple[set[int], set[int]]:
    """Hot table + history hold exactly the original rows, each once; return both id sets."""
    hot = aim_rows(db)
    history = aim_rows(db, "PLSP.FLP_AIM_History")
    assert not hot.keys() & history.keys(), "a row is in both tables"
    assert {**hot, **history} == original, "a row was lost, added or changed"
    return set(hot), set(history)


class JobThread(threading.Thread):
    """Runs the job on its own connection; keeps the result and, if it failed, the error."""

    def __init__(self, db, **kwargs) -> None:
        super().__init__(daemon=True)
        self.db, self.kwargs = db, kwargs
        self.result: JobResult | None = None
        self.error: str | None = None

    def run(self) -> None:
        self.result = run(self.db, **self.kwargs)
        if self.result.result == "failed":  # a terminated backend is reported here
            self.error = self.result.error


def kill_context(error: str | None) -> str:
    """Where a terminated run was: the server's error context that run_job reports."""
    if error and "terminating connection" in error and "\nCONTEXT:  " in error:
        return error.split("\nCONTEXT:  ", 1)[1]
    return "between statements"


def admin(db) -> psycopg.Connection:
    return psycopg.connect(libpq_url(db.url), autocommit=True)


def wait_for(predicate, what: str, seconds: float = LOCK_WAIT_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)


def job_backend_pid(conn: psycopg.Connection) -> int | None:
    row = conn.execute(f"SELECT l.pid FROM pg_locks AS l WHERE {JOB_LOCK_FILTER}").fetchone()
    return None if row is None else row[0]


def batches(db, run_id: int) -> list[tuple]:
    return fetch_all(
        db,
        "SELECT BatchNo, DurationMs, BatchSize, RowsAffected, Note FROM Ops.JobRunBatch "
        "WHERE JobRunId = ? ORDER BY BatchNo",
        (run_id,),
    )


# ------------------------------------------------------------------------------
# What moves
# ------------------------------------------------------------------------------
