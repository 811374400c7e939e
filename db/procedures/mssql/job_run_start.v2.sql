-- Job.job_run_start, version 2.
-- Starts a run of a job: takes the job's lock for this session (held until
-- Job.job_run_finish or the session ends) and writes its Ops.JobRun row.
-- A second run of the same job gets @Result = 'already_running' at once, with a
-- 'skipped' row, instead of waiting: the orchestrator and SQL Server Agent may
-- both start a job, and only one of them may run it.
-- Version 2: the lock is taken under the orchestrator's principal
-- (@DbPrincipal = 'flp_orchestrator'; version 1 used the public role, so any
-- database user, the reader or LPS role included, could hold a job's lock and
-- have the job skipped forever): only members of flp_orchestrator, dbo and
-- db_owner (SQL Server Agent jobs run as dbo) can take it. Over-long names are
-- refused (@JobName and @Host are one character wider than their columns so a
-- longer value arrives long enough to be refused instead of cut silently).
--
-- Differences from the PostgreSQL twin, one line each:
--   * sp_getapplock itself refuses a caller outside @DbPrincipal = 'flp_orchestrator'; the twin checks the role (any role may take an advisory lock).
--   * The host defaults to HOST_NAME(), then 'unknown'; the twin: the client's address, then 'unknown'.
CREATE OR ALTER PROCEDURE Job.job_run_start
    @JobName varchar(101),
    @TriggeredBy varchar(20) = 'manual',
    @Host nvarchar(129) = NULL,
    @Parameters nvarchar(4000) = NULL,
    @JobRunId bigint = NULL OUTPUT,
    @Result varchar(20) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    -- Members of the orchestrator's role and the database's owners may hold job locks.
    DECLARE @IsOrchestrator bit = CASE WHEN IS_MEMBER(N'flp_orchestrator') = 1 OR IS_MEMBER(N'db_owner') = 1 THEN 1 ELSE 0 END;
    -- APPLOCK_MODE fails for a caller outside the principal: asked only for members.
    DECLARE @LockMode nvarchar(32) = N'NoLock';

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Resource nvarchar(255) = N'flp-job:' + @JobName;
    DECLARE @LockResult int;

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += N'Job.job_run_start must not run inside a transaction: the job lock belongs to the session. ';
    IF @IsOrchestrator = 0
        SET @Errors += N'Job.job_run_start may only be called by members of flp_orchestrator or db_owner: the job lock is theirs. ';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    -- Lower case only: the lock name compares binary, Ops.JobRun by collation.
    IF @JobName IS NULL OR @JobName = '' OR @JobName COLLATE Latin1_General_BIN2 LIKE '%[^a-z0-9_]%' OR LEN(@JobName) > 100
        SET @Errors += N'The value for the parameter @JobName is not supported: give the job''s name in lower-case letters, digits and _ (up to 100). ';
    ELSE
    BEGIN
        IF @IsOrchestrator = 1
            SET @LockMode = APPLOCK_MODE(N'flp_orchestrator', @Resource, 'Session');
        IF @LockMode <> N'NoLock'
            SET @Errors += N'The value for the parameter @JobName is not supported: this session holds the job''s lock already; call Job.job_run_fail first. ';
    END;
    IF @TriggeredBy IS NULL OR @TriggeredBy NOT IN ('orchestrator', 'agent', 'manual', 'demo', 'test')
        SET @Errors += N'The value for the parameter @TriggeredBy is not supported: use orchestrator, agent, manual, demo or test. ';
    IF LEN(@Host) > 128
        SET @Errors += N'The value for the parameter @Host is not supported: give at most 128 characters. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    SET @Host = COALESCE(@Host, HOST_NAME(), N'unknown');

    ----------------------------------------------------------------------------
    -- Take the job's lock without waiting
    ----------------------------------------------------------------------------
    EXEC @LockResult = sys.sp_getapplock
        @Resource = @Resource,
        @LockMode = 'Exclusive',
        @LockOwner = 'Session',
        @LockTimeout = 0,
        @DbPrincipal = N'flp_orchestrator';

    -- -1: another session holds it; below that (-2 cancelled, -3 deadlock,
    -- -999 bad call) is an error, not "already running".
    IF @LockResult < -1
    BEGIN
        SET @Errors = CONCAT(N'sp_getapplock returned ', @LockResult, N' for job ', @JobName, N'. ');
        THROW 50003, @Errors, 1;
    END;

    IF @LockResult = -1
    BEGIN
        INSERT INTO Ops.JobRun (JobName, TriggeredBy, Host, EndedUtc, Status, Parameters, Message)
        VALUES (
            @JobName, @TriggeredBy, @Host, SYSUTCDATETIME(), 'skipped', @Parameters,
            N'already running: another session holds the job lock'
        );
        SET @JobRunId = CAST(SCOPE_IDENTITY() AS bigint);
        SET @Result = 'already_running';
        RETURN;
    END;

    ----------------------------------------------------------------------------
    -- Log start. Holding the lock proves no earlier run is alive, so a row
    -- still marked running belongs to a run whose session died.
    ----------------------------------------------------------------------------
    -- The lock belongs to the session, not to the transaction: a start that
    -- fails here (a lock time-out, a deadlock, a full log) releases it, or the
    -- job would be 'already_running' until this pooled session ends.
    BEGIN TRY
        BEGIN TRANSACTION;
        UPDATE Ops.JobRun
        SET Status = 'abandoned',
            EndedUtc = SYSUTCDATETIME(),
            Message = N'the session ended before the run finished; found by a later run'
        WHERE JobName = @JobName AND Status = 'running';

        INSERT INTO Ops.JobRun (JobName, TriggeredBy, Host, Status, Parameters)
        VALUES (@JobName, @TriggeredBy, @Host, 'running', @Parameters);
        SET @JobRunId = CAST(SCOPE_IDENTITY() AS bigint);
        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        EXEC sys.sp_releaseapplock @Resource = @Resource, @LockOwner = 'Session', @DbPrincipal = N'flp_orchestrator';
        THROW;
    END CATCH;

    SET @Result = 'started';
END;
