"""The batch engine, version 2 (issue 7): bounded lock waits, deadlock retries, failed runs that end
failed whoever started them, the health gate on the FLP database's own load, no sleep inside a
transaction, batch sizes by time efficiency, the batch procedure derived from the job name, the job
lock for the orchestrator only, and the twin divergences closed (strict settings, over-long names,
the host default).

Tests that only call procedures are contract tests (``contract_db``). Tests that need a batch
procedure of their own create one in the test's database, on PostgreSQL: ``Job.engine_test_batch``
walks ``public.engine_item`` in key order, locking each row it changes, as a real batch does.
"""

from __future__ import annotations

import itertools
import threading
import time

import psycopg
import pytest

from orchestrator.db.procedures import PROCEDURES_DIR
from orchestrator.db.urls import libpq_url
from tests.support.archive import LOCK_WAIT_SECONDS, admin, set_setting, wait_for
from tests.support.sql import execute, fetch_all, fetch_one, scalar

JOB = "engine_test"
RUN_OUT = ("JobRunId", "Result", "RowsAffected")
START_OUT = ("JobRunId", "Result")
SETTINGS_OUT = (
    "BatchTargetMs",
    "BatchSizeStart",
    "BatchSizeMin",
    "BatchSizeMax",
    "SleepFactor",
    "TimeLimitSeconds",
    "HealthMaxActive",
    "HealthMaxLockWaits",
    "HealthHoldSeconds",
    "HealthMaxPauseSeconds",
    "LockTimeoutMs",
    "DeadlockRetries",
    "TimeEfficiencyMin",
    "BatchMaxMs",
)

# The default batch body: the next p_BatchSize items not done, in key order, each locked (waiting for
# a row another session holds, as an UPDATE does), marked done. A dry run counts without locking.
MOVE_ITEMS = """
    IF p_Execute = 'N' THEN
        SELECT count(*) INTO p_Rows FROM (
            SELECT 1 FROM public.engine_item WHERE NOT done AND id > coalesce(p_Position, 0) LIMIT p_BatchSize
        ) AS c;
        p_Done := p_Rows < p_BatchSize;
        RETURN;
    END IF;
    {before}
    WITH picked AS (
        SELECT id FROM public.engine_item
        WHERE NOT done AND id > coalesce(p_Position, 0)
        ORDER BY id LIMIT p_BatchSize
        FOR UPDATE
    ), moved AS (
        UPDATE public.engine_item AS i SET done = true FROM picked WHERE i.id = picked.id RETURNING i.id
    )
    SELECT count(*), max(m.id) INTO p_Rows, v_Last FROM moved AS m;
    p_Position := coalesce(v_Last, p_Position);
    p_Done := p_Rows < p_BatchSize;
    p_Note := 'items up to ' || coalesce(v_Last::text, '-');
"""


def batch_procedure_sql(before: str = "") -> str:
    return f"""
CREATE PROCEDURE Job.{JOB}_batch(
    p_BatchSize integer, p_Execute char(1),
    INOUT p_Position bigint DEFAULT NULL, INOUT p_Rows integer DEFAULT NULL,
    INOUT p_Done boolean DEFAULT NULL, INOUT p_Note varchar(400) DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    v_Last integer;
BEGIN
{MOVE_ITEMS.format(before=before)}
END $$;
"""


def make_job(db, items: int, before: str = "", **settings) -> None:
    """The test job: ``items`` rows to work through, its batch procedure, its settings."""
    execute(
        db,
        "CREATE TABLE public.engine_item (id integer PRIMARY KEY, done boolean NOT NULL DEFAULT false);"
        f"INSERT INTO public.engine_item (id) SELECT g FROM generate_series(1, {items}) AS g;"
        + batch_procedure_sql(before),
    )
    for name, value in {"SleepFactor": 0, **settings}.items():
        set_setting(db, name, str(value), job=JOB)


def run_engine(db, conn=None, **params) -> dict:
    call = {"JobName": JOB, "Execute": "Y", "TriggeredBy": "test", **params}
    if conn is not None:
        return db.call(conn, "Job.run_batched", call, RUN_OUT)
    with db.connect() as own:
        return db.call(own, "Job.run_batched", call, RUN_OUT)


def run_row(db, run_id) -> tuple:
    return fetch_one(db, "SELECT Status, RowsAffected, Message FROM Ops.JobRun WHERE JobRunId = ?", (run_id,))


