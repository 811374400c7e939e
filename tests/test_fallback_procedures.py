"""The procedures of migrations 0010 and 0017: slot claims, missed rows, stop requests, the fallback's
gate (Enabled = 'N', pg_cron as its own trigger), the timetable overrides' read."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.support.sql import execute, fetch_all, fetch_one, scalar

SLOT = datetime(2026, 11, 30, 23, 0)


def call(db, procedure, params, outputs=()):
    with db.connect() as conn:
        return db.call(conn, procedure, params, outputs)


def claim(db, slot=SLOT, job="session_purge", fallback="N", heartbeat=None, by="orchestrator"):
    params = {"JobName": job, "SlotUtc": slot, "ClaimedBy": by, "Host": "h1", "Fallback": fallback}
    params["HeartbeatSeconds"] = heartbeat
    return call(db, "Job.job_slot_claim", params, ("Result",))["Result"]


def test_a_slot_is_claimed_once(db):
    assert claim(db) == "first"  # the job's first claim here: nothing before it was missed
    assert claim(db) == "taken"
    assert claim(db, by="agent") == "taken"
    assert claim(db, slot=datetime(2026, 12, 1)) == "claimed"
    assert claim(db, job="archive_aim") == "first"
    assert fetch_all(db, "SELECT JobName, ClaimedBy, Host FROM Ops.JobSlot ORDER BY JobName") == [
        ("archive_aim", "orchestrator", "h1"),
        ("session_purge", "orchestrator", "h1"),
        ("session_purge", "orchestrator", "h1"),
    ]


def test_a_fallback_claim_stands_down_while_an_orchestrator_beats(db):
    call(db, "Job.heartbeat_beat", {"Component": "orchestrator@h1:1", "Host": "h1", "ProcessId": 1})
    assert claim(db, fallback="Y", by="agent") == "orchestrator_alive"
    assert scalar(db, "SELECT count(*) FROM Ops.JobSlot") == 0
    execute(db, "UPDATE Ops.Heartbeat SET BeatUtc = BeatUtc - INTERVAL '301 seconds'")
    assert claim(db, fallback="Y", by="agent") == "first"  # FallbackAfterSeconds: 300
    execute(db, "UPDATE Ops.Heartbeat SET BeatUtc = now() AT TIME ZONE 'UTC' - INTERVAL '20 seconds'")
    assert claim(db, slot=datetime(2026, 12, 1), fallback="Y", heartbeat=10, by="agent") == "claimed"


def test_old_claims_of_the_job_go(db):
    assert claim(db, slot=datetime(2020, 1, 1)) == "first"
    assert claim(db) == "first"  # the 2020 claim went: the job counts as new again
    assert scalar(db, "SELECT count(*) FROM Ops.JobSlot") == 1


@pytest.mark.parametrize(
    "params, named",
    [
        ({"JobName": "Bad Name"}, "p_JobName"),
        ({"SlotUtc": None}, "p_SlotUtc"),
        ({"ClaimedBy": "cron"}, "p_ClaimedBy"),
        ({"Fallback": "X"}, "p_Fallback"),
        ({"HeartbeatSeconds": 0}, "p_HeartbeatSeconds"),
    ],
)
def test_claim_parameters_are_checked_by_name(db, params, named):
    base = {"JobName": "session_purge", "SlotUtc": SLOT, "ClaimedBy": "orchestrator", "Host": "h"}
    with pytest.raises(Exception, match=named):
        call(db, "Job.job_slot_claim", {**base, **params}, ("Result",))


def test_a_malformed_fallback_setting_is_named(db):
    execute(db, "UPDATE Ops.Setting SET Value = '5 min' WHERE Name = 'FallbackAfterSeconds'")
    with pytest.raises(Exception, match="FallbackAfterSeconds"):
        claim(db, fallback="Y", by="agent")


def test_a_missed_slot_is_one_missed_row(db):
    out = call(
        db,
        "Job.job_run_missed",
        {"JobName": "archive_aim", "SlotUtc": SLOT, "TriggeredBy": "orchestrator", "Host": "h1"},
        ("JobRunId",),
    )
    row = fetch_one(db, "SELECT JobRunId, Status, StartedUtc, Host, Message FROM Ops.JobRun")
    assert row[:4] == (out["JobRunId"], "missed", SLOT, "h1")
    assert "grace" in row[4]


def test_a_stop_request_without_a_running_run_changes_nothing(db):
    before = fetch_all(db, "SELECT * FROM Ops.Setting ORDER BY JobName, Name")
    assert call(db, "Job.job_stop_request", {"JobName": "archive_aim", "Action": "request"}, ("Result",)) == {
        "Result": "not_running"
    }
    assert call(db, "Job.job_stop_request", {"JobName": "archive_aim", "Action": "clear"}, ("Result",)) == {
        "Result": "nothing"
    }
    assert fetch_all(db, "SELECT * FROM Ops.Setting ORDER BY JobName, Name") == before


def due(db, **params):
    base = {"JobName": "session_purge", "EverySeconds": None, "DailyAt": None, "Host": "pg_cron"}
    return call(db, "Job.fallback_due", {**base, **params}, ("Due", "Reason"))


def test_the_fallback_gate_runs_an_interval_slot_once_and_only_without_a_heartbeat(db):
    assert due(db, EverySeconds=600) == {"Due": "Y", "Reason": "claimed"}
    assert due(db, EverySeconds=600) == {"Due": "N", "Reason": "taken"}
    slot = scalar(db, "SELECT SlotUtc FROM Ops.JobSlot")
    now = scalar(db, "SELECT now() AT TIME ZONE 'UTC'")
    assert slot.minute % 10 == 0 and slot.second == 0 and 0 <= (now - slot).total_seconds() < 600
    execute(db, "DELETE FROM Ops.JobSlot")
    call(db, "Job.heartbeat_beat", {"Component": "orchestrator@h1:1", "Host": "h1", "ProcessId": 1})
    assert due(db, EverySeconds=600) == {"Due": "N", "Reason": "orchestrator_alive"}


def test_the_fallback_gate_runs_a_daily_job_only_in_its_local_quarter_hour(db):
    local_now = scalar(db, "SELECT (now() AT TIME ZONE 'Europe/Copenhagen')")
    current = f"{local_now:%H:%M}"
    later = f"{(local_now.hour + 2) % 24:02d}:{local_now.minute:02d}"
    assert due(db, JobName="archive_aim", DailyAt=later) == {"Due": "N", "Reason": "not_due"}
    assert due(db, JobName="archive_aim", DailyAt=current) == {"Due": "Y", "Reason": "claimed"}
    slot_local = scalar(
        db, "SELECT (SlotUtc AT TIME ZONE 'UTC') AT TIME ZONE 'Europe/Copenhagen' FROM Ops.JobSlot"
    )
    assert f"{slot_local:%H:%M}" == current


@pytest.mark.parametrize(
    "params, named",
    [
        ({"JobName": "no_such_job", "EverySeconds": 60}, "Job.no_such_job"),
        ({}, "p_EverySeconds"),
        ({"EverySeconds": 60, "DailyAt": "01:00"}, "p_EverySeconds"),
        ({"EverySeconds": 7}, "p_EverySeconds"),
        ({"EverySeconds": 0}, "p_EverySeconds"),
        ({"DailyAt": "24:00"}, "p_DailyAt"),
        # v3 (0025): whole values only; T-SQL v2's varchar(5) cut '04:305' to a valid '04:30'.
        ({"DailyAt": "04:305"}, "p_DailyAt"),
        ({"DailyAt": "04:30 "}, "p_DailyAt"),
        ({"DailyAt": "4:30"}, "p_DailyAt"),
        ({"DailyAt": "04:3x"}, "p_DailyAt"),
        ({"EverySeconds": 60, "HeartbeatSeconds": -1}, "p_HeartbeatSeconds"),
        ({"EverySeconds": 60, "TriggeredBy": "orchestrator"}, "p_TriggeredBy"),
    ],
)
def test_fallback_gate_parameters_are_checked_by_name(db, params, named):
    with pytest.raises(Exception, match=named):
        due(db, **params)


@pytest.mark.parametrize(("saved", "after"), [("600", "600"), ("-", None)])
def test_downgrade_with_an_open_stop_request_puts_the_time_limit_back(db, saved, after):
    """A stop request sets TimeLimitSeconds to 1 and saves the old value ('-': there was
    none); undoing 0010 while one is open must restore it, not leave the job at 1 s."""
    from orchestrator.db import migrate

    execute(db, "DELETE FROM Ops.Setting WHERE JobName = 'archive_aim' AND Name = 'TimeLimitSeconds'")
    rows = [("TimeLimitSeconds", "1"), ("StopSavedTimeLimitSeconds", saved), ("StopRequestedRunId", "7")]
    insert = "INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES ('archive_aim', ?, ?, '')"
    for name, value in rows:
        execute(db, insert, (name, value))
    db.engine.dispose()
    migrate.downgrade(db.url, "0009")
    limit = "SELECT Value FROM Ops.Setting WHERE JobName = 'archive_aim' AND Name = 'TimeLimitSeconds'"
    assert scalar(db, limit) == after
    stop_rows = (
        "SELECT count(*) FROM Ops.Setting WHERE Name IN ('StopSavedTimeLimitSeconds', 'StopRequestedRunId')"
    )
    assert scalar(db, stop_rows) == 0


# ---------------------------------------------------------------------------
# Migration 0017: pg_cron as its own trigger, Enabled = 'N', the overrides' read
# ---------------------------------------------------------------------------


def set_override(db, job, name, value):
    execute(
        db,
        "INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES (?, ?, ?, 'test override')",
        (job, name, value),
    )


def test_a_pg_cron_run_is_recorded_as_pg_cron_through_the_batch_engine(db):
    from orchestrator.jobs import JOBS
    from orchestrator.runner import run_job

    result = run_job(db, JOBS["session_purge"], triggered_by="pg_cron", host="db1")
    assert result.result == "succeeded", result.error
    row = fetch_one(
        db, "SELECT TriggeredBy, Host, Status FROM Ops.JobRun WHERE JobRunId = ?", (result.job_run_id,)
    )
    assert row == ("pg_cron", "db1", "succeeded")
    with pytest.raises(Exception, match="p_TriggeredBy"):
        call(db, "Job.job_run_start", {"JobName": "x", "TriggeredBy": "cron"}, ("JobRunId", "Result"))


def test_the_fallback_gate_claims_in_the_callers_name(db):
    assert due(db, EverySeconds=600, TriggeredBy="pg_cron") == {"Due": "Y", "Reason": "claimed"}
    assert fetch_one(db, "SELECT ClaimedBy, Host FROM Ops.JobSlot") == ("pg_cron", "pg_cron")
    execute(db, "DELETE FROM Ops.JobSlot")
    assert due(db, EverySeconds=600) == {"Due": "Y", "Reason": "claimed"}  # the default: SQL Server Agent
    assert scalar(db, "SELECT ClaimedBy FROM Ops.JobSlot") == "agent"


def test_the_fallback_gate_does_nothing_for_a_job_switched_off(db):
    set_override(db, "session_purge", "Enabled", "N")
    assert due(db, EverySeconds=600, TriggeredBy="pg_cron") == {"Due": "N", "Reason": "disabled"}
    assert scalar(db, "SELECT count(*) FROM Ops.JobSlot") == 0
    assert scalar(db, "SELECT count(*) FROM Ops.JobRun") == 0
    # Exactly 'N': anything else is malformed, and the job keeps its default (enabled), as in the service.
    execute(db, "UPDATE Ops.Setting SET Value = 'n' WHERE Name = 'Enabled'")
    assert due(db, EverySeconds=600)["Due"] == "Y"
    # Another job's switch is not this job's.
    execute(db, "UPDATE Ops.Setting SET Value = 'N', JobName = 'archive_aim' WHERE Name = 'Enabled'")
    assert due(db, EverySeconds=600)["Reason"] == "taken"


def test_the_timetable_overrides_are_read_as_stored(db):
    set_override(db, "archive_aim", "DailyAt", "04:30")
    set_override(db, "session_purge", "EveryMinutes", "seven")
    with db.connect() as conn:
        rows = db.rows(conn, "Monitor.timetable_overrides")
    assert [(r["jobname"], r["name"], r["value"]) for r in rows] == [
        ("archive_aim", "DailyAt", "04:30"),
        ("session_purge", "EveryMinutes", "seven"),
    ]  # the batch settings and FallbackAfterSeconds are not among them


def test_downgrade_of_0017_turns_pg_cron_runs_back_into_agent_runs(db):
    from orchestrator.db import migrate
    from orchestrator.jobs import JOBS
    from orchestrator.runner import run_job

    assert run_job(db, JOBS["session_purge"], triggered_by="pg_cron", host="db1").result == "succeeded"
    db.engine.dispose()
    migrate.downgrade(db.url, "0016")
    assert fetch_all(db, "SELECT TriggeredBy, Host FROM Ops.JobRun") == [("agent", "db1")]


@pytest.mark.parametrize("engine", ["postgresql", "mssql"])
def test_run_batched_v4_is_v3_with_the_trigger_pg_cron_and_nothing_else(engine):
    """0017's run_batched v4 only widens the trigger list of 0014's v3: a change to v3 while it is
    unreleased must reach v4 too (rewrite v4 from v3 by this rule), or head would silently lose it."""
    from orchestrator.db import procedures

    folder = procedures.PROCEDURES_DIR / engine
    v3 = (folder / "run_batched.v3.sql").read_text(encoding="utf-8")
    v4 = (folder / "run_batched.v4.sql").read_text(encoding="utf-8")
    parameter = "p_TriggeredBy" if engine == "postgresql" else "@TriggeredBy"
    expected = (
        v3.replace(
            "'orchestrator', 'agent', 'manual', 'demo', 'test')",
            "'orchestrator', 'agent', 'pg_cron', 'manual', 'demo', 'test')",
        )
        .replace(
            "use orchestrator, agent, manual, demo or test.",
            "use orchestrator, agent, pg_cron, manual, demo or test.",
        )
        .replace(
            "-- Job.run_batched, version 3.\n",
            "-- Job.run_batched, version 4.\n"
            f"-- Version 4: {parameter} may be 'pg_cron' (passed on to Job.job_run_start\n"
            "-- version 3, migration 0017); nothing else changed from version 3.\n",
            1,
        )
    )
    assert "'pg_cron'" in expected
    assert v4 == expected
