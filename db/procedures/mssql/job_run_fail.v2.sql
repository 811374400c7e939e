-- Job.job_run_fail, version 2.
-- After a job failed in this session, marks the run this session still holds
-- the lock for as failed and releases the lock. Does nothing when the session
-- holds no lock for the job (Job.run_batched's CATCH block has finished the run
-- already). The orchestrator calls it after every failed run, on both engines.
-- Version 2: the job lock is the orchestrator principal's (see
-- Job.job_run_start); an over-long @JobName is refused; a message is cut to
-- 4,000 characters (never refused: a failure must be recorded).
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