def batch_rows(db, run_id) -> list[tuple]:
    return fetch_all(
        db,
        "SELECT BatchNo, DurationMs, BatchSize, RowsAffected, Note FROM Ops.JobRunBatch "
        "WHERE JobRunId = ? ORDER BY BatchNo",
        (run_id,),
    )


def items_left(db) -> int:
    return scalar(db, "SELECT count(*) FROM public.engine_item WHERE NOT done")


class EngineThread(threading.Thread):
    def __init__(self, db, **params) -> None:
        super().__init__(daemon=True)
        self.db, self.params = db, params
        self.out: dict | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.out = run_engine(self.db, **self.params)
        except Exception as exc:
            self.error = exc


# ------------------------------------------------------------------------------
# 19: the batch procedure is the job's own
# ------------------------------------------------------------------------------


def test_the_batch_procedure_is_derived_from_the_job_name(contract_db):
    db = contract_db
    with (
        db.connect() as conn,
        pytest.raises(Exception, match=r"parameter @?p?_?JobName .*no batch procedure"),
    ):
        db.call(conn, "Job.run_batched", {"JobName": "no_such_job", "TriggeredBy": "test"}, RUN_OUT)
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun") == 0


def test_the_engine_has_no_batch_procedure_parameter(db):
    args = scalar(db, "SELECT pg_get_function_arguments('job.run_batched'::regproc)")
    assert "batchprocedure" not in args.lower()


# ------------------------------------------------------------------------------
# 6: lock waits are bounded; a batch that waits too long is left for the next
# ------------------------------------------------------------------------------


def test_a_lock_wait_over_lock_timeout_is_left_for_the_next_batch_not_a_failure(db):
    make_job(db, 30, BatchSizeStart=10, BatchSizeMin=10, BatchSizeMax=10, LockTimeoutMs=200)
    with admin(db) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT id FROM public.engine_item WHERE id = 15 FOR UPDATE")
        job = EngineThread(db)
        job.start()
        wait_for(
            lambda: (
                scalar(db, "SELECT count(*) FROM Ops.JobRunBatch WHERE Note LIKE ?", ("lock wait%",)) >= 2
            ),
            "two batches left for the next after a lock wait",
        )
        holder.execute("ROLLBACK")
        job.join(LOCK_WAIT_SECONDS)

    assert job.error is None, job.error
    assert (job.out["Result"], job.out["RowsAffected"]) == ("succeeded", 30)
    assert items_left(db) == 0
    status, rows, message = run_row(db, job.out["JobRunId"])
    assert (status, rows) == ("succeeded", 30)
    waited = [b for b in batch_rows(db, job.out["JobRunId"]) if b[4].startswith("lock wait")]
    assert len(waited) >= 2
    assert all(b[3] == 0 for b in waited)  # rolled back whole
    assert all(190 <= b[1] < 1000 for b in waited), waited  # about LockTimeoutMs, not forever
    assert waited[0][4] == "lock wait over 200 ms (LockTimeoutMs): rolled back, left for the next batch"
    assert f"; {len(waited)} left for the next batch after a lock wait over LockTimeoutMs" in message


def test_the_engine_sets_lock_timeout_for_the_batch_only(db):
    # The batch sees LockTimeoutMs; the caller's session keeps its own value afterwards.
    make_job(
        db,
        3,
        before="INSERT INTO public.engine_seen VALUES (current_setting('lock_timeout'));",
        LockTimeoutMs=321,
    )
    execute(db, "CREATE TABLE public.engine_seen (lock_timeout text)")
    with db.connect() as conn:
        conn.execute("SET lock_timeout = '7s'")
        run_engine(db, conn)
        assert conn.execute("SHOW lock_timeout").fetchone()[0] == "7s"
    assert {r[0] for r in fetch_all(db, "SELECT lock_timeout FROM public.engine_seen")} == {"321ms"}


# ------------------------------------------------------------------------------
# 7: deadlock victims are retried, then the run stops cleanly
# ------------------------------------------------------------------------------

RAISE_DEADLOCK = (
    "RAISE EXCEPTION USING ERRCODE = 'deadlock_detected', MESSAGE = 'deadlock detected (the test''s victim)';"
)


