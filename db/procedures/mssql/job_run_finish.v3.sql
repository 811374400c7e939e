-- Job.job_run_finish, version 3.
-- Ends a run started by Job.job_run_start in this session: writes its end
-- time, status, rows and message, and releases the job's lock. Another
-- session's live run cannot be finished from here.
-- Version 2: the job lock is the orchestrator principal's (see
-- Job.job_run_start); a message is cut to 4,000 characters by its parameter,
-- as the PostgreSQL twin now cuts it: a run must always be finishable.
-- Version 3 (migration 0014): refused inside a caller's open transaction
-- (@@TRANCOUNT > 0). The job lock is the session's and is released at once,
-- while the UPDATE of Ops.JobRun would stay in the caller's transaction: a
-- ROLLBACK by the caller would then undo the run's end with the lock already
-- gone (and under XACT_ABORT a doomed transaction cannot write at all). The
-- caller commits or rolls back first; Job.run_batched calls it with none open.
--
-- Differences from the PostgreSQL twin, one line each:
--   * Refused inside a caller's open transaction (@@TRANCOUNT > 0); the twin cannot see one (no @@TRANCOUNT) and has no such check.
--   * The job lock is found with APPLOCK_MODE for members of flp_orchestrator (or db_owner) only; the twin: pg_locks.
--   * @Message nvarchar(4000) is cut by the parameter; the twin cuts it with left(..., 4000).
CREATE OR ALTER PROCEDURE Job.job_run_finish
    @JobRunId bigint,
    @Status varchar(20),
    @RowsAffected bigint = NULL,
    @Message nvarchar(4000) = NULL
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    -- Members of the orchestrator's role and the database's owners may hold job locks.
    DECLARE @IsOrchestrator bit = CASE WHEN IS_MEMBER(N'flp_orchestrator') = 1 OR IS_MEMBER(N'db_owner') = 1 THEN 1 ELSE 0 END;
    -- APPLOCK_MODE fails for a caller outside the principal: asked only for members.
    DECLARE @LockMode nvarchar(32) = N'NoLock';

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @JobName varchar(100);
    DECLARE @Resource nvarchar(255);

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += CONCAT(
            N'Job.job_run_finish must not run inside a transaction (@@TRANCOUNT ', @@TRANCOUNT,
            N'): it releases the job lock at once, so a later ROLLBACK would undo the run''s end. Commit or roll back first. '
        );

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    SELECT @JobName = JobName
    FROM Ops.JobRun
    WHERE JobRunId = @JobRunId AND Status = 'running';
    IF @IsOrchestrator = 1 AND @JobName IS NOT NULL
        SET @LockMode = APPLOCK_MODE(N'flp_orchestrator', N'flp-job:' + @JobName, 'Session');

    IF @JobName IS NULL
        SET @Errors += N'The value for the parameter @JobRunId is not supported: no running job run has this id. ';
    ELSE IF @LockMode = N'NoLock'
        SET @Errors += N'The value for the parameter @JobRunId is not supported: this session does not hold that run''s job lock. ';
    IF @Status IS NULL OR @Status NOT IN ('succeeded', 'stopped', 'failed')
        SET @Errors += N'The value for the parameter @Status is not supported: use succeeded, stopped or failed. ';
    IF @RowsAffected < 0
        SET @Errors += N'The value for the parameter @RowsAffected is not supported: it cannot be negative. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Log end
    ----------------------------------------------------------------------------
    UPDATE Ops.JobRun
    SET EndedUtc = SYSUTCDATETIME(),
        Status = @Status,
        RowsAffected = COALESCE(@RowsAffected, RowsAffected),
        Message = @Message
    WHERE JobRunId = @JobRunId;

    SET @Resource = N'flp-job:' + @JobName;
    EXEC sys.sp_releaseapplock @Resource = @Resource, @LockOwner = 'Session', @DbPrincipal = N'flp_orchestrator';
END;
