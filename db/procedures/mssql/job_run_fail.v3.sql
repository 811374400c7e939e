-- Job.job_run_fail, version 3.
-- After a job failed in this session, marks the run this session still holds
-- the lock for as failed and releases the lock. Does nothing when the session
-- holds no lock for the job (Job.run_batched's CATCH block has finished the run
-- already). The orchestrator calls it after every failed run, on both engines.
-- Version 2: the job lock is the orchestrator principal's (see
-- Job.job_run_start); an over-long @JobName is refused; a message is cut to
-- 4,000 characters (never refused: a failure must be recorded).
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
CREATE OR ALTER PROCEDURE Job.job_run_fail
    @JobName varchar(101),
    @Message nvarchar(4000) = NULL
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    -- Members of the orchestrator's role and the database's owners may hold job locks.
    DECLARE @IsOrchestrator bit = CASE WHEN IS_MEMBER(N'flp_orchestrator') = 1 OR IS_MEMBER(N'db_owner') = 1 THEN 1 ELSE 0 END;
    -- APPLOCK_MODE fails for a caller outside the principal: asked only for members.
    DECLARE @LockMode nvarchar(32) = N'NoLock';

    DECLARE @Resource nvarchar(255) = N'flp-job:' + @JobName;
    DECLARE @Requirement nvarchar(400);

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
    BEGIN
        SET @Requirement = CONCAT(
            N'Job.job_run_fail must not run inside a transaction (@@TRANCOUNT ', @@TRANCOUNT,
            N'): it releases the job lock at once, so a later ROLLBACK would undo the failure record. Roll back first. '
        );
        THROW 50001, @Requirement, 1;
    END;

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @JobName IS NULL OR LTRIM(RTRIM(@JobName)) = '' OR LEN(@JobName) > 100
        THROW 50001, N'The value for the parameter @JobName is not supported: give the job''s name, at most 100 characters. ', 1;

    IF @IsOrchestrator = 1
        SET @LockMode = APPLOCK_MODE(N'flp_orchestrator', @Resource, 'Session');
    IF @LockMode = N'NoLock'
        RETURN;

    ----------------------------------------------------------------------------
    -- Log end
    ----------------------------------------------------------------------------
    UPDATE Ops.JobRun
    SET EndedUtc = SYSUTCDATETIME(),
        Status = 'failed',
        Message = COALESCE(@Message, N'failed')
    WHERE JobName = @JobName AND Status = 'running';

    EXEC sys.sp_releaseapplock @Resource = @Resource, @LockOwner = 'Session', @DbPrincipal = N'flp_orchestrator';
END;
