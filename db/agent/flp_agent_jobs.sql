-- FLP fallback jobs for SQL Server Agent, generated from the job registry by
-- `flp db agent-script --engine mssql --database FLP --owner sa`.
-- Run as a sysadmin: sqlcmd -S server -I -b -i flp_agent_jobs.sql (no -x
-- needed: the steps use no Agent tokens). One Agent job per FLP job, category
-- 'FLP fallback', owner sa (Agent runs the step as the database's dbo, who
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
-- in master, first asks sys.fn_hadr_is_primary_replica about FLP and ends,
-- successfully, on a secondary (NULL, a database in no group, counts as
-- primary); it names FLP in three-part names, since Agent cannot enter
-- a database on a secondary that is not readable.
-- Re-runnable: each object is created only where missing and updated only
-- where it differs; Agent jobs of the category no longer in the registry are
-- deleted. Running it twice changes nothing the second time.
SET NOCOUNT, XACT_ABORT ON;
GO

IF NOT EXISTS (
    SELECT 1 FROM msdb.dbo.syscategories AS c WHERE c.name = N'FLP fallback' AND c.category_class = 1
)
    EXEC msdb.dbo.sp_add_category @class = N'JOB', @type = N'LOCAL', @name = N'FLP fallback';
GO

DECLARE @Category sysname = N'FLP fallback';
DECLARE @Owner sysname = N'sa';
DECLARE @StepDatabase sysname = N'master';

-- archive_aim: daily at 00:00 Europe/Copenhagen
DECLARE @JobName sysname = N'FLP fallback: archive_aim';
DECLARE @Description nvarchar(512) = N'FLP job archive_aim (daily at 00:00 Europe/Copenhagen) when no orchestrator beats; flp db agent-script';
DECLARE @Command nvarchar(MAX) = N'-- An Agent T-SQL step may start with QUOTED_IDENTIFIER OFF: set what filtered indexes need.
SET NOCOUNT, QUOTED_IDENTIFIER, ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT,
    CONCAT_NULL_YIELDS_NULL ON;
DECLARE @Due char(1), @Reason varchar(40), @JobRunId bigint, @Result varchar(20),
    @RowsAffected bigint,
    @Host nvarchar(128) = COALESCE(
        @@SERVERNAME, CAST(SERVERPROPERTY(''MachineName'') AS nvarchar(128))
    );
-- A secondary replica of an availability group does nothing (NULL: in no group, so primary).
IF sys.fn_hadr_is_primary_replica(N''FLP'') = 0
    RETURN;
EXEC [FLP].Job.fallback_due @JobName = ''archive_aim'', @DailyAt = ''00:00'', @Host = @Host,
    @Due = @Due OUTPUT, @Reason = @Reason OUTPUT, @TriggeredBy = ''agent'';
IF @Due = ''Y''
    EXEC [FLP].Job.archive_aim @Execute = ''Y'', @TriggeredBy = ''agent'', @Host = @Host,
        @JobRunId = @JobRunId OUTPUT, @Result = @Result OUTPUT,
        @RowsAffected = @RowsAffected OUTPUT;';
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
        @freq_subday_type = 8,
        @freq_subday_interval = 1,
        @active_start_time = 0;
IF EXISTS (
    SELECT 1 FROM msdb.dbo.sysschedules AS s
    WHERE s.schedule_id = @ScheduleId
        AND (s.freq_type <> 4 OR s.freq_interval <> 1 OR s.freq_subday_type <> 8
            OR s.freq_subday_interval <> 1
            OR s.active_start_time <> 0)
)
    EXEC msdb.dbo.sp_update_schedule
        @schedule_id = @ScheduleId, @enabled = 1, @freq_type = 4, @freq_interval = 1,
        @freq_subday_type = 8,
        @freq_subday_interval = 1,
        @active_start_time = 0;
GO

DECLARE @Category sysname = N'FLP fallback';
DECLARE @Owner sysname = N'sa';
DECLARE @StepDatabase sysname = N'master';

-- session_purge: every 10 minutes
DECLARE @JobName sysname = N'FLP fallback: session_purge';
DECLARE @Description nvarchar(512) = N'FLP job session_purge (every 10 minutes) when no orchestrator beats; flp db agent-script';
DECLARE @Command nvarchar(MAX) = N'-- An Agent T-SQL step may start with QUOTED_IDENTIFIER OFF: set what filtered indexes need.
SET NOCOUNT, QUOTED_IDENTIFIER, ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT,
    CONCAT_NULL_YIELDS_NULL ON;
DECLARE @Due char(1), @Reason varchar(40), @JobRunId bigint, @Result varchar(20),
    @RowsAffected bigint,
    @Host nvarchar(128) = COALESCE(
        @@SERVERNAME, CAST(SERVERPROPERTY(''MachineName'') AS nvarchar(128))
    );
-- A secondary replica of an availability group does nothing (NULL: in no group, so primary).
IF sys.fn_hadr_is_primary_replica(N''FLP'') = 0
    RETURN;
EXEC [FLP].Job.fallback_due @JobName = ''session_purge'', @EverySeconds = 600, @Host = @Host,
    @Due = @Due OUTPUT, @Reason = @Reason OUTPUT, @TriggeredBy = ''agent'';
IF @Due = ''Y''
    EXEC [FLP].Job.session_purge @Execute = ''Y'', @TriggeredBy = ''agent'', @Host = @Host,
        @JobRunId = @JobRunId OUTPUT, @Result = @Result OUTPUT,
        @RowsAffected = @RowsAffected OUTPUT;';
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
        @freq_subday_type = 4,
        @freq_subday_interval = 10,
        @active_start_time = 0;
IF EXISTS (
    SELECT 1 FROM msdb.dbo.sysschedules AS s
    WHERE s.schedule_id = @ScheduleId
        AND (s.freq_type <> 4 OR s.freq_interval <> 1 OR s.freq_subday_type <> 4
            OR s.freq_subday_interval <> 10
            OR s.active_start_time <> 0)
)
    EXEC msdb.dbo.sp_update_schedule
        @schedule_id = @ScheduleId, @enabled = 1, @freq_type = 4, @freq_interval = 1,
        @freq_subday_type = 4,
        @freq_subday_interval = 10,
        @active_start_time = 0;
GO

DECLARE @Category sysname = N'FLP fallback';
DECLARE @Owner sysname = N'sa';
DECLARE @StepDatabase sysname = N'master';

-- log_cleanup: daily at 01:00 Europe/Copenhagen
DECLARE @JobName sysname = N'FLP fallback: log_cleanup';
DECLARE @Description nvarchar(512) = N'FLP job log_cleanup (daily at 01:00 Europe/Copenhagen) when no orchestrator beats; flp db agent-script';
DECLARE @Command nvarchar(MAX) = N'-- An Agent T-SQL step may start with QUOTED_IDENTIFIER OFF: set what filtered indexes need.
SET NOCOUNT, QUOTED_IDENTIFIER, ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT,
    CONCAT_NULL_YIELDS_NULL ON;
DECLARE @Due char(1), @Reason varchar(40), @JobRunId bigint, @Result varchar(20),
    @RowsAffected bigint,
    @Host nvarchar(128) = COALESCE(
        @@SERVERNAME, CAST(SERVERPROPERTY(''MachineName'') AS nvarchar(128))
    );
-- A secondary replica of an availability group does nothing (NULL: in no group, so primary).
IF sys.fn_hadr_is_primary_replica(N''FLP'') = 0
    RETURN;
EXEC [FLP].Job.fallback_due @JobName = ''log_cleanup'', @DailyAt = ''01:00'', @Host = @Host,
    @Due = @Due OUTPUT, @Reason = @Reason OUTPUT, @TriggeredBy = ''agent'';
IF @Due = ''Y''
    EXEC [FLP].Job.log_cleanup @Execute = ''Y'', @TriggeredBy = ''agent'', @Host = @Host,
        @JobRunId = @JobRunId OUTPUT, @Result = @Result OUTPUT,
        @RowsAffected = @RowsAffected OUTPUT;';
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
        @freq_subday_type = 8,
        @freq_subday_interval = 1,
        @active_start_time = 0;
IF EXISTS (
    SELECT 1 FROM msdb.dbo.sysschedules AS s
    WHERE s.schedule_id = @ScheduleId
        AND (s.freq_type <> 4 OR s.freq_interval <> 1 OR s.freq_subday_type <> 8
            OR s.freq_subday_interval <> 1
            OR s.active_start_time <> 0)
)
    EXEC msdb.dbo.sp_update_schedule
        @schedule_id = @ScheduleId, @enabled = 1, @freq_type = 4, @freq_interval = 1,
        @freq_subday_type = 8,
        @freq_subday_interval = 1,
        @active_start_time = 0;
GO

DECLARE @Category sysname = N'FLP fallback';
DECLARE @Owner sysname = N'sa';
DECLARE @StepDatabase sysname = N'master';

-- convert_values: every 5 minutes
DECLARE @JobName sysname = N'FLP fallback: convert_values';
DECLARE @Description nvarchar(512) = N'FLP job convert_values (every 5 minutes) when no orchestrator beats; flp db agent-script';
DECLARE @Command nvarchar(MAX) = N'-- An Agent T-SQL step may start with QUOTED_IDENTIFIER OFF: set what filtered indexes need.
SET NOCOUNT, QUOTED_IDENTIFIER, ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT,
    CONCAT_NULL_YIELDS_NULL ON;
DECLARE @Due char(1), @Reason varchar(40), @JobRunId bigint, @Result varchar(20),
    @RowsAffected bigint,
    @Host nvarchar(128) = COALESCE(
        @@SERVERNAME, CAST(SERVERPROPERTY(''MachineName'') AS nvarchar(128))
    );
-- A secondary replica of an availability group does nothing (NULL: in no group, so primary).
IF sys.fn_hadr_is_primary_replica(N''FLP'') = 0
    RETURN;
EXEC [FLP].Job.fallback_due @JobName = ''convert_values'', @EverySeconds = 300, @Host = @Host,
    @Due = @Due OUTPUT, @Reason = @Reason OUTPUT, @TriggeredBy = ''agent'';
IF @Due = ''Y''
    EXEC [FLP].Job.convert_values @Execute = ''Y'', @TriggeredBy = ''agent'', @Host = @Host,
        @JobRunId = @JobRunId OUTPUT, @Result = @Result OUTPUT,
        @RowsAffected = @RowsAffected OUTPUT;';
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
        @freq_subday_type = 4,
        @freq_subday_interval = 5,
        @active_start_time = 0;
IF EXISTS (
    SELECT 1 FROM msdb.dbo.sysschedules AS s
    WHERE s.schedule_id = @ScheduleId
        AND (s.freq_type <> 4 OR s.freq_interval <> 1 OR s.freq_subday_type <> 4
            OR s.freq_subday_interval <> 5
            OR s.active_start_time <> 0)
)
    EXEC msdb.dbo.sp_update_schedule
        @schedule_id = @ScheduleId, @enabled = 1, @freq_type = 4, @freq_interval = 1,
        @freq_subday_type = 4,
        @freq_subday_interval = 5,
        @active_start_time = 0;
GO

DECLARE @Category sysname = N'FLP fallback';
DECLARE @Owner sysname = N'sa';
DECLARE @StepDatabase sysname = N'master';

-- convert_invalid_values: daily at 03:00 Europe/Copenhagen
DECLARE @JobName sysname = N'FLP fallback: convert_invalid_values';
DECLARE @Description nvarchar(512) = N'FLP job convert_invalid_values (daily at 03:00 Europe/Copenhagen) when no orchestrator beats; flp db agent-script';
DECLARE @Command nvarchar(MAX) = N'-- An Agent T-SQL step may start with QUOTED_IDENTIFIER OFF: set what filtered indexes need.
SET NOCOUNT, QUOTED_IDENTIFIER, ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT,
    CONCAT_NULL_YIELDS_NULL ON;
DECLARE @Due char(1), @Reason varchar(40), @JobRunId bigint, @Result varchar(20),
    @RowsAffected bigint,
    @Host nvarchar(128) = COALESCE(
        @@SERVERNAME, CAST(SERVERPROPERTY(''MachineName'') AS nvarchar(128))
    );
-- A secondary replica of an availability group does nothing (NULL: in no group, so primary).
IF sys.fn_hadr_is_primary_replica(N''FLP'') = 0
    RETURN;
EXEC [FLP].Job.fallback_due @JobName = ''convert_invalid_values'', @DailyAt = ''03:00'', @Host = @Host,
    @Due = @Due OUTPUT, @Reason = @Reason OUTPUT, @TriggeredBy = ''agent'';
IF @Due = ''Y''
    EXEC [FLP].Job.convert_invalid_values @Execute = ''Y'', @TriggeredBy = ''agent'', @Host = @Host,
        @JobRunId = @JobRunId OUTPUT, @Result = @Result OUTPUT,
        @RowsAffected = @RowsAffected OUTPUT;';
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
        @freq_subday_type = 8,
        @freq_subday_interval = 1,
        @active_start_time = 0;
IF EXISTS (
    SELECT 1 FROM msdb.dbo.sysschedules AS s
    WHERE s.schedule_id = @ScheduleId
        AND (s.freq_type <> 4 OR s.freq_interval <> 1 OR s.freq_subday_type <> 8
            OR s.freq_subday_interval <> 1
            OR s.active_start_time <> 0)
)
    EXEC msdb.dbo.sp_update_schedule
        @schedule_id = @ScheduleId, @enabled = 1, @freq_type = 4, @freq_interval = 1,
        @freq_subday_type = 8,
        @freq_subday_interval = 1,
        @active_start_time = 0;
GO

DECLARE @Category sysname = N'FLP fallback';
DECLARE @Owner sysname = N'sa';
DECLARE @StepDatabase sysname = N'master';

-- check_inclusion: every minute
DECLARE @JobName sysname = N'FLP fallback: check_inclusion';
DECLARE @Description nvarchar(512) = N'FLP job check_inclusion (every minute) when no orchestrator beats; flp db agent-script';
DECLARE @Command nvarchar(MAX) = N'-- An Agent T-SQL step may start with QUOTED_IDENTIFIER OFF: set what filtered indexes need.
SET NOCOUNT, QUOTED_IDENTIFIER, ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT,
    CONCAT_NULL_YIELDS_NULL ON;
DECLARE @Due char(1), @Reason varchar(40), @JobRunId bigint, @Result varchar(20),
    @RowsAffected bigint,
    @Host nvarchar(128) = COALESCE(
        @@SERVERNAME, CAST(SERVERPROPERTY(''MachineName'') AS nvarchar(128))
    );
-- A secondary replica of an availability group does nothing (NULL: in no group, so primary).
IF sys.fn_hadr_is_primary_replica(N''FLP'') = 0
    RETURN;
EXEC [FLP].Job.fallback_due @JobName = ''check_inclusion'', @EverySeconds = 60, @Host = @Host,
    @Due = @Due OUTPUT, @Reason = @Reason OUTPUT, @TriggeredBy = ''agent'';
IF @Due = ''Y''
    EXEC [FLP].Job.check_inclusion @Execute = ''Y'', @TriggeredBy = ''agent'', @Host = @Host,
        @JobRunId = @JobRunId OUTPUT, @Result = @Result OUTPUT,
        @RowsAffected = @RowsAffected OUTPUT;';
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
        @freq_subday_type = 4,
        @freq_subday_interval = 1,
        @active_start_time = 0;
IF EXISTS (
    SELECT 1 FROM msdb.dbo.sysschedules AS s
    WHERE s.schedule_id = @ScheduleId
        AND (s.freq_type <> 4 OR s.freq_interval <> 1 OR s.freq_subday_type <> 4
            OR s.freq_subday_interval <> 1
            OR s.active_start_time <> 0)
)
    EXEC msdb.dbo.sp_update_schedule
        @schedule_id = @ScheduleId, @enabled = 1, @freq_type = 4, @freq_interval = 1,
        @freq_subday_type = 4,
        @freq_subday_interval = 1,
        @active_start_time = 0;
GO

DECLARE @Category sysname = N'FLP fallback';
DECLARE @Owner sysname = N'sa';
DECLARE @StepDatabase sysname = N'master';

-- ops_retention: daily at 02:30 Europe/Copenhagen
DECLARE @JobName sysname = N'FLP fallback: ops_retention';
DECLARE @Description nvarchar(512) = N'FLP job ops_retention (daily at 02:30 Europe/Copenhagen) when no orchestrator beats; flp db agent-script';
DECLARE @Command nvarchar(MAX) = N'-- An Agent T-SQL step may start with QUOTED_IDENTIFIER OFF: set what filtered indexes need.
SET NOCOUNT, QUOTED_IDENTIFIER, ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT,
    CONCAT_NULL_YIELDS_NULL ON;
DECLARE @Due char(1), @Reason varchar(40), @JobRunId bigint, @Result varchar(20),
    @RowsAffected bigint,
    @Host nvarchar(128) = COALESCE(
        @@SERVERNAME, CAST(SERVERPROPERTY(''MachineName'') AS nvarchar(128))
    );
-- A secondary replica of an availability group does nothing (NULL: in no group, so primary).
IF sys.fn_hadr_is_primary_replica(N''FLP'') = 0
    RETURN;
EXEC [FLP].Job.fallback_due @JobName = ''ops_retention'', @DailyAt = ''02:30'', @Host = @Host,
    @Due = @Due OUTPUT, @Reason = @Reason OUTPUT, @TriggeredBy = ''agent'';
IF @Due = ''Y''
    EXEC [FLP].Job.ops_retention @Execute = ''Y'', @TriggeredBy = ''agent'', @Host = @Host,
        @JobRunId = @JobRunId OUTPUT, @Result = @Result OUTPUT,
        @RowsAffected = @RowsAffected OUTPUT;';
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
        @freq_subday_type = 8,
        @freq_subday_interval = 1,
        @active_start_time = 3000;
IF EXISTS (
    SELECT 1 FROM msdb.dbo.sysschedules AS s
    WHERE s.schedule_id = @ScheduleId
        AND (s.freq_type <> 4 OR s.freq_interval <> 1 OR s.freq_subday_type <> 8
            OR s.freq_subday_interval <> 1
            OR s.active_start_time <> 3000)
)
    EXEC msdb.dbo.sp_update_schedule
        @schedule_id = @ScheduleId, @enabled = 1, @freq_type = 4, @freq_interval = 1,
        @freq_subday_type = 8,
        @freq_subday_interval = 1,
        @active_start_time = 3000;
GO

DECLARE @Category sysname = N'FLP fallback';
DECLARE @Owner sysname = N'sa';
DECLARE @StepDatabase sysname = N'master';

-- upload_drain: every minute
DECLARE @JobName sysname = N'FLP fallback: upload_drain';
DECLARE @Description nvarchar(512) = N'FLP job upload_drain (every minute) when no orchestrator beats; flp db agent-script';
DECLARE @Command nvarchar(MAX) = N'-- An Agent T-SQL step may start with QUOTED_IDENTIFIER OFF: set what filtered indexes need.
SET NOCOUNT, QUOTED_IDENTIFIER, ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT,
    CONCAT_NULL_YIELDS_NULL ON;
DECLARE @Due char(1), @Reason varchar(40), @JobRunId bigint, @Result varchar(20),
    @RowsAffected bigint,
    @Host nvarchar(128) = COALESCE(
        @@SERVERNAME, CAST(SERVERPROPERTY(''MachineName'') AS nvarchar(128))
    );
-- A secondary replica of an availability group does nothing (NULL: in no group, so primary).
IF sys.fn_hadr_is_primary_replica(N''FLP'') = 0
    RETURN;
EXEC [FLP].Job.fallback_due @JobName = ''upload_drain'', @EverySeconds = 60, @Host = @Host,
    @Due = @Due OUTPUT, @Reason = @Reason OUTPUT, @TriggeredBy = ''agent'';
IF @Due = ''Y''
    EXEC [FLP].Job.upload_drain @Execute = ''Y'', @TriggeredBy = ''agent'', @Host = @Host,
        @JobRunId = @JobRunId OUTPUT, @Result = @Result OUTPUT,
        @RowsAffected = @RowsAffected OUTPUT;';
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
        @freq_subday_type = 4,
        @freq_subday_interval = 1,
        @active_start_time = 0;
IF EXISTS (
    SELECT 1 FROM msdb.dbo.sysschedules AS s
    WHERE s.schedule_id = @ScheduleId
        AND (s.freq_type <> 4 OR s.freq_interval <> 1 OR s.freq_subday_type <> 4
            OR s.freq_subday_interval <> 1
            OR s.active_start_time <> 0)
)
    EXEC msdb.dbo.sp_update_schedule
        @schedule_id = @ScheduleId, @enabled = 1, @freq_type = 4, @freq_interval = 1,
        @freq_subday_type = 4,
        @freq_subday_interval = 1,
        @active_start_time = 0;
GO

-- Agent jobs of the category whose FLP job left the registry.
DECLARE @Stale uniqueidentifier;
DECLARE stale CURSOR LOCAL FAST_FORWARD FOR
    SELECT j.job_id FROM msdb.dbo.sysjobs AS j
    INNER JOIN msdb.dbo.syscategories AS c ON j.category_id = c.category_id
    WHERE c.name = N'FLP fallback' AND j.name NOT IN (
        N'FLP fallback: archive_aim',
        N'FLP fallback: session_purge',
        N'FLP fallback: log_cleanup',
        N'FLP fallback: convert_values',
        N'FLP fallback: convert_invalid_values',
        N'FLP fallback: check_inclusion',
        N'FLP fallback: ops_retention',
        N'FLP fallback: upload_drain'
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