def test_a_deadlock_victim_is_retried_and_the_run_carries_on(db):
    execute(db, "CREATE SEQUENCE public.engine_victims")
    make_job(
        db,
        20,
        before=f"IF nextval('public.engine_victims') <= 2 THEN {RAISE_DEADLOCK} END IF;",
        BatchSizeStart=10,
        BatchSizeMin=10,
        BatchSizeMax=10,
        DeadlockRetries=3,
    )

    out = run_engine(db)

    assert (out["Result"], out["RowsAffected"]) == ("succeeded", 20)
    notes = [b[4] for b in batch_rows(db, out["JobRunId"])]
    assert notes[:2] == [
        "chosen as deadlock victim: rolled back, retry 1 of 3",
        "chosen as deadlock victim: rolled back, retry 2 of 3",
    ]
    assert run_row(db, out["JobRunId"])[2].startswith(f"{len(notes)} batches; 2 deadlock retries")


def test_a_batch_chosen_as_victim_more_often_than_deadlock_retries_stops_the_run(db):
    make_job(db, 20, before=RAISE_DEADLOCK, DeadlockRetries=2)

    out = run_engine(db)

    assert (out["Result"], out["RowsAffected"]) == ("stopped", 0)
    status, rows, message = run_row(db, out["JobRunId"])
    assert (status, rows) == ("stopped", 0)
    assert message == (
        "3 batches; 2 deadlock retries; chosen as deadlock victim 3 times in a row (DeadlockRetries 2)"
    )
    assert [b[4] for b in batch_rows(db, out["JobRunId"])][-1] == (
        "chosen as deadlock victim: rolled back, no retry left (DeadlockRetries 2)"
    )
    assert items_left(db) == 20


def test_a_real_deadlock_with_another_session_is_survived(db):
    # The batch locks item 1, then item 2; another session holds item 2 and then asks for item 1.
    # The batch waits first, so its deadlock check runs first and it is the victim; it is retried
    # once the other session is gone.
    execute(
        db, "ALTER DATABASE " + scalar(db, "SELECT current_database()") + " SET deadlock_timeout = '100ms'"
    )
    make_job(
        db,
        2,
        before="PERFORM 1 FROM public.engine_item WHERE id = 1 FOR UPDATE; PERFORM pg_sleep(0.3);",
        BatchSizeStart=2,
        BatchSizeMin=2,
        BatchSizeMax=2,
        LockTimeoutMs=5000,
    )
    with admin(db) as other:
        other.execute("BEGIN")
        other.execute("SELECT 1 FROM public.engine_item WHERE id = 2 FOR UPDATE")
        job = EngineThread(db)
        job.start()
        time.sleep(0.15)  # the batch holds item 1 and sleeps; it then waits for item 2
        wait_for(
            lambda: (
                scalar(
                    db,
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = ? AND wait_event_type = 'Lock'",
                    (f"flp-job:{JOB}",),
                )
                == 1
            ),
            "the batch waiting for item 2",
        )
        try:
            other.execute("SELECT 1 FROM public.engine_item WHERE id = 1 FOR UPDATE")
        finally:
            other.execute("ROLLBACK")
        job.join(LOCK_WAIT_SECONDS)

    assert job.error is None, job.error
    assert (job.out["Result"], job.out["RowsAffected"]) == ("succeeded", 2)
    notes = [b[4] for b in batch_rows(db, job.out["JobRunId"])]
    assert notes[0] == "chosen as deadlock victim: rolled back, retry 1 of 3"


# ------------------------------------------------------------------------------
# 13: a failed run ends failed with its error, whoever started it
# ------------------------------------------------------------------------------


def test_a_failed_batch_ends_the_run_failed_with_its_error_without_job_run_fail(db):
    execute(db, "CREATE SEQUENCE public.engine_calls")
    make_job(
        db,
        30,
        before="IF nextval('public.engine_calls') = 2 THEN RAISE EXCEPTION 'disk on fire'; END IF;",
        BatchSizeStart=10,
        BatchSizeMin=10,
        BatchSizeMax=10,
    )
    # As pg_cron or a person in psql would call it: nobody calls Job.job_run_fail afterwards.
    with admin(db) as conn:
        with pytest.raises(psycopg.Error, match="disk on fire") as raised:
            conn.execute(f"CALL job.run_batched(p_JobName => '{JOB}', p_TriggeredBy => 'manual')")
        assert conn.execute("SHOW application_name").fetchone()[0] != f"flp-job:{JOB}"

    assert raised.value.sqlstate == "P0001"  # the batch's own error, raised again
    status, rows, message = fetch_one(db, "SELECT Status, RowsAffected, Message FROM Ops.JobRun")
    assert (status, rows) == ("failed", 10)
    assert message.startswith("Error P0001: disk on fire")
    assert "engine_test_batch" in message  # where it happened
    assert items_left(db) == 20  # the failed batch moved nothing
    with db.connect() as other:  # the lock went with the failure
        assert (
            db.call(other, "Job.job_run_start", {"JobName": JOB, "TriggeredBy": "test"}, START_OUT)["Result"]
            == "started"
        )


