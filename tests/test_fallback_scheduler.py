"""The fallback schedulers (issue 10): the scripts db/agent/ holds and `flp db agent-script`
prints, and pg_cron on Debian's PostgreSQL 15 beside the orchestrator services.

The cluster is a throwaway one on loopback (tests/support/pgcron.py); the
services are the real one in child processes with a compressed timetable
(tests/support/service_main.py); times are compared on the database's clock.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import signal
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.db import migrate
from orchestrator.db.connection import Database
from orchestrator.db.databases import create_database
from orchestrator.jobs import JOBS, Timetable
from orchestrator.scheduler import fallback
from tests.support import archive, pgcron, sqlchecks
from tests.support.sql import execute, fetch_all, scalar
from tests.test_orchestrator_service import start_service, wait_for

ROOT = Path(__file__).resolve().parents[1]
AGENT_FILE = ROOT / "db" / "agent" / "flp_agent_jobs.sql"
PG_CRON_FILE = ROOT / "db" / "agent" / "flp_pg_cron.sql"
AGENT_CALL = re.compile(r"^\s*EXEC msdb\.dbo\.(?P<proc>sp_(?:add|update|delete)_\w+)", re.MULTILINE)


# ---------------------------------------------------------------------------
# The scripts, statically
# ---------------------------------------------------------------------------


def unguarded_agent_calls(script: str) -> list[str]:
    """Every msdb sp_add_/sp_update_/sp_delete_ call is the body of an IF on the line(s) before it;
    an update's IF compares what is there with what should be (<>); an add's asks for absence."""
    problems = []
    lines = script.splitlines()
    for match in AGENT_CALL.finditer(script):
        number = script.count("\n", 0, match.start())
        # The guard: the statement before, back to the line that starts with IF.
        back = number - 1
        while back >= 0 and not lines[back].lstrip().startswith("IF "):
            if lines[back].rstrip().endswith(";") or not lines[back].strip():
                back = -1
                break
            back -= 1
        guard = "\n".join(lines[back:number]) if back >= 0 else ""
        proc = match["proc"]
        if not guard:
            problems.append(f"line {number + 1}: {proc} without a guard")
        elif proc.startswith("sp_add_") and not re.search(r"IF NOT EXISTS|IS NULL", guard):
            problems.append(f"line {number + 1}: {proc} not guarded by absence")
        elif proc.startswith("sp_update_") and "<>" not in guard:
            problems.append(f"line {number + 1}: {proc} not guarded by a difference")
    return problems


@pytest.mark.parametrize("source", ["generated", "committed"])
def test_the_agent_script_parses_lints_and_guards_every_object(source, tmp_path):
    text = fallback.script("mssql") if source == "generated" else AGENT_FILE.read_text(encoding="utf-8")
    path = tmp_path / "agent.sql"
    path.write_text(text, encoding="utf-8")
    assert sqlchecks.unparsable_sections([path]) == []
    assert sqlchecks.lint_problems([path]) == []
    assert unguarded_agent_calls(text) == []
    assert len(AGENT_CALL.findall(text)) >= 7 * len(fallback.fallback_jobs())
    assert "$(" not in text  # no sqlcmd variables or Agent tokens: no -x needed


def test_the_committed_scripts_are_the_generators_output():
    """db/agent/ is what `flp db agent-script` prints for the registry as shipped: regenerate
    both after a change to the registry or to fallback.py (docs/operations.md, The fallback)."""
    assert AGENT_FILE.read_text(encoding="utf-8") == fallback.script("mssql")
    assert PG_CRON_FILE.read_text(encoding="utf-8") == fallback.script("postgresql")


def test_the_guard_check_reports_an_unguarded_or_blind_update():
    assert unguarded_agent_calls("EXEC msdb.dbo.sp_add_job @job_name = N'x';") == [
        "line 1: sp_add_job without a guard"
    ]
    blind = "IF @JobId IS NOT NULL\n    EXEC msdb.dbo.sp_update_job @job_id = @JobId;"
    assert unguarded_agent_calls(blind) == ["line 2: sp_update_job not guarded by a difference"]


def test_the_scripts_cover_the_database_jobs_of_the_registry():
    names = {job.name for job in fallback.fallback_jobs()}
    assert {"archive_aim", "session_purge", "log_cleanup", "ops_retention"} <= names
    assert not {job.name for job in JOBS.values() if getattr(job, "runner", None)} & names
    # The committed scripts name only jobs of the registry (new ones: regenerate them).
    for path, pattern in ((AGENT_FILE, r"FLP fallback: (\w+)'"), (PG_CRON_FILE, r"\('flp_(\w+)', '")):
        assert set(re.findall(pattern, path.read_text(encoding="utf-8"))) <= names, path


AGENT_COMMAND = re.compile(
    r"^DECLARE @Command nvarchar\(MAX\) = N'(?P<command>(?:[^']|'')*)';$", re.MULTILINE
)


def test_every_agent_step_does_nothing_on_an_availability_group_secondary(tmp_path):
    """Each step's first statement after its declarations ends the step, successfully, unless the
    FLP database is the primary replica (or in no group: NULL), and every call names that database."""
    script = fallback.script("mssql", "FLP")
    commands = [m["command"].replace("''", "'") for m in AGENT_COMMAND.finditer(script)]
    assert len(commands) == len(fallback.fallback_jobs())
    for command in commands:
        code = "\n".join(line for line in command.splitlines() if not line.lstrip().startswith("--"))
        statements = [s for s in code.split(";") if s.strip()]
        body = [s.strip() for s in statements if not s.strip().startswith(("SET NOCOUNT", "DECLARE"))]
        assert body[0].splitlines()[-2:] == ["IF sys.fn_hadr_is_primary_replica(N'FLP') = 0", "    RETURN"], (
            body
        )
        calls = re.findall(r"EXEC (\S+)", command)
        assert calls and all(c.startswith("[FLP].Job.") for c in calls), calls
        assert "@TriggeredBy = 'agent', @Host = @Host" in command
    # The steps themselves parse as T-SQL (they are strings in the script).
    steps = tmp_path / "steps.sql"
    steps.write_text("\nGO\n".join(commands) + "\nGO\n", encoding="utf-8")
    assert sqlchecks.unparsable_sections([steps]) == []
    # The step runs in master (a secondary that is not readable cannot be entered), everywhere.
    assert "DECLARE @StepDatabase sysname = N'master';" in script
    assert script.count("@database_name = @StepDatabase") == 2 * len(commands)
    assert "@database_name = @Database" not in script
    # A database name with a bracket or a quote stays one name.
    odd = fallback.agent_command(JOBS["session_purge"], "FL]P'x")
    assert "EXEC [FL]]P'x].Job.fallback_due" in odd and "fn_hadr_is_primary_replica(N'FL]P''x')" in odd


def test_the_pg_cron_command_records_pg_cron_with_the_database_host():
    command = fallback.pg_cron_command(JOBS["session_purge"])
    assert "p_TriggeredBy => 'pg_cron'" in command and "'agent'" not in command
    assert command.count("p_Host => v_Host") == 2 and fallback.PG_CRON_HOST_SQL in command


def test_schedules_follow_the_timetable():
    job = JOBS["session_purge"]
    assert fallback.cron_schedule(job) == "*/10 * * * *"
    assert fallback.agent_schedule(job) == {
        "freq_subday_type": 4,
        "freq_subday_interval": 10,
        "active_start_time": 0,
    }
    daily = dataclasses.replace(job, timetable=Timetable(daily_at="02:30"))
    assert fallback.cron_schedule(daily) == "30 * * * *"  # hourly; fallback_due lets the Danish 02:30 through
    assert fallback.agent_schedule(daily)["active_start_time"] == 3000


def test_flp_db_agent_script_prints_both(capsys):
    from orchestrator import cli

    assert cli.main(["db", "agent-script", "--engine", "mssql", "--database", "FLP2"]) == 0
    out = capsys.readouterr().out
    assert "fn_hadr_is_primary_replica(N''FLP2'')" in out and "EXEC [FLP2].Job.fallback_due" in out
    assert cli.main(["db", "agent-script", "--engine", "postgresql"]) == 0
    assert "cron.schedule_in_database" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# pg_cron on Debian's PostgreSQL 15
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    if not pgcron.available():
        from tests.conftest import require_service

        require_service("PostgreSQL 15 with pg_cron (apt-get install postgresql-15-cron)")
    server = pgcron.CronCluster().start()
    server.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
    yield server
    server.cleanup()


@pytest.fixture
def cron_db(cluster):
    """A migrated FLP database on the cluster; its pg_cron jobs are removed afterwards."""
    name = f"flp_c_{uuid.uuid4().hex[:10]}"
    url = create_database(cluster.url(), name)
    migrate.upgrade(url)
    db = Database(url)
    db.cluster, db.name = cluster, name
    yield db
    cluster.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE database = %s", params=(name,))
    db.engine.dispose()


def cron_jobs(cluster) -> list[tuple]:
    return cluster.execute(
        "SELECT jobid, jobname, schedule, command, database FROM cron.job ORDER BY jobname"
    )


def test_the_pg_cron_script_run_twice_creates_nothing_new_and_puts_back_a_changed_schedule(cron_db):
    cluster = cron_db.cluster
    script = fallback.pg_cron_script(cron_db.name)
    first = cluster.psql(script)
    assert first.returncode == 0, first.stderr
    jobs = cron_jobs(cluster)
    assert {j[1] for j in jobs} == {f"flp_{job.name}" for job in fallback.fallback_jobs()}
    assert {j[4] for j in jobs} == {cron_db.name}
    second = cluster.psql(script)
    assert second.returncode == 0 and "scheduled" not in second.stderr, second.stderr
    assert cron_jobs(cluster) == jobs
    # A DBA changed a schedule, and a job left the registry: the script puts both right.
    cluster.execute(
        "SELECT cron.alter_job(jobid, schedule => '5 5 * * *') FROM cron.job "
        "WHERE jobname = 'flp_session_purge'"
    )
    cluster.execute(
        "SELECT cron.schedule_in_database('flp_gone', '1 1 * * *', 'SELECT 1', %s)", params=(cron_db.name,)
    )
    third = cluster.psql(script)
    assert third.returncode == 0, third.stderr
    assert "updated flp_session_purge" in third.stderr and "unscheduled flp_gone" in third.stderr
    assert cron_jobs(cluster) == jobs


COMPRESSED = {"session_purge": {"every_seconds": 10}, "ops_retention": {"every_seconds": 15}}


def runs(db, since=None, by=None) -> list[tuple]:
    sql = "SELECT JobName, TriggeredBy, Host, Status, StartedUtc FROM Ops.JobRun WHERE Status <> 'skipped'"
    params: tuple = ()
    if since is not None:
        sql += " AND StartedUtc > ?"
        params += (since,)
    if by is not None:
        sql += " AND TriggeredBy = ?"
        params += (by,)
    return fetch_all(db, sql + " ORDER BY StartedUtc", params)


def db_now(db):
    return scalar(db, "SELECT clock_timestamp() AT TIME ZONE 'UTC'")


def stop(process, sig=signal.SIGTERM) -> str:
    process.send_signal(sig)
    try:
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    return err


@pytest.mark.slow
def test_two_services_and_pg_cron_run_each_slot_once_and_pg_cron_takes_over_only_while_none_beats(cron_db):
    db, cluster = cron_db, cron_db.cluster
    jobs = {
        name: dataclasses.replace(JOBS[name], timetable=Timetable(**tt)) for name, tt in COMPRESSED.items()
    }
    done = cluster.psql(fallback.pg_cron_script(db.name, jobs))
    assert done.returncode == 0, done.stderr
    spec = {"heartbeat_seconds": 2, "stop_wait_seconds": 20}
    services = [
        start_service(db.url, COMPRESSED, host=f"svc{i}", component=f"orchestrator@svc{i}", **spec)
        for i in (1, 2)
    ]
    try:
        # Phase 1: two services and pg_cron (standing down) for half a minute.
        time.sleep(32)
        window_end = db_now(db)
        window_start = window_end - timedelta(seconds=28)
        for name, tt in COMPRESSED.items():
            period = timedelta(seconds=tt["every_seconds"])
            slots = [
                s
                for (s,) in fetch_all(
                    db, "SELECT SlotUtc FROM Ops.JobSlot WHERE JobName = ? ORDER BY 1", (name,)
                )
            ]
            in_window = [s for s in slots if window_start <= s <= window_end - period]
            expected = (window_end - period - window_start) // period
            assert len(in_window) >= expected, (name, in_window)
            for s in in_window:
                # s - 1 ms: the slot's own run may start in the slot's millisecond.
                ran = [
                    r
                    for r in runs(db, since=s - timedelta(milliseconds=1))
                    if r[0] == name and r[4] < s + period
                ]
                assert len(ran) == 1, (name, s, ran)
        assert runs(db, by="pg_cron") == []
        assert {r[2] for r in runs(db)} <= {"svc1", "svc2"}

        # Phase 2: both services killed; the heartbeat goes stale (threshold lowered); pg_cron runs the jobs.
        execute(db, "UPDATE Ops.Setting SET Value = '5' WHERE Name = 'FallbackAfterSeconds'")
        for process in services:
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        killed_at = db_now(db)
        agent_runs = wait_for(
            lambda: {r[0] for r in runs(db, since=killed_at, by="pg_cron")} >= set(COMPRESSED),
            "pg_cron's runs",
            75,
            1,
        )
        assert agent_runs
        # Recorded as pg_cron's, with the database server as host (over pg_cron's Unix socket:
        # the cluster_name setting, else localhost).
        cluster_name = scalar(db, "SELECT current_setting('cluster_name')")
        for name, by, host, status, _ in runs(db, since=killed_at, by="pg_cron"):
            assert (by, host, status) == ("pg_cron", cluster_name or "localhost", "succeeded"), name
        assert runs(db, since=killed_at, by="agent") == []

        # Phase 3: a service is back: pg_cron stands down at its next minute.
        back = start_service(db.url, COMPRESSED, host="svc3", component="orchestrator@svc3", **spec)
        services.append(back)
        wait_for(
            lambda: scalar(db, "SELECT count(*) FROM Ops.Heartbeat WHERE Host = 'svc3'"),
            "svc3's heartbeat",
            30,
        )
        back_at = db_now(db)
        wait_for(
            lambda: (
                cluster.execute(
                    "SELECT count(*) FROM cron.job_run_details AS d JOIN cron.job AS j ON j.jobid = d.jobid "
                    "WHERE j.database = %s AND d.start_time > %s::timestamp AT TIME ZONE 'UTC' "
                    "AND d.status IN ('succeeded', 'failed')",
                    params=(db.name, back_at),
                )[0][0]
                >= len(COMPRESSED)
            ),
            "pg_cron's next minute",
            75,
            1,
        )
        assert runs(db, since=back_at + timedelta(seconds=1), by="pg_cron") == []
        assert {r[0] for r in runs(db, since=back_at, by="orchestrator")} == set(COMPRESSED)
        failed = cluster.execute("SELECT return_message FROM cron.job_run_details WHERE status = 'failed'")
        assert failed == []
    finally:
        for process in services:
            process.kill()


@pytest.mark.slow
def test_pg_cron_records_its_runs_as_pg_cron_and_leaves_a_job_switched_off_alone(cron_db):
    db, cluster = cron_db, cron_db.cluster
    jobs = {
        name: dataclasses.replace(JOBS[name], timetable=Timetable(**tt)) for name, tt in COMPRESSED.items()
    }
    execute(
        db,
        "INSERT INTO Ops.Setting (JobName, Name, Value, Description) "
        "VALUES ('ops_retention', 'Enabled', 'N', 't')",
    )
    done = cluster.psql(fallback.pg_cron_script(db.name, jobs))
    assert done.returncode == 0, done.stderr
    details = (
        "SELECT count(*) FROM cron.job_run_details AS d JOIN cron.job AS j ON j.jobid = d.jobid "
        "WHERE j.database = %s AND j.jobname = 'flp_ops_retention' AND d.status = 'succeeded'"
    )
    # No orchestrator beats: pg_cron runs session_purge at its next minute, and ops_retention's gate.
    wait_for(lambda: runs(db, by="pg_cron"), "pg_cron's run", 75, 1)
    wait_for(
        lambda: cluster.execute(details, params=(db.name,))[0][0] >= 1, "pg_cron's call of the gate", 75, 1
    )
    cluster_name = scalar(db, "SELECT current_setting('cluster_name')")
    assert {(r[0], r[1], r[2]) for r in runs(db)} == {
        ("session_purge", "pg_cron", cluster_name or "localhost")
    }
    assert fetch_all(db, "SELECT DISTINCT JobName, ClaimedBy FROM Ops.JobSlot") == [
        ("session_purge", "pg_cron")
    ]


@pytest.mark.slow
def test_the_database_restarted_during_a_job_the_service_survives_and_the_next_run_succeeds(cron_db):
    db, cluster = cron_db, cron_db.cluster
    archive.load_aim(db, 2000, kinds=(archive.DELIVERED_OLD,))
    archive.set_settings(
        db, BatchSizeStart=100, BatchSizeMin=100, BatchSizeMax=100, SleepFactor=0, RetentionDays=7
    )
    archive.slow_down_batches(db, 300)
    original = archive.aim_rows(db)
    process = start_service(db.url, {"archive_aim": {"every_seconds": 10}}, heartbeat_seconds=2)
    try:
        wait_for(
            lambda: scalar(db, "SELECT count(*) FROM Ops.JobRunBatch") >= 1, "the archive's first batch", 30
        )
        first = scalar(db, "SELECT JobRunId FROM Ops.JobRun WHERE Status = 'running'")
        cluster.restart()
        db.engine.dispose()
        execute(db, "DROP TRIGGER test_slow_batch ON PLSP.FLP_AIM")  # the next run goes at full speed
        wait_for(
            lambda: scalar(
                db, "SELECT count(*) FROM Ops.JobRun WHERE Status = 'succeeded' AND JobRunId > ?", (first,)
            ),
            "a succeeded run after the restart",
            60,
            0.5,
        )
        assert process.poll() is None, "the service died"
        assert scalar(db, "SELECT Status FROM Ops.JobRun WHERE JobRunId = ?", (first,)) in (
            "failed",
            "abandoned",
        )
        err = stop(process)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    archive.assert_conserved(db, original)
    assert archive.aim_rows(db) == {}  # the later runs finished the archive


# ---------------------------------------------------------------------------
# The service's unit file and flp status
# ---------------------------------------------------------------------------


def test_the_systemd_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (ROOT / "docs" / "flp-orchestrator.service").read_text(encoding="utf-8")
    assert "ExecStart=/opt/flp/.venv/bin/flp orchestrator" in unit and "KillSignal=SIGTERM" in unit
    # The unit as installed, with this machine's flp in place of /opt/flp's.
    flp = shutil.which("flp") or pytest.skip("flp is not on PATH")
    (tmp_path / "flp-orchestrator.service").write_text(
        unit.replace("/opt/flp/.venv/bin/flp", flp), encoding="utf-8"
    )
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / "flp-orchestrator.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_status_shows_next_runs_in_danish_time_and_missed_slots(db, capsys, monkeypatch, restore_logging):
    from orchestrator import cli

    slot = scalar(db, "SELECT date_trunc('hour', now() AT TIME ZONE 'UTC') - INTERVAL '3 hours'")
    with db.connect() as conn:
        db.call(
            conn,
            "Job.job_run_missed",
            {"JobName": "archive_aim", "SlotUtc": slot, "TriggeredBy": "orchestrator", "Host": "h1"},
            ("JobRunId",),
        )
    monkeypatch.setenv("FLP_DATABASE_URL", db.url)
    assert cli.main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    jobs = {j["job"]: j for j in data["jobs"]}
    assert jobs["archive_aim"]["missed_24h"] == 1
    assert "missed_slots" in [w["code"] for w in jobs["archive_aim"]["warnings"]]
    assert jobs["archive_aim"]["next_run_local"].endswith(("T00:00:00+01:00", "T00:00:00+02:00"))
    assert jobs["session_purge"]["missed_24h"] == 0
