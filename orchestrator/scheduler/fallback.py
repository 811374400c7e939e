"""The fallback schedulers' scripts, generated from the job registry: SQL Server Agent and pg_cron.

``flp db agent-script --engine mssql|postgresql`` prints them; db/agent/ holds
the ones for the registry as shipped (a test keeps them equal). Each job of the
registry that is one procedure call (no Python runner) gets one scheduler job
whose step calls ``Job.fallback_due`` and runs the job's procedure only when it
answers 'Y': no orchestrator heartbeat younger than FallbackAfterSeconds, the
job's current slot not taken. So the fallback can run every minute beside the
orchestrators and does nothing while one of them beats.

Schedules. Interval jobs run at their interval (Agent: every N minutes from
00:00; pg_cron: ``*/N``), which are the same UTC-aligned slots the orchestrator
counts when the server's offset from UTC is whole hours. Daily jobs run every
hour at their minute and ``Job.fallback_due`` lets the one in the job's Danish
hour through, so neither the server's time zone nor daylight saving matters.

Who ran it. SQL Server Agent's runs are recorded with trigger ``agent`` and
the instance's name (``@@SERVERNAME``) as host; pg_cron's with trigger
``pg_cron`` and the database server as host (its ``cluster_name`` setting, else
its address, else ``localhost`` over a Unix socket), so ``flp status`` shows
``pg_cron@db1`` beside ``orchestrator@app1``.

Availability groups. Every Agent step first asks
``sys.fn_hadr_is_primary_replica`` about the FLP database and ends at once,
successfully, on a secondary replica (NULL, a database in no group, counts as
primary), so the same Agent jobs are created on every replica and only the
primary's run. The step runs in ``master`` and reaches the FLP database by
three-part names: on a secondary that is not readable Agent could not even
enter the database, and the step would fail instead of doing nothing.

Timetable overrides (Ops.Setting ``EveryMinutes``, ``DailyAt``, ``Enabled``)
are the orchestrator's; the fallback honours ``Enabled = 'N'`` (in
``Job.fallback_due``) and otherwise keeps the registry's timetable, which its
schedules are generated from (docs/operations.md says why).

Both scripts are re-runnable: each object is created only where missing and
updated only where it differs; running a script twice creates nothing new.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.jobs import JOBS, Job

CATEGORY = "FLP fallback"
AGENT_TRIGGER = "agent"
PG_CRON_TRIGGER = "pg_cron"
# The host pg_cron's runs record: the database server, as it knows itself.
PG_CRON_HOST_SQL = (
    "coalesce(nullif(current_setting('cluster_name'), ''), host(inet_server_addr()), 'localhost')"
)
AGENT_STEP_DATABASE = "master"  # the steps name the FLP database in three-part names (see above)
JOB_PREFIX = "flp_"  # pg_cron job names; Agent jobs are named "FLP fallback: <job>"


def fallback_jobs(jobs: Mapping[str, Job] | None = None) -> list[Job]:
    """The jobs a database scheduler can run: one procedure call, no Python runner."""
    return [job for job in (JOBS if jobs is None else jobs).values() if not getattr(job, "runner", None)]


def _due_arguments(job: Job) -> tuple[int | None, str | None]:
    tt = job.timetable
    return tt.period_seconds, tt.daily_at


# ---------------------------------------------------------------------------
# pg_cron
# ---------------------------------------------------------------------------


def cron_schedule(job: Job) -> str:
    """pg_cron's schedule (UTC minutes and hours) for the job."""
    period, daily_at = _due_arguments(job)
    if daily_at is not None:
        return f"{int(daily_at[3:])} * * * *"
    if period < 60:
        return "* * * * *"  # pg_cron 1.4's shortest; fallback_due takes one slot per call
    minutes = period // 60
    if minutes < 60:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    hours = minutes // 60
    return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"