def test_a_malformed_setting_fails_the_run_and_names_it_on_every_path(db):
    make_job(db, 5, BatchSizeMax="lots")
    with admin(db) as conn, pytest.raises(psycopg.Error, match="Setting BatchSizeMax "):
        conn.execute(f"CALL job.run_batched(p_JobName => '{JOB}', p_TriggeredBy => 'manual')")
    status, message = fetch_one(db, "SELECT Status, Message FROM Ops.JobRun")
    assert status == "failed" and "Setting BatchSizeMax " in message


# ------------------------------------------------------------------------------
# 8: the health gate counts the FLP database's own load only
# ------------------------------------------------------------------------------


HEALTH_LOOKS = 5  # tries to catch the job asleep (it wakes for a batch now and then)


def health(db) -> tuple[bool, str]:
    with db.connect() as conn:
        out = db.call(conn, "Job.health_check", {"MaxActive": 0, "MaxLockWaits": 0}, ("Busy", "Reason"))
    return out["Busy"], out["Reason"]


def sleeping_session(url: str, seconds: float, application_name: str | None = None) -> threading.Thread:
    def sleep() -> None:
        kwargs = {"application_name": application_name} if application_name else {}
        with psycopg.connect(url, autocommit=True, **kwargs) as conn:
            conn.execute("SELECT pg_sleep(%s)", (seconds,))

    thread = threading.Thread(target=sleep, daemon=True)
    thread.start()
    return thread


def sleeping(db, application_name: str) -> int:
    """How many sessions of that name are in pg_sleep now."""
    return scalar(
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = ? AND wait_event = 'PgSleep'",
        (application_name,),
    )


def wait_sleeping(db, application_name: str) -> None:
    wait_for(lambda: sleeping(db, application_name) == 1, f"a session {application_name} sleeping")


def test_the_health_gate_leaves_out_other_databases_and_sleeping_job_sessions(db, pg_server_url):
    other_db = libpq_url(pg_server_url)  # the server's maintenance database
    sessions = [
        sleeping_session(other_db, 2, "engine-test-other-db"),
        sleeping_session(libpq_url(db.url), 2, "flp-job:another_job"),
    ]
    wait_sleeping(db, "flp-job:another_job")
    wait_for(
        lambda: (
            scalar(
                db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'engine-test-other-db'"
            )
            == 1
        ),
        "the session in the other database",
    )

    assert health(db) == (False, "active sessions 0 (limit 0), lock waits 0 (limit 0)")

    # Any other session of this database that sleeps is load, as the tests simulate it.
    sessions.append(sleeping_session(libpq_url(db.url), 2, "someone-else"))
    wait_sleeping(db, "someone-else")
    assert health(db)[0] is True
    for thread in sessions:
        thread.join(LOCK_WAIT_SECONDS)


# Busy work inside each batch, so that its duration (and so the sleep after it) is
# never rounded down to 0 ms on a fast machine: a batch of ten bare updates can take
# under a millisecond, and then the engine never sleeps at all.
BUSY_WORK = "PERFORM count(*) FROM generate_series(1, 200000);"


