"""The orchestrator's kept job sessions (Database.connect(keep=...), run_job(keep_session=True)),
on real PostgreSQL: kept only when clean, never after a failure, and two orchestrators side by
side still never run the same job at once."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from orchestrator.db import connection
from orchestrator.db.connection import Database
from orchestrator.jobs import JOBS, Job, Timetable
from orchestrator.runner import run_job
from orchestrator.scheduler import Orchestrator
from tests.support.sql import execute, fetch_all, fetch_one, scalar
from tests.test_orchestrator import FAILING_JOB_SQL, THREAD_WAIT, job_procedure

PURGE = JOBS["session_purge"]  # a batched job: Job.run_batched sets and restores application_name
FAILING = Job("test_failing_job", "Job.test_failing_job", "fails on purpose", Timetable(every_minutes=1))
OVERLAP = Job(
    "test_overlap_job", "Job.test_overlap_job", "holds its lock a while", Timetable(every_minutes=1)
)
OVERLAP_SECONDS = 0.5  # how long a run of OVERLAP holds the job lock
ROUNDS = 4  # rounds of two orchestrators starting the same job together

# Holds the job lock for a while, then finishes; steps aside when the lock is taken.
OVERLAP_JOB_SQL = job_procedure(
    "test_overlap_job",
    f"""    IF p_Result = 'already_running' THEN
        p_RowsAffected := 0;
        RETURN;
    END IF;
    PERFORM pg_sleep({OVERLAP_SECONDS});
    CALL Job.job_run_finish(p_JobRunId, 'succeeded', 0, NULL);
    p_Result := 'succeeded';
    p_RowsAffected := 0;""",
)


# The client sessions of this database but the one asking.
OTHER_SESSIONS = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)

# The advisory (job) locks held in this database (other tests' databases share the server).
ADVISORY_LOCKS = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def kept_pid(db: Database, key: str) -> int:
    return db._kept[key].raw.driver_connection.info.backend_pid


def backend(db: Database, pid: int) -> tuple | None:
    """(state, application_name, advisory locks, xact_start) of a backend, seen from another session."""
    return fetch_one(
        db,
        "SELECT a.state, a.application_name, "
        "(SELECT count(*) FROM pg_locks AS l WHERE l.pid = a.pid AND l.locktype = 'advisory'), a.xact_start "
        "FROM pg_stat_activity AS a WHERE a.pid = ?",
        (pid,),
    )


@pytest.fixture
def sessions_closed():
    """Databases made in a test, their kept sessions closed at its end (the db fixture drops with FORCE)."""
    made: list[Database] = []
    yield made
    for database in made:
        database.close_kept_sessions()
        database.engine.dispose()


def test_a_succeeded_run_keeps_its_session_clean_and_the_next_run_reuses_it(db):
    first = run_job(db, PURGE, triggered_by="test", keep_session=True)
    assert first.result == "succeeded", first.error
    assert db.kept_session_count() == 1
    pid = kept_pid(db, PURGE.name)
    state, application_name, locks, xact_start = backend(db, pid)
    # No transaction, no job lock, and not marked as a job session for the health gate.
    assert (state, locks, xact_start) == ("idle", 0, None)
    assert not application_name.startswith("flp-job:")

    second = run_job(db, PURGE, triggered_by="test", keep_session=True)
    assert second.result == "succeeded", second.error
    assert kept_pid(db, PURGE.name) == pid
    db.close_kept_sessions()
    assert db.kept_session_count() == 0
    assert backend(db, pid) is None


def test_a_failed_run_closes_its_session(db):
    execute(db, FAILING_JOB_SQL)
    ok = run_job(db, PURGE, triggered_by="test", keep_session=True)
    assert ok.result == "succeeded", ok.error
    result = run_job(db, FAILING, triggered_by="test", keep_session=True)
    assert result.result == "failed"
    assert FAILING.name not in db._kept
    # Its backend is gone (the one left is session_purge's kept one); the lock went with it.
    assert scalar(db, OTHER_SESSIONS) == 1
    assert scalar(db, ADVISORY_LOCKS) == 0
    assert run_job(db, FAILING, triggered_by="test", keep_session=True).result == "failed"
    assert (
        scalar(db, "SELECT count(*) FROM Ops.JobRun WHERE JobName = 'test_failing_job' AND Status = 'failed'")
        == 2
    )
    assert FAILING.name not in db._kept
    assert PURGE.name in db._kept  # another job's kept session is not touched
    db.close_kept_sessions()


def test_a_session_left_with_a_lock_a_transaction_or_another_name_is_not_kept(db):
    leftovers = {
        "lock": "SELECT pg_advisory_lock(hashtextextended('flp-job:test_leftover', 0))",
        "transaction": "BEGIN",
        "application_name": "SET application_name = 'flp-job:test_leftover'",
    }
    for what, sql in leftovers.items():
        with db.connect(keep="test_leftover") as conn:
            pid = conn.info.backend_pid
            conn.execute(sql)
        assert db.kept_session_count() == 0, what
        assert backend(db, pid) is None, what  # closed, and a session lock with it
    with db.connect(keep="test_leftover") as conn:
        conn.execute("SELECT 1")
    assert db.kept_session_count() == 1  # the same block without a leftover is kept
    db.close_kept_sessions()


def test_an_error_in_the_block_or_a_discard_closes_the_session(db):
    with pytest.raises(ZeroDivisionError), db.connect(keep="test_error"):
        1 / 0  # noqa: B018
    assert db.kept_session_count() == 0
    with db.connect(keep="test_error") as conn:
        db.discard(conn)
    assert db.kept_session_count() == 0
    with db.connect() as conn:  # discard of a plain connection: closed as always, nothing remembered
        db.discard(conn)
    assert db._discarded == set()


def test_a_kept_session_that_died_is_replaced(db):
    assert run_job(db, PURGE, triggered_by="test", keep_session=True).result == "succeeded"
    pid = kept_pid(db, PURGE.name)
    execute(db, "SELECT pg_terminate_backend(?)", (pid,))
    again = run_job(db, PURGE, triggered_by="test", keep_session=True)
    assert again.result == "succeeded", again.error
    assert kept_pid(db, PURGE.name) != pid
    db.close_kept_sessions()


def test_idle_and_old_sessions_are_closed(db, monkeypatch):
    assert run_job(db, PURGE, triggered_by="test", keep_session=True).result == "succeeded"
    pid = kept_pid(db, PURGE.name)
    soon = time.monotonic() + 1.0
    assert db.close_idle_sessions(now=soon) == 0
    later = time.monotonic() + connection.KEPT_SESSION_MAX_IDLE_SECONDS + 1.0
    assert db.close_idle_sessions(now=later) == 1
    assert backend(db, pid) is None

    # One past the maximum age is not reused, however recently it ran.
    assert run_job(db, PURGE, triggered_by="test", keep_session=True).result == "succeeded"
    pid = kept_pid(db, PURGE.name)
    db._kept[PURGE.name].opened -= connection.KEPT_SESSION_MAX_AGE_SECONDS + 1.0
    assert run_job(db, PURGE, triggered_by="test", keep_session=True).result == "succeeded"
    assert backend(db, pid) is None
    assert kept_pid(db, PURGE.name) != pid
    db.close_kept_sessions()


def test_two_orchestrators_on_kept_sessions_never_run_a_job_at_once(db, sessions_closed):
    execute(db, OVERLAP_JOB_SQL)
    pair = [Database(db.url), Database(db.url)]
    sessions_closed.extend(pair)
    services = [
        Orchestrator(d, component=f"test-{i}", jobs={OVERLAP.name: OVERLAP}) for i, d in enumerate(pair)
    ]
    results: list[list[str]] = []
    for _ in range(ROUNDS):
        start = threading.Barrier(len(services))
        got: list[str] = []

        def run(service: Orchestrator, start=start, got=got) -> None:
            start.wait(THREAD_WAIT)
            got.append(service.run_now(OVERLAP).result)

        threads = [threading.Thread(target=run, args=(s,)) for s in services]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(THREAD_WAIT)
        results.append(sorted(got))
    assert results == [["already_running", "succeeded"]] * ROUNDS
    # Both kept their sessions from round to round, and the runs never overlapped.
    assert [d.kept_session_count() for d in pair] == [1, 1]
    runs = fetch_all(
        db,
        "SELECT StartedUtc, EndedUtc FROM Ops.JobRun "
        "WHERE JobName = ? AND Status = 'succeeded' ORDER BY StartedUtc",
        (OVERLAP.name,),
    )
    assert len(runs) == ROUNDS
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(runs))


def test_the_service_runs_on_kept_sessions_and_closes_them_at_stop(db):
    service = Orchestrator(db, component="test-orchestrator")
    for _ in range(2):
        service.start_job(PURGE)
        service._running[PURGE.name].join(THREAD_WAIT)
    assert (
        scalar(
            db, "SELECT count(*) FROM Ops.JobRun WHERE JobName = ? AND Status = 'succeeded'", (PURGE.name,)
        )
        == 2
    )
    pid = kept_pid(db, PURGE.name)
    service.shutdown()
    assert db.kept_session_count() == 0
    assert backend(db, pid) is None
