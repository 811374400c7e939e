"""Log clean-up: whole old months go, the retention window stays, writers never wait for it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest

from orchestrator.db.urls import libpq_url
from orchestrator.jobs import JOBS
from orchestrator.runner import run_job
from tests.support.sql import execute, fetch_all, scalar

JOB = JOBS["log_cleanup"]
WRITER_MAX_SECONDS = 1.0  # the promise: a log writer never waits longer than this
WRITER_QUICK_SECONDS = 0.3  # what a writer takes while the clean-up waits for a lock, at least
DEFAULT_ONLY_MONTH = datetime(2023, 5, 1)  # no partition before 2024: these rows sit in the default
FAR_FUTURE_MONTH = datetime(2099, 1, 1)  # no partition either, but inside the window
DOCUMENTED_PSQL_CALL = "CALL Job.log_cleanup(p_Execute => 'N')"
WAIT_SECONDS = 10  # longest a test waits for the job to reach a state
INSERT_LOG = "INSERT INTO PLSP.Log (LoggedUtc, Level, Source, Message) VALUES (%s, 'INFO', 'test', %s)"


def month_start(offset: int = 0) -> datetime:
    """The first instant of the UTC month ``offset`` months from now."""
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 1 + offset
    return datetime(index // 12, index % 12 + 1, 1)


def add_log_rows(db, month: datetime, count: int) -> None:
    """``count`` rows spread over the first days of ``month``, through the parent table."""
    execute(
        db,
        "INSERT INTO PLSP.Log (LoggedUtc, Level, Source, Message) "
        "SELECT ?::timestamp + g * INTERVAL '1 second', 'INFO', 'test', 'row ' || g "
        "FROM generate_series(0, ? - 1) AS g",
        (month, count),
    )


def rows_between(db, start: datetime, end: datetime) -> int:
    return scalar(db, "SELECT count(*) FROM PLSP.Log WHERE LoggedUtc >= ? AND LoggedUtc < ?", (start, end))


def set_setting(db, name: str, value: str) -> None:
    execute(db, "UPDATE Ops.Setting SET Value = ? WHERE JobName = 'log_cleanup' AND Name = ?", (value, name))


def setting(db, name: str) -> str:
    return scalar(db, "SELECT Value FROM Ops.Setting WHERE JobName = 'log_cleanup' AND Name = ?", (name,))


def batches(db, job_run_id: int, column: str) -> list:
    sql = f"SELECT {column} FROM Ops.JobRunBatch WHERE JobRunId = ? ORDER BY BatchNo"
    return [r[0] for r in fetch_all(db, sql, (job_run_id,))]


def batch_notes(db, job_run_id: int) -> list[str]:
    return batches(db, job_run_id, "Note")


def all_notes(db) -> list[str]:
    return [r[0] for r in fetch_all(db, "SELECT Note FROM Ops.JobRunBatch")]


def attached_partitions(db) -> set[str]:
    return {
        r[0]
        for r in fetch_all(
            db, "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'plsp.log'::regclass"
        )
    }


def partition_name(month: datetime) -> str:
    return f"plsp.log_{month:%Y%m}"


@pytest.fixture
def quick(db):
    """No pause between batches: the tests do not wait for the sleep."""
    execute(db, "UPDATE Ops.Setting SET Value = '0' WHERE JobName = '*' AND Name = 'SleepFactor'")
    return db


@pytest.fixture
def months(quick):
    """Rows in three old months, the current month, and both ends of the default partition."""
    db = quick
    for offset, count in ((-3, 300), (-2, 200), (-1, 100), (0, 50)):
        add_log_rows(db, month_start(offset), count)
    add_log_rows(db, DEFAULT_ONLY_MONTH, 30)
    add_log_rows(db, FAR_FUTURE_MONTH, 7)
    return db


def test_old_months_go_and_the_current_month_stays(months):
    db = months
    current = month_start(0)

    result = run_job(db, JOB, triggered_by="test")

    assert (result.result, result.rows) == ("succeeded", 300 + 200 + 100 + 30)
    assert rows_between(db, datetime(1, 1, 1), current) == 0
    assert rows_between(db, current, month_start(1)) == 50
    assert rows_between(db, FAR_FUTURE_MONTH, datetime(2100, 1, 1)) == 7
    notes = batch_notes(db, result.job_run_id)
    for offset in (-3, -2, -1):
        assert any(n.startswith(f"emptied {partition_name(month_start(offset))} ") for n in notes), notes
    assert any("from PLSP.Log_Default" in n for n in notes), notes
    assert scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?", (result.job_run_id,)) == "succeeded"


def test_retention_months_keep_that_many_months_before_the_current_one(months):
    db = months
    set_setting(db, "RetentionMonths", "2")

    result = run_job(db, JOB, triggered_by="test")

    assert result.rows == 300 + 30
    assert rows_between(db, datetime(1, 1, 1), month_start(-2)) == 0
    assert rows_between(db, month_start(-2), month_start(1)) == 200 + 100 + 50


def test_rows_in_the_default_partition_go_in_batches_of_at_most_batch_size_max(quick):
    db = quick
    for name in ("BatchSizeStart", "BatchSizeMax"):
        execute(db, "UPDATE Ops.Setting SET Value = '100' WHERE JobName = '*' AND Name = ?", (name,))
    add_log_rows(db, DEFAULT_ONLY_MONTH, 250)

    result = run_job(db, JOB, triggered_by="test")

    rows = batches(db, result.job_run_id, "RowsAffected")
    assert result.rows == 250 and max(rows) == 100
    assert scalar(db, "SELECT count(*) FROM PLSP.Log_Default") == 0


def test_dry_run_counts_what_would_go_and_writes_nothing(months):
    db = months
    next_month = partition_name(month_start(1))
    execute(db, f"DROP TABLE {next_month}")
    before = scalar(db, "SELECT count(*) FROM PLSP.Log")
    partitions = attached_partitions(db)

    result = run_job(db, JOB, triggered_by="test", execute=False)

    # The rows that would go, and one unit of work for the partition it would create.
    assert (result.result, result.rows, result.job_run_id) == ("dry_run", 300 + 200 + 100 + 30 + 1, None)
    assert scalar(db, "SELECT count(*) FROM PLSP.Log") == before
    assert attached_partitions(db) == partitions
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun") == 0
    assert scalar(db, "SELECT count(*) FROM Ops.JobRunBatch") == 0


def test_partitions_for_the_coming_months_exist_after_a_run(quick):
    db = quick
    # Take two coming months away; a row for the first lands in the default partition.
    for offset in (1, 2):
        execute(db, f"DROP TABLE IF EXISTS {partition_name(month_start(offset))}")
    add_log_rows(db, month_start(1), 5)
    months_ahead = int(setting(db, "PartitionMonthsAhead"))

    result = run_job(db, JOB, triggered_by="test")

    assert result.result == "succeeded"
    wanted = {partition_name(month_start(offset)) for offset in range(months_ahead + 1)}
    assert wanted <= attached_partitions(db)
    # The early row moved into its month's new partition, none was lost.
    assert scalar(db, f"SELECT count(*) FROM {partition_name(month_start(1))}") == 5
    assert scalar(db, "SELECT count(*) FROM PLSP.Log_Default") == 0
    assert any(n.startswith("created ") for n in batch_notes(db, result.job_run_id))


class LogWriter:
    """A thread inserting log rows for now through PLSP.Log, timing every insert."""

    def __init__(self, db):
        self.conn = psycopg.connect(libpq_url(db.url), autocommit=True)
        self.latencies: list[float] = []
        self.errors: list[Exception] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            started = time.perf_counter()
            try:
                self.conn.execute(INSERT_LOG, (datetime.now(UTC).replace(tzinfo=None), f"writer {n}"))
            except Exception as exc:  # every failure is a finding
                self.errors.append(exc)
            self.latencies.append(time.perf_counter() - started)
            time.sleep(0.002)

    def __enter__(self) -> LogWriter:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.conn.close()


def test_a_concurrent_writer_never_fails_nor_waits_a_second(quick):
    db = quick
    # 10,000 rows a month: still counted exactly (beyond, the count is pg_stat's).
    for offset in range(-12, 0):
        add_log_rows(db, month_start(offset), 10_000)

    with LogWriter(db) as writer:
        time.sleep(0.2)
        result = run_job(db, JOB, triggered_by="test")
        time.sleep(0.2)

    assert (result.result, result.rows) == ("succeeded", 12 * 10_000)
    assert writer.errors == []
    assert len(writer.latencies) > 50
    assert max(writer.latencies) < WRITER_MAX_SECONDS, f"longest insert {max(writer.latencies):.3f} s"
    assert rows_between(db, month_start(0), month_start(1)) == len(writer.latencies)


def test_the_cleanup_gives_up_on_a_busy_month_without_making_anyone_wait(months):
    db = months
    lock_wait_ms = 2500  # a writer queued behind the clean-up would wait about this long
    set_setting(db, "LockWaitMs", str(lock_wait_ms))
    busy = partition_name(month_start(-2))
    # An open transaction that read the month holds a lock TRUNCATE conflicts with.
    reader = psycopg.connect(libpq_url(db.url))
    reader.execute(f"SELECT count(*) FROM {busy}").fetchone()
    results: list = []
    cleanup = threading.Thread(target=lambda: results.append(run_job(db, JOB, triggered_by="test")))
    # The baseline, measured here: what a write and a whole-log read take on this
    # machine now, with no clean-up running (the reader's lock is already held).
    with LogWriter(db) as idle_writer:
        idle_reads = []
        for _ in range(30):  # about as long as the clean-up's wait below, to catch the machine's stalls
            t = time.perf_counter()
            scalar(db, "SELECT count(*) FROM PLSP.Log")
            idle_reads.append(time.perf_counter() - t)
            time.sleep(0.05)
    # A writer or reader queued behind the clean-up's lock request would wait
    # about LockWaitMs; well below that, and above what the machine takes anyway.
    bound = min(
        max(WRITER_QUICK_SECONDS, 3 * max(idle_writer.latencies + idle_reads)), 0.6 * lock_wait_ms / 1000
    )
    started = time.perf_counter()
    try:
        with LogWriter(db) as writer:
            cleanup.start()
            # While the clean-up waits for the month, a reader of the whole log
            # (which locks every partition) is not held up either.
            reads = []
            while cleanup.is_alive():
                t = time.perf_counter()
                scalar(db, "SELECT count(*) FROM PLSP.Log")
                reads.append(time.perf_counter() - t)
                time.sleep(0.05)
        cleanup.join()
        elapsed = time.perf_counter() - started
        assert reader.execute(f"SELECT count(*) FROM {busy}").fetchone()[0] == 200
    finally:
        reader.close()

    result = results[0]
    assert elapsed >= lock_wait_ms / 1000  # it did wait for the month ...
    assert writer.errors == []
    assert idle_writer.errors == []
    assert max(writer.latencies) < bound, (writer.latencies, bound)  # ... but no writer waited for it
    assert max(reads) < bound, (reads, bound)
    assert (result.result, result.rows) == ("succeeded", 300 + 100 + 30)
    assert any(n.startswith(f"{busy} busy") for n in batch_notes(db, result.job_run_id))
    # The next run takes the month once nobody reads it.
    again = run_job(db, JOB, triggered_by="test")
    assert again.rows == 200
    assert rows_between(db, datetime(1, 1, 1), month_start(0)) == 0


def test_a_bad_setting_fails_the_run_with_its_name(quick):
    db = quick
    set_setting(db, "RetentionMonths", "-1")

    result = run_job(db, JOB, triggered_by="test")

    assert result.result == "failed"
    assert "RetentionMonths" in result.error
    assert scalar(db, "SELECT Status FROM Ops.JobRun") == "failed"


def test_the_documented_psql_call_works(months):
    db = months
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute(DOCUMENTED_PSQL_CALL)
        assert cur.fetchone() == (None, "dry_run", 300 + 200 + 100 + 30)


def test_a_kill_mid_run_keeps_every_finished_month_and_loses_nothing_it_should_keep(months):
    db = months
    set_setting(db, "LockWaitMs", "10000")
    busy = partition_name(month_start(-2))
    reader = psycopg.connect(libpq_url(db.url))
    reader.execute(f"SELECT count(*) FROM {busy}").fetchone()
    results: list = []

    cleanup = threading.Thread(target=lambda: results.append(run_job(db, JOB, triggered_by="test")))
    try:
        cleanup.start()
        # The oldest month is done and committed; the job now waits for the busy one.
        deadline = time.monotonic() + WAIT_SECONDS
        while not any(n.startswith(f"emptied {partition_name(month_start(-3))}") for n in all_notes(db)):
            assert time.monotonic() < deadline, "the first month was never emptied"
            time.sleep(0.01)
        killed = scalar(
            db,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE query ILIKE '%%job.log_cleanup(%%' AND pid <> pg_backend_pid()",
        )
        cleanup.join(WAIT_SECONDS)
    finally:
        reader.close()

    assert killed == 1 and not cleanup.is_alive()
    assert results[0].result == "failed"  # reported, not raised, though its session is gone
    assert rows_between(db, month_start(-3), month_start(-2)) == 0  # committed before the kill
    assert rows_between(db, month_start(-2), month_start(-1)) == 200  # never emptied
    assert rows_between(db, month_start(-1), month_start(0)) == 100  # not reached
    assert rows_between(db, month_start(0), month_start(1)) == 50
    # The next run finishes the work.
    again = run_job(db, JOB, triggered_by="test")
    assert (again.result, again.rows) == ("succeeded", 200 + 100 + 30)
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun WHERE Status = 'abandoned'") == 1
    assert rows_between(db, datetime(1, 1, 1), month_start(0)) == 0
    assert rows_between(db, month_start(0), month_start(1)) == 50


def test_the_orchestrator_role_runs_it_without_any_table_right(months):
    db = months
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        conn.execute("SET ROLE flp_orchestrator")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE PLSP.Log_Default")
        result = conn.execute("CALL Job.log_cleanup(p_TriggeredBy => 'test')").fetchone()
    assert result[1:] == ("succeeded", 300 + 200 + 100 + 30)
    assert rows_between(db, datetime(1, 1, 1), month_start(0)) == 0