def test_a_running_job_names_its_session_and_restores_the_name(db):
    make_job(db, 200, before=BUSY_WORK, BatchSizeStart=10, BatchSizeMin=10, BatchSizeMax=10, SleepFactor=10)
    execute(db, "CREATE TABLE public.engine_seen (lock_timeout text)")
    seen: list[str] = []
    with db.connect() as conn:
        conn.execute("SET application_name = 'the-caller'")
        job = threading.Thread(target=lambda: seen.append(run_engine(db, conn)["Result"]), daemon=True)
        job.start()
        # Another job's gate does not see this one sleeping between batches. The job
        # may wake for its next batch between the two looks, so look a few times: a
        # gate that counted the sleeping job would say busy every time.
        looks = []
        while len(looks) < HEALTH_LOOKS and job.is_alive():
            if sleeping(db, f"flp-job:{JOB}"):
                looks.append(health(db)[0])
                if looks[-1] is False:
                    break
            time.sleep(0.005)
        assert False in looks, looks
        job.join(LOCK_WAIT_SECONDS)
        assert conn.execute("SHOW application_name").fetchone()[0] == "the-caller"
    assert seen == ["succeeded"]


# ------------------------------------------------------------------------------
# 12: no transaction open while sleeping; each batch's clock is its own
# ------------------------------------------------------------------------------

BUSY_BATCH = (
    "PERFORM count(*) FROM generate_series(1, 100000);"
    " INSERT INTO public.engine_clock VALUES (now(), clock_timestamp());"
)


def test_the_engine_never_sleeps_inside_a_transaction_and_each_batch_has_its_own_now(db):
    execute(db, "CREATE TABLE public.engine_clock (tx_now timestamptz, wall timestamptz)")
    make_job(db, 8, before=BUSY_BATCH, BatchSizeStart=2, BatchSizeMin=2, BatchSizeMax=2, SleepFactor=8)
    job = EngineThread(db)
    job.start()
    samples = []
    with admin(db) as watcher:
        while job.is_alive():
            row = watcher.execute(
                """SELECT a.backend_xid::text, (SELECT count(*) FROM pg_locks AS l
                          WHERE l.pid = a.pid AND l.locktype NOT IN ('advisory', 'virtualxid'))
                   FROM pg_stat_activity AS a
                   WHERE a.application_name = %s AND a.wait_event = 'PgSleep'""",
                (f"flp-job:{JOB}",),
            ).fetchone()
            if row:
                samples.append(row)
            time.sleep(0.005)
    job.join()

    assert job.error is None and job.out["Result"] == "succeeded"
    assert samples, "never saw the engine sleep"
    assert all(xid is None and locks == 0 for xid, locks in samples), samples
    lag = scalar(db, "SELECT max(extract(epoch FROM wall - tx_now)) FROM public.engine_clock")
    assert lag < 0.1  # the batch's now() is its own start, not the end of the sleep before it


# ------------------------------------------------------------------------------
# 24: batch size by time efficiency
# ------------------------------------------------------------------------------

SLOW_PROGRESS_ROW = """
CREATE FUNCTION public.engine_slow_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(0.02);
    RETURN NULL;
END $$;
CREATE TRIGGER engine_slow_log AFTER INSERT ON Ops.JobRunBatch
    FOR EACH ROW EXECUTE FUNCTION public.engine_slow_log();
"""


@pytest.mark.parametrize(("efficiency", "grows"), [("0.8", True), ("0", False)])
def test_batches_grow_while_the_overhead_around_them_dominates(db, efficiency, grows):
    # A fast batch (far under 1 ms of work) and a slow progress row (20 ms): with the time rule
    # alone the batch stays at its start size; asking for 80% of the time in batches makes it grow
    # to BatchSizeMax.
    execute(db, SLOW_PROGRESS_ROW)
    make_job(
        db,
        12000,
        BatchTargetMs=1,
        BatchSizeStart=100,
        BatchSizeMin=100,
        BatchSizeMax=1000,
        TimeEfficiencyMin=efficiency,
        BatchMaxMs=1000,
    )

    out = run_engine(db)

    sizes = [b[2] for b in batch_rows(db, out["JobRunId"])]
    assert (out["Result"], out["RowsAffected"]) == ("succeeded", 12000)
    if grows:
        assert max(sizes) == 1000, sizes
        assert all(after <= round(before * 1.2) for before, after in itertools.pairwise(sizes))
    else:
        assert max(sizes) == 100, sizes


def test_batch_max_ms_bounds_the_growth(db):
    execute(db, SLOW_PROGRESS_ROW)
    make_job(
        db,
        3000,
        BatchTargetMs=1,
        BatchSizeStart=100,
        BatchSizeMin=100,
        BatchSizeMax=2000,
        TimeEfficiencyMin="0.8",
        BatchMaxMs=1,
    )

    out = run_engine(db)

    assert max(b[2] for b in batch_rows(db, out["JobRunId"])) == 100


