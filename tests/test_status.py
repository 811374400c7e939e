"""The Monitor read procedures and ``flp status`` (issue 6).

Rows are put into Ops.JobRun with times relative to the database's own now, so
the tests mean the same on every day of the year. Contract tests (``contract_db``)
give every test its own job names: a SQL Server test database is shared.
"""

from __future__ import annotations

import json
import re
import uuid

import psycopg
import pytest
from psycopg import errors, sql
from sqlalchemy.engine import make_url

from orchestrator import cli
from orchestrator.db import migrate
from orchestrator.db.urls import libpq_url
from orchestrator.jobs import JOBS
from orchestrator.runner import run_job
from orchestrator.status import MARK
from tests.support.aim import seed_with_pending
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


# ---------------------------------------------------------------------------
# flp status
# ---------------------------------------------------------------------------


@pytest.fixture
def flp_env(db, monkeypatch, restore_logging):
    """``flp`` pointed at the test's fresh database."""
    monkeypatch.setenv("FLP_DATABASE_URL", db.url)
    monkeypatch.delenv("FLP_CONFIG", raising=False)
    return db


def flp(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["status", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def line_of(out: str, job: str) -> str:
    (line,) = [line for line in out.splitlines() if f" {job} " in f" {line} " and "runs in a row" not in line]
    return line


@pytest.fixture
def history(flp_env):
    """Real runs of archive_aim and session_purge, log_cleanup failing in a row."""
    db = flp_env
    for name in ("archive_aim", "session_purge"):
        assert run_job(db, JOBS[name], "test").result == "succeeded"
    add_run(db, "log_cleanup", "succeeded", minutes_ago=4 * 24 * 60 + 30, rows=12)
    for hours in (26, 2, 1):
        add_run(db, "log_cleanup", "failed", minutes_ago=hours * 60, message=f"disk full\nCONTEXT: {hours}")
    return db


def test_status_shows_every_job_with_its_last_run_and_marks(history, capsys):
    code, out, err = flp(capsys)

    assert (code, err) == (0, "")
    archive = line_of(out, "archive_aim")
    assert "succeeded" in archive and "test@" in archive and MARK not in archive
    cleanup = line_of(out, "log_cleanup")
    assert cleanup.lstrip().startswith(MARK)
    assert "failed" in cleanup and "disk full" in cleanup and "CONTEXT" not in cleanup
    # runs and failures in the last 24 hours, then failures in a row
    assert re.search(r"\s2\s+2\s+3\s+disk full", cleanup), cleanup
    assert "log_cleanup: failed 3 runs in a row" in out
    assert "log_cleanup: no success for 4d 00h (expected within 2d 00h" in out  # daily: twice 1 day
    assert "Orchestrators: no heartbeat recorded" in out


def test_a_job_that_never_ran_is_shown_as_never_run(flp_env, capsys):
    add_run(flp_env, "session_purge", "succeeded", minutes_ago=5)

    code, out, _ = flp(capsys)

    assert code == 0
    assert "never run" in line_of(out, "archive_aim") and "never run" in line_of(out, "log_cleanup")
    assert MARK not in line_of(out, "session_purge")


def test_status_json_is_pure_json_with_stable_keys(history, capsys):
    execute(
        history,
        "INSERT INTO Ops.Heartbeat (Component, Host, ProcessId, StartedUtc, BeatUtc) "
        f"VALUES ('orchestrator@host-a:42', 'host-a', 42, {ago(history, 60)}, {ago(history, 0.5)})",
    )

    code, out, err = flp(capsys, "--json")

    assert (code, err) == (0, "")
    data = json.loads(out)
    assert set(data) == {
        "now_utc", "window_hours", "failures_in_a_row_warning", "stale_intervals", "jobs", "warnings",
        "heartbeats", "uploads", "engine", "aim",
    }  # fmt: skip
    assert [j["job"] for j in data["jobs"]] == list(JOBS)
    cleanup = next(j for j in data["jobs"] if j["job"] == "log_cleanup")
    assert set(cleanup) == {
        "job", "in_registry", "enabled", "overridden", "timetable", "interval_seconds", "last_run",
        "last_succeeded_utc", "runs_24h",
        "failures_24h", "consecutive_failures", "warnings", "missed_24h", "next_run_utc", "next_run_local",
    }  # fmt: skip
    assert (cleanup["runs_24h"], cleanup["failures_24h"], cleanup["consecutive_failures"]) == (2, 2, 3)
    assert [w["code"] for w in cleanup["warnings"]] == ["failures_in_a_row", "no_recent_success"]
    assert set(cleanup["last_run"]) == {
        "job_run_id", "job", "status", "triggered_by", "host", "started_utc", "started_local", "ended_utc",
        "age_seconds", "duration_ms", "rows", "message",
    }  # fmt: skip
    assert 3500 <= cleanup["last_run"]["age_seconds"] <= 3700
    assert data["warnings"] == 2
    (beat,) = data["heartbeats"]
    assert (beat["component"], beat["process_id"]) == ("orchestrator@host-a:42", 42)
    assert 20 <= beat["age_seconds"] <= 60


def test_status_counts_the_aim_rows_by_state_and_the_engine_backlog(flp_env, capsys):
    db = flp_env
    seed_with_pending(db, patients=6, pending=5)
    # two of the five queued (one of them long past the visibility timeout), one delivered
    execute(db, "UPDATE PLSP.FLP_AIM SET Status = 1, QueuedUtc = " + ago(db, 1) + " WHERE Id IN "
            "(SELECT Id FROM PLSP.FLP_AIM ORDER BY Id LIMIT 1)")  # fmt: skip
    execute(db, "UPDATE PLSP.FLP_AIM SET Status = 1, QueuedUtc = " + ago(db, 24 * 60) + " WHERE Id IN "
            "(SELECT Id FROM PLSP.FLP_AIM WHERE Status = 0 ORDER BY Id LIMIT 1)")  # fmt: skip
    execute(db, "UPDATE PLSP.FLP_AIM SET Status = 2, QueuedUtc = " + ago(db, 3) + ", DeliveredUtc = "
            + ago(db, 2) + " WHERE Id IN "
            "(SELECT Id FROM PLSP.FLP_AIM WHERE Status = 0 ORDER BY Id LIMIT 1)")  # fmt: skip
    execute(db, "UPDATE PLSP.FLP_AIM SET CreatedUtc = " + ago(db, 90) + " WHERE Status = 0")
    execute(
        db,
        "INSERT INTO Ops.QueueDeadLetter (QueueName, Body, EnqueuedUtc, DeliveryCount, Reason) "
        f"VALUES ('flp.aim', '[1]', {ago(db, 5)}, 5, 'test'), ('other', '[2]', {ago(db, 5)}, 1, 'test')",
    )

    code, out, err = flp(capsys, "--json")

    assert (code, err) == (0, "")
    aim = json.loads(out)["aim"]
    counted = ("pending", "queued", "overdue", "delivered", "dead_letters_database_queue")
    assert {k: aim[k] for k in counted} == {
        "pending": 2, "queued": 2, "overdue": 1, "delivered": 1, "dead_letters_database_queue": 1,
    }  # fmt: skip
    assert 90 * 60 - 30 <= aim["oldest_pending_age_seconds"] <= 90 * 60 + 60
    engine = json.loads(out)["engine"]
    assert set(engine) == {
        "dirty_due", "dirty_later", "oldest_due_age_seconds", "values_new", "values_invalid",
        "values_rejected", "relevant_changes_due", "recompute_running",
    }  # fmt: skip
    assert engine["dirty_due"] + engine["dirty_later"] >= 1  # the population's values marked patients dirty

    code, out, err = flp(capsys)
    assert (code, err) == (0, "")
    assert "AIM: pending 2 (oldest 1h 30m), queued 2 (1 past the visibility timeout), delivered 1" in out
    assert "dead letters (database queue) 1" in out
    assert "FLP engine: dirty patients due" in out


def test_status_shows_the_timetable_as_overridden_and_names_an_ignored_override(history, capsys):
    execute(
        history,
        "INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES "
        "('session_purge', 'EveryMinutes', '20', 'test'), ('archive_aim', 'Enabled', 'N', 'test'), "
        "('log_cleanup', 'DailyAt', '25:00', 'test')",
    )

    code, out, err = flp(capsys, "--json")

    assert (code, err) == (0, "")
    jobs = {j["job"]: j for j in json.loads(out)["jobs"]}
    purge, archive, cleanup = jobs["session_purge"], jobs["archive_aim"], jobs["log_cleanup"]
    assert (purge["overridden"], purge["interval_seconds"]) == (["EveryMinutes"], 20 * 60)
    assert (
        purge["timetable"].startswith("every 20 minutes") and "default every 10 minutes" in purge["timetable"]
    )
    assert (archive["enabled"], archive["next_run_utc"], archive["overridden"]) == (False, None, ["Enabled"])
    (ignored,) = [w for w in cleanup["warnings"] if w["code"] == "timetable_override_ignored"]
    assert (
        "log_cleanup" in ignored["message"]
        and "DailyAt" in ignored["message"]
        and "'25:00'" in ignored["message"]
    )
    assert cleanup["overridden"] == [] and cleanup["enabled"] is True

    code, out, err = flp(capsys)
    assert (code, err) == (0, "")
    assert "disabled" in line_of(out, "archive_aim")
    assert line_of(out, "session_purge").rstrip().endswith("*")
    assert "setting DailyAt = '25:00' in Ops.Setting is ignored" in out


def test_status_of_one_job_lists_its_runs_newest_first(history, capsys):
    code, out, _ = flp(capsys, "--job", "log_cleanup", "--limit", "3")
    assert code == 0
    assert out.count("failed") == 3 and "succeeded" not in out

    code, out, _ = flp(capsys, "--job", "log_cleanup", "--json")
    runs = json.loads(out)["runs"]
    assert [r["status"] for r in runs] == ["failed", "failed", "failed", "succeeded"]
    assert runs == sorted(runs, key=lambda r: r["started_utc"], reverse=True)


def test_status_of_one_run_lists_its_batches(flp_env, capsys):
    run = add_run(flp_env, "archive_aim", "succeeded", minutes_ago=10, rows=30, message="2 batches")
    add_batch(flp_env, run, 1, 20, "ids 1-20")
    add_batch(flp_env, run, 2, 10, "ids 21-30")

    code, out, _ = flp(capsys, "--run", str(run))
    assert code == 0
    assert f"Run {run} of archive_aim: succeeded" in out and "2 batches" in out
    assert "ids 1-20" in out and "ids 21-30" in out

    code, out, _ = flp(capsys, "--run", str(run), "--json")
    data = json.loads(out)
    assert data["run"]["job_run_id"] == run
    assert [(b["batch_no"], b["rows"], b["note"]) for b in data["batches"]] == [
        (1, 20, "ids 1-20"),
        (2, 10, "ids 21-30"),
    ]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--job", "archive"], "unknown job 'archive'"),
        (["--job", "Archive AIM"], "job name 'Archive AIM' is not supported"),
        (["--run", "999999"], "no job run 999999"),
    ],
)
def test_status_of_what_does_not_exist_is_one_line(flp_env, capsys, argv, says):
    code, out, err = flp(capsys, *argv)

    assert code == 2 and out == ""
    assert says in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------