def pg_cron_command(job: Job) -> str:
    period, daily_at = _due_arguments(job)
    every = "NULL" if period is None else str(period)
    at = "NULL" if daily_at is None else f"'{daily_at}'"
    procedure = job.procedure.lower()
    return (
        f"DO $flp$ DECLARE v_Host varchar(128) := {PG_CRON_HOST_SQL}; v_Due char(1); v_Reason varchar(40); "
        "v_JobRunId bigint; v_Result varchar(20); v_Rows bigint; BEGIN "
        f"CALL job.fallback_due(p_JobName => '{job.name}', p_EverySeconds => {every}, p_DailyAt => {at}, "
        "p_Host => v_Host, p_HeartbeatSeconds => NULL, p_Due => v_Due, p_Reason => v_Reason, "
        f"p_TriggeredBy => '{PG_CRON_TRIGGER}'); "
        "IF v_Due = 'Y' THEN COMMIT; "
        f"CALL {procedure}(p_Execute => 'Y', p_TimeLimitSeconds => NULL, "
        f"p_TriggeredBy => '{PG_CRON_TRIGGER}', p_Host => v_Host, p_JobRunId => v_JobRunId, "
        "p_Result => v_Result, p_RowsAffected => v_Rows); END IF; END $flp$;"
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def pg_cron_script(database: str = "flp", jobs: Mapping[str, Job] | None = None) -> str:
    """A psql script for the database pg_cron lives in (cron.database_name), run by its owner."""
    listed = fallback_jobs(jobs)
    rows = ",\n        ".join(
        f"({_literal(JOB_PREFIX + j.name)}, {_literal(cron_schedule(j))}, {_literal(pg_cron_command(j))})"
        for j in listed
    )
    names = ", ".join(_literal(JOB_PREFIX + j.name) for j in listed)
    return f"""-- FLP fallback jobs for pg_cron, generated from the job registry by
-- `flp db agent-script --engine postgresql --database {database}`.
-- Run with psql in the database pg_cron is installed in (cron.database_name),
-- as a superuser or the FLP database's owner:
--   psql -d postgres -v ON_ERROR_STOP=1 -f flp_pg_cron.sql
-- Each job runs in database {database}: it calls Job.fallback_due, which lets it
-- through only when no orchestrator heartbeat is younger than the setting
-- FallbackAfterSeconds (Ops.Setting, default 300) and the slot is not taken;
-- the run is then an ordinary Ops.JobRun row (TriggeredBy pg_cron, Host the
-- database server: its cluster_name setting, else its address, else localhost).
-- A job whose setting Enabled is 'N' is not run.
-- Re-runnable: a job is scheduled only where missing, altered only where its
-- schedule, command or database differ, and flp_ jobs no longer in the
-- registry are unscheduled. Running it twice changes nothing the second time.
\\set ON_ERROR_STOP on
CREATE EXTENSION IF NOT EXISTS pg_cron;

DO $script$
DECLARE
    v_Database text := {_literal(database)};
    r record;
BEGIN
    FOR r IN
        SELECT w.jobname, w.schedule, w.command, j.jobid, j.schedule AS old_schedule,
            j.command AS old_command, j.database AS old_database
        FROM (VALUES
        {rows}
        ) AS w (jobname, schedule, command)
        LEFT JOIN cron.job AS j ON j.jobname = w.jobname
    LOOP
        IF r.jobid IS NULL THEN
            PERFORM cron.schedule_in_database(r.jobname, r.schedule, r.command, v_Database);
            RAISE NOTICE 'scheduled %', r.jobname;
        ELSIF r.old_schedule <> r.schedule OR r.old_command <> r.command OR r.old_database <> v_Database THEN
            PERFORM cron.alter_job(r.jobid, r.schedule, r.command, v_Database);
            RAISE NOTICE 'updated %', r.jobname;
        END IF;
    END LOOP;
    FOR r IN
        SELECT j.jobid, j.jobname FROM cron.job AS j
        WHERE j.jobname LIKE 'flp\\_%' AND j.jobname NOT IN ({names})
    LOOP
        PERFORM cron.unschedule(r.jobid);
        RAISE NOTICE 'unscheduled %', r.jobname;
    END LOOP;
END
$script$;
"""


# ---------------------------------------------------------------------------
# SQL Server Agent
# ---------------------------------------------------------------------------


def agent_schedule(job: Job) -> dict[str, int]:
    """sp_add_jobschedule's frequency arguments: daily, repeating within the day."""
    period, daily_at = _due_arguments(job)
    if daily_at is not None:  # every hour at the job's minute
        minute = int(daily_at[3:])
        return {"freq_subday_type": 8, "freq_subday_interval": 1, "active_start_time": minute * 100}
    if period < 60:  # seconds (Agent's shortest is 10)
        return {"freq_subday_type": 2, "freq_subday_interval": max(period, 10), "active_start_time": 0}
    if period < 3600:
        return {"freq_subday_type": 4, "freq_subday_interval": period // 60, "active_start_time": 0}
    return {"freq_subday_type": 8, "freq_subday_interval": period // 3600, "active_start_time": 0}


PRIMARY_CHECK = "IF sys.fn_hadr_is_primary_replica({database}) = 0"


def _bracket(name: str) -> str:
    return "[" + name.replace("]", "]]") + "]"


def agent_command(job: Job, database: str = "FLP") -> str:
    """The step: nothing on an availability group's secondary replica, else the gate, then the job."""
    period, daily_at = _due_arguments(job)
    timing = f"@EverySeconds = {period}" if period is not None else f"@DailyAt = '{daily_at}'"
    db = _bracket(database)
    return (
        "-- An Agent T-SQL step may start with QUOTED_IDENTIFIER OFF: set what filtered indexes need.\n"
        "SET NOCOUNT, QUOTED_IDENTIFIER, ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT,\n"
        "    CONCAT_NULL_YIELDS_NULL ON;\n"
        "DECLARE @Due char(1), @Reason varchar(40), @JobRunId bigint, @Result varchar(20),\n"
        "    @RowsAffected bigint,\n"
        "    @Host nvarchar(128) = COALESCE(\n"
        "        @@SERVERNAME, CAST(SERVERPROPERTY('MachineName') AS nvarchar(128))\n"
        "    );\n"
        "-- A secondary replica of an availability group does nothing (NULL: in no group, so primary).\n"
        f"{PRIMARY_CHECK.format(database=_n(database))}\n"
        "    RETURN;\n"
        f"EXEC {db}.Job.fallback_due @JobName = '{job.name}', {timing}, @Host = @Host,\n"
        f"    @Due = @Due OUTPUT, @Reason = @Reason OUTPUT, @TriggeredBy = '{AGENT_TRIGGER}';\n"
        "IF @Due = 'Y'\n"
        f"    EXEC {db}.{job.procedure} @Execute = 'Y', @TriggeredBy = '{AGENT_TRIGGER}', @Host = @Host,\n"
        "        @JobRunId = @JobRunId OUTPUT, @Result = @Result OUTPUT,\n"
        "        @RowsAffected = @RowsAffected OUTPUT;"
    )


def _n(text: str) -> str:
    return "N" + _literal(text)


def _agent_job(job: Job, database: str, owner: str) -> str:
    name = f"{CATEGORY}: {job.name}"
    schedule = agent_schedule(job)
    description = (
        f"FLP job {job.name} ({job.timetable.describe()}) when no orchestrator beats; flp db agent-script"
    )
    return f"""-- {job.name}: {job.timetable.describe()}
DECLARE @JobName sysname = {_n(name)};
DECLARE @Description nvarchar(512) = {_n(description)};
DECLARE @Command nvarchar(MAX) = {_n(agent_command(job, database))};
DECLARE @JobId uniqueidentifier;
DECLARE @ScheduleId int;

SELECT @JobId = j.job_id FROM msdb.dbo.sysjobs AS j WHERE j.name = @JobName;
IF @JobId IS NULL
    EXEC msdb.dbo.sp_add_job
        @job_name = @JobName, @enabled = 1, @description = @Description,
        @category_name = @Category, @owner_login_name = @Owner, @job_id = @JobId OUTPUT;
IF EXISTS (
    SELECT 1 FROM msdb.dbo.sysjobs AS j
    INNER JOIN msdb.dbo.syscategories AS c ON j.category_id = c.category_id
    WHERE j.job_id = @JobId
        AND (j.description <> @Description OR c.name <> @Category OR j.owner_sid <> SUSER_SID(@Owner))
)
    EXEC msdb.dbo.sp_update_job
        @job_id = @JobId, @description = @Description, @category_name = @Category, @owner_login_name = @Owner;
IF NOT EXISTS (SELECT 1 FROM msdb.dbo.sysjobservers AS s WHERE s.job_id = @JobId)
    EXEC msdb.dbo.sp_add_jobserver @job_id = @JobId, @server_name = N'(local)';

IF NOT EXISTS (SELECT 1 FROM msdb.dbo.sysjobsteps AS s WHERE s.job_id = @JobId AND s.step_id = 1)
    EXEC msdb.dbo.sp_add_jobstep
        @job_id = @JobId, @step_id = 1, @step_name = N'run when no orchestrator beats', @subsystem = N'TSQL',
        @database_name = @StepDatabase, @command = @Command, @on_success_action = 1, @on_fail_action = 2;
IF EXISTS (
    SELECT 1 FROM msdb.dbo.sysjobsteps AS s
    WHERE s.job_id = @JobId AND s.step_id = 1 AND (s.command <> @Command OR s.database_name <> @StepDatabase)
)
    EXEC msdb.dbo.sp_update_jobstep
        @job_id = @JobId, @step_id = 1, @database_name = @StepDatabase, @command = @Command;

SELECT @ScheduleId = s.schedule_id
FROM msdb.dbo.sysjobschedules AS js
INNER JOIN msdb.dbo.sysschedules AS s ON js.schedule_id = s.schedule_id
WHERE js.job_id = @JobId AND s.name = @JobName;
IF @ScheduleId IS NULL
    EXEC msdb.dbo.sp_add_jobschedule
        @job_id = @JobId, @name = @JobName, @enabled = 1, @freq_type = 4, @freq_interval = 1,
        @freq_subday_type = {schedule["freq_subday_type"]},
        @freq_subday_interval = {schedule["freq_subday_interval"]},
        @active_start_time = {schedule["active_start_time"]};
IF EXISTS (
    SELECT 1 FROM msdb.dbo.sysschedules AS s
    WHERE s.schedule_id = @ScheduleId
        AND (s.freq_type <> 4 OR s.freq_interval <> 1 OR s.freq_subday_type <> {schedule["freq_subday_type"]}
            OR s.freq_subday_interval <> {schedule["freq_subday_interval"]}
            OR s.active_start_time <> {schedule["active_start_time"]})
)
    EXEC msdb.dbo.sp_update_schedule
        @schedule_id = @ScheduleId, @enabled = 1, @freq_type = 4, @freq_interval = 1,
        @freq_subday_type = {schedule["freq_subday_type"]},
        @freq_subday_interval = {schedule["freq_subday_interval"]},
        @active_start_time = {schedule["active_start_time"]};"""


def agent_script(database: str = "FLP", owner: str = "sa", jobs: Mapping[str, Job] | None = None) -> str:
    """An idempotent T-SQL script creating or updating the SQL Server Agent jobs, for ``sqlcmd -I -b``."""
    listed = fallback_jobs(jobs)
    names = ",\n        ".join(_n(f"{CATEGORY}: {job.name}") for job in listed)
    header = f"""-- FLP fallback jobs for SQL Server Agent, generated from the job registry by
-- `flp db agent-script --engine mssql --database {database} --owner {owner}`.
-- Run as a sysadmin: sqlcmd -S server -I -b -i flp_agent_jobs.sql (no -x
-- needed: the steps use no Agent tokens). One Agent job per FLP job, category
-- '{CATEGORY}', owner {owner} (Agent runs the step as the database's dbo, who
-- may take the job locks); each step calls Job.fallback_due and runs the job's
-- procedure only when no orchestrator heartbeat is younger than the setting
-- FallbackAfterSeconds (Ops.Setting, default 300) and the slot is not taken.
-- What a run did goes to Ops.JobRun / Ops.JobRunBatch (flp status), not to
-- Agent's 4,000-character step history: the step prints nothing (SET NOCOUNT
-- ON), and a failed run raises its error, so the step fails (-b-safe: every
-- error here stops sqlcmd, and XACT_ABORT rolls the batch back). Runs are
-- recorded with trigger agent and host @@SERVERNAME; a job whose setting
-- Enabled is 'N' is not run.
-- Availability groups: create the same jobs on every replica. Each step runs
-- in master, first asks sys.fn_hadr_is_primary_replica about {database} and ends,
-- successfully, on a secondary (NULL, a database in no group, counts as
-- primary); it names {database} in three-part names, since Agent cannot enter
-- a database on a secondary that is not readable.
-- Re-runnable: each object is created only where missing and updated only
-- where it differs; Agent jobs of the category no longer in the registry are
-- deleted. Running it twice changes nothing the second time.
SET NOCOUNT, XACT_ABORT ON;
GO

IF NOT EXISTS (
    SELECT 1 FROM msdb.dbo.syscategories AS c WHERE c.name = {_n(CATEGORY)} AND c.category_class = 1
)
    EXEC msdb.dbo.sp_add_category @class = N'JOB', @type = N'LOCAL', @name = {_n(CATEGORY)};
GO
"""
    settings = f"""DECLARE @Category sysname = {_n(CATEGORY)};
DECLARE @Owner sysname = {_n(owner)};
DECLARE @StepDatabase sysname = {_n(AGENT_STEP_DATABASE)};
"""
    body = "".join(f"\n{settings}\n{_agent_job(job, database, owner)}\nGO\n" for job in listed)
    cleanup = f"""
-- Agent jobs of the category whose FLP job left the registry.
DECLARE @Stale uniqueidentifier;
DECLARE stale CURSOR LOCAL FAST_FORWARD FOR
    SELECT j.job_id FROM msdb.dbo.sysjobs AS j
    INNER JOIN msdb.dbo.syscategories AS c ON j.category_id = c.category_id
    WHERE c.name = {_n(CATEGORY)} AND j.name NOT IN (
        {names}
    );
OPEN stale;
FETCH NEXT FROM stale INTO @Stale;
WHILE @@FETCH_STATUS = 0
BEGIN
    IF @Stale IS NOT NULL
        EXEC msdb.dbo.sp_delete_job @job_id = @Stale;
    FETCH NEXT FROM stale INTO @Stale;
END;
CLOSE stale;
DEALLOCATE stale;
GO
"""
    return header + body + cleanup


def script(engine: str, database: str | None = None, owner: str = "sa") -> str:
    if engine == "mssql":
        return agent_script(database or "FLP", owner)
    return pg_cron_script(database or "flp")