# ------------------------------------------------------------------------------
# 10, 16: settings, parsed strictly and the same on both engines; the 4,000 cap
# ------------------------------------------------------------------------------


def settings(db, job: str = "archive_aim") -> dict:
    with db.connect() as conn:
        return db.call(conn, "Job.batch_settings_get", {"JobName": job}, SETTINGS_OUT)


def test_the_new_settings_have_defaults(contract_db):
    got = settings(contract_db, "some_job")
    assert (got["LockTimeoutMs"], got["DeadlockRetries"], got["BatchMaxMs"]) == (1000, 3, 1000)
    assert float(got["TimeEfficiencyMin"]) == 0.8
    assert settings(contract_db)["LockTimeoutMs"] == 100  # the archive's own, as its batch had built in


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BatchSizeMax", " 200"),  # TRY_CONVERT(int) takes these four; both engines refuse them
        ("BatchSizeMax", "+200"),
        ("BatchSizeMax", "200 "),
        ("SleepFactor", ".5"),
        ("SleepFactor", "5."),
        ("SleepFactor", "1.2345"),
        ("BatchSizeMax", "2e2"),
        ("BatchSizeMax", "4001"),  # the cap: clear of lock escalation at 5,000
        ("LockTimeoutMs", "0"),  # no wait on SQL Server, forever on PostgreSQL: refused on both
        ("DeadlockRetries", "-1"),
        ("TimeEfficiencyMin", "0.96"),
        ("BatchMaxMs", "0"),
    ],
)
def test_a_setting_outside_the_strict_form_is_refused_naming_it(contract_db, name, value):
    db = contract_db
    set_setting(db, name, value)
    try:
        with db.connect() as conn, pytest.raises(Exception, match=f"Setting {name} "):
            db.call(conn, "Job.batch_settings_get", {"JobName": "archive_aim"}, SETTINGS_OUT)
    finally:
        execute(db, "DELETE FROM Ops.Setting WHERE JobName = 'archive_aim' AND Name = ?", (name,))


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("BatchSizeMax", "4000", 4000), ("BatchSizeMax", "0250", 250), ("SleepFactor", "0.125", 0.125)],
)
def test_a_setting_in_the_strict_form_is_read(contract_db, name, value, expected):
    db = contract_db
    set_setting(db, name, value)
    try:
        assert float(settings(db)[name]) == expected
    finally:
        execute(db, "DELETE FROM Ops.Setting WHERE JobName = 'archive_aim' AND Name = ?", (name,))


# ------------------------------------------------------------------------------
# 16: over-long names are refused by name; messages are cut, never refused; the host default
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("procedure", "params", "named"),
    [
        ("Job.job_run_start", {"JobName": "a" * 101, "TriggeredBy": "test"}, "JobName"),
        ("Job.job_run_start", {"JobName": "contract_job", "TriggeredBy": "test", "Host": "h" * 129}, "Host"),
        ("Job.run_batched", {"JobName": "archive_aim", "TriggeredBy": "test", "Host": "h" * 300}, "Host"),
        ("Job.run_batched", {"JobName": "a" * 120, "TriggeredBy": "test"}, "JobName"),
        ("Job.archive_aim", {"TriggeredBy": "test", "Host": "h" * 129}, "Host"),
        ("Job.job_run_fail", {"JobName": "a" * 101}, "JobName"),
        ("Job.heartbeat_beat", {"Component": "c" * 201, "Host": "h", "ProcessId": 1}, "Component"),
        ("Job.heartbeat_beat", {"Component": "c", "Host": "h" * 129, "ProcessId": 1}, "Host"),
    ],
)
def test_an_over_long_name_is_refused_naming_the_parameter(contract_db, procedure, params, named):
    db = contract_db
    outputs = {"Job.job_run_start": START_OUT, "Job.job_run_fail": (), "Job.heartbeat_beat": ()}.get(
        procedure, RUN_OUT
    )
    with db.connect() as conn, pytest.raises(Exception, match=f"parameter @?p?_?{named} is not supported"):
        db.call(conn, procedure, params, outputs)
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun") == 0
    assert scalar(db, "SELECT count(*) FROM Ops.Heartbeat") == 0