# Under a login that is only a member of flp_operator
# ---------------------------------------------------------------------------


@pytest.fixture
def operator_url(db):
    """A login role that is a member of flp_operator and nothing else; its URL."""
    role, password = f"flp_test_op_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE flp_operator").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    url = make_url(db.url).set(username=role, password=password).render_as_string(hide_password=False)
    yield url
    with psycopg.connect(libpq_url(db.url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_flp_status_works_with_only_the_operator_role(history, operator_url, monkeypatch, capsys):
    monkeypatch.setenv("FLP_DATABASE_URL", operator_url)
    run_id = scalar(history, "SELECT MAX(JobRunId) FROM Ops.JobRun WHERE JobName = 'archive_aim'")

    code, out, err = flp(capsys)
    assert (code, err) == (0, "")
    assert "succeeded" in line_of(out, "archive_aim") and "log_cleanup: failed 3 runs in a row" in out

    code, out, err = flp(capsys, "--json")
    assert (code, err) == (0, "") and len(json.loads(out)["jobs"]) == len(JOBS)

    code, out, err = flp(capsys, "--job", "session_purge")
    assert (code, err) == (0, "") and "Runs of session_purge" in out

    code, out, err = flp(capsys, "--run", str(run_id))
    assert (code, err) == (0, "") and f"Run {run_id} of archive_aim" in out


def test_the_operator_role_reads_no_table_and_runs_no_job(db, operator_url):
    with psycopg.connect(libpq_url(operator_url), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM ops.jobrun")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM ops.heartbeat")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(
                "CALL job.job_run_start(p_JobName => 'archive_aim', p_JobRunId => NULL, p_Result => NULL)"
            )
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("CALL job.heartbeat_beat('x', 'h', 1)")
        assert conn.execute("SELECT count(*) FROM monitor.job_last_runs()").fetchone() == (0,)
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun") == 0