def test_long_messages_and_notes_are_cut_to_their_columns(contract_db):
    db = contract_db
    with db.connect() as conn:
        run_id = db.call(
            conn, "Job.job_run_start", {"JobName": "contract_job", "TriggeredBy": "test"}, START_OUT
        )["JobRunId"]
        db.call(
            conn,
            "Job.job_batch_log",
            {
                "JobRunId": run_id,
                "BatchNo": 1,
                "StartedUtc": fetch_one(
                    db, "SELECT StartedUtc FROM Ops.JobRun WHERE JobRunId = ?", (run_id,)
                )[0],
                "DurationMs": 1,
                "BatchSize": 1,
                "RowsAffected": 1,
                "Note": "n" * 500,
            },
        )
        db.call(
            conn, "Job.job_run_finish", {"JobRunId": run_id, "Status": "succeeded", "Message": "m" * 5000}
        )
        second = db.call(
            conn, "Job.job_run_start", {"JobName": "contract_job", "TriggeredBy": "test"}, START_OUT
        )
        db.call(conn, "Job.job_run_fail", {"JobName": "contract_job", "Message": "f" * 5000})
    assert scalar(db, "SELECT Note FROM Ops.JobRunBatch WHERE JobRunId = ?", (run_id,)) == "n" * 400
    assert scalar(db, "SELECT Message FROM Ops.JobRun WHERE JobRunId = ?", (run_id,)) == "m" * 4000
    assert fetch_one(
        db, "SELECT Status, Message FROM Ops.JobRun WHERE JobRunId = ?", (second["JobRunId"],)
    ) == (
        "failed",
        "f" * 4000,
    )


def test_the_host_defaults_to_the_client_then_unknown_on_both_engines(contract_db):
    db = contract_db
    with db.connect() as conn:
        run_id = db.call(
            conn, "Job.job_run_start", {"JobName": "contract_job", "TriggeredBy": "test"}, START_OUT
        )["JobRunId"]
        client = (
            "SELECT coalesce(host(inet_client_addr()), 'unknown')"
            if db.kind == "postgresql"
            else "SELECT COALESCE(HOST_NAME(), N'unknown')"
        )
        cur = conn.cursor()
        cur.execute(client)
        expected = cur.fetchone()[0]
        cur.close()
        db.call(conn, "Job.job_run_finish", {"JobRunId": run_id, "Status": "succeeded"})
    host = scalar(db, "SELECT Host FROM Ops.JobRun WHERE JobRunId = ?", (run_id,))
    assert host == expected and host != "local"


# ------------------------------------------------------------------------------
# 17, 19: only the job's own session writes its history; only the orchestrator takes the lock
# ------------------------------------------------------------------------------


def test_only_the_session_holding_the_job_lock_may_log_its_batches(contract_db):
    db = contract_db
    with db.connect() as owner, db.connect() as other:
        run_id = db.call(
            owner, "Job.job_run_start", {"JobName": "contract_job", "TriggeredBy": "test"}, START_OUT
        )["JobRunId"]
        started = fetch_one(db, "SELECT StartedUtc FROM Ops.JobRun WHERE JobRunId = ?", (run_id,))[0]
        batch = {
            "JobRunId": run_id,
            "BatchNo": 1,
            "StartedUtc": started,
            "DurationMs": 5,
            "BatchSize": 10,
            "RowsAffected": 1000000,
            "Note": "rewritten history",
        }
        with pytest.raises(Exception, match="does not hold that run's job lock"):
            db.call(other, "Job.job_batch_log", batch)
        db.call(owner, "Job.job_batch_log", {**batch, "RowsAffected": 3, "Note": "the job's own"})
        db.call(owner, "Job.job_run_finish", {"JobRunId": run_id, "Status": "succeeded"})
    assert fetch_all(db, "SELECT RowsAffected, Note FROM Ops.JobRunBatch WHERE JobRunId = ?", (run_id,)) == [
        (3, "the job's own")
    ]
    assert scalar(db, "SELECT RowsAffected FROM Ops.JobRun WHERE JobRunId = ?", (run_id,)) == 3


def test_only_the_orchestrator_role_or_the_owner_may_start_a_run(db):
    with admin(db) as conn:
        conn.execute("DROP ROLE IF EXISTS flp_test_outsider")
        conn.execute("CREATE ROLE flp_test_outsider NOLOGIN")
        try:
            # Even with EXECUTE granted by mistake, the lock stays the orchestrator's.
            conn.execute("GRANT USAGE ON SCHEMA job TO flp_test_outsider")
            conn.execute("GRANT EXECUTE ON PROCEDURE job.job_run_start TO flp_test_outsider")
            conn.execute("SET SESSION AUTHORIZATION flp_test_outsider")
            with pytest.raises(psycopg.Error, match="only be called by members of flp_orchestrator"):
                conn.execute("CALL job.job_run_start(p_JobName => 'contract_job', p_TriggeredBy => 'test')")
            conn.execute("RESET SESSION AUTHORIZATION")
            conn.execute("GRANT flp_orchestrator TO flp_test_outsider")
            conn.execute("SET SESSION AUTHORIZATION flp_test_outsider")
            _, result = conn.execute(
                "CALL job.job_run_start(p_JobName => 'contract_job', p_TriggeredBy => 'test')"
            ).fetchone()
            assert result == "started"
        finally:
            conn.execute("RESET SESSION AUTHORIZATION")
            conn.execute("REVOKE ALL ON PROCEDURE job.job_run_start FROM flp_test_outsider")
            conn.execute("REVOKE ALL ON SCHEMA job FROM flp_test_outsider")
            conn.execute("DROP ROLE flp_test_outsider")


# ------------------------------------------------------------------------------
# Version 3 (migration 0014): the probe is bounded and handled like a batch;
# the run's end is refused inside a caller's transaction on SQL Server
# ------------------------------------------------------------------------------


def test_a_probe_that_meets_a_table_lock_waits_at_most_lock_timeout_then_the_batches_go_on(db):
    # Version 2 ran the probe at the session's lock_timeout (0: forever) and outside the
    # lock-timeout handling: the run sat at its probe for as long as the lock was held.
    make_job(db, 30, BatchSizeStart=10, BatchSizeMin=10, BatchSizeMax=10, LockTimeoutMs=200)
    with admin(db) as holder:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE public.engine_item IN ACCESS EXCLUSIVE MODE")
        job = EngineThread(db)
        job.start()
        wait_for(
            lambda: (
                scalar(db, "SELECT count(*) FROM Ops.JobRunBatch WHERE Note LIKE ?", ("lock wait%",)) >= 1
            ),
            "a batch left for the next after a lock wait, while the table was locked",
        )
        holder.execute("ROLLBACK")
        job.join(LOCK_WAIT_SECONDS)

    assert job.error is None, job.error
    assert (job.out["Result"], job.out["RowsAffected"]) == ("succeeded", 30)
    assert items_left(db) == 0


def test_the_tsql_probe_runs_under_lock_timeout_inside_the_1222_1205_handling():
    tsql = (PROCEDURES_DIR / "mssql" / "run_batched.v3.sql").read_text(encoding="utf-8")
    probe = tsql[
        tsql.index("-- Probe: is there anything to do at all?") : tsql.index("-- Do the work, batch by batch")
    ]
    assert probe.index("EXEC Job.batch_settings_get") < probe.index("SET LOCK_TIMEOUT @LockTimeoutMs;")
    assert probe.index("SET LOCK_TIMEOUT @LockTimeoutMs;") < probe.index("EXEC @BatchProcedure")
    assert "IF ERROR_NUMBER() NOT IN (1222, 1205)" in probe
    assert probe.index("END CATCH;") < probe.index("SET LOCK_TIMEOUT @CallerLockTimeout;")


@pytest.mark.parametrize("name", ["job_run_finish", "job_run_fail"])
def test_the_tsql_run_end_is_refused_inside_a_callers_transaction(name):
    tsql = (PROCEDURES_DIR / "mssql" / f"{name}.v3.sql").read_text(encoding="utf-8")
    requirements = tsql[tsql.index("-- Check requirements") : tsql.index("-- Check parameters")]
    assert "IF @@TRANCOUNT <> 0" in requirements
    assert f"Job.{name} must not run inside a transaction (@@TRANCOUNT " in requirements
    # The PostgreSQL twin says in its header why it cannot refuse.
    plpgsql = (PROCEDURES_DIR / "postgresql" / f"{name}.v3.sql").read_text(encoding="utf-8")
    assert (
        "--   * No such refusal: a procedure cannot see whether its caller opened a transaction block"
        in plpgsql
    )
