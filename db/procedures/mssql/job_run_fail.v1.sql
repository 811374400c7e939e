-- Job.job_run_fail, version 1.
-- After a job failed in this session, marks the run this session still holds
-- the lock for as failed and releases the lock. Does nothing when the session
-- holds no lock for the job (Job.run_batched's CATCH block has finished the run
-- already). The orchestrator calls it after every failed run, on both engines.
CREATE OR ALTER PROCEDURE Job.job_run_fail
    @JobName varchar(100),
    @Message nvarchar(4000) = NULL
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;

    DECLARE @Resource nvarchar(255) = N'flp-job:' + @JobName;

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @JobName IS NULL OR LTRIM(RTRIM(@JobName)) = ''
        THROW 50001, N'The value for the parameter @JobName is not supported: give the job''s name. ', 1;

    IF APPLOCK_MODE('public', @Resource, 'Session') = 'NoLock'
        RETURN;

    ----------------------------------------------------------------------------
    -- Log end
    ----------------------------------------------------------------------------
    UPDATE Ops.JobRun
    SET EndedUtc = SYSUTCDATETIME(),
        Status = 'failed',
        Message = COALESCE(@Message, N'failed')
    WHERE JobName = @JobName AND Status = 'running';

    EXEC sys.sp_releaseapplock @Resource = @Resource, @LockOwner = 'Session';
END;
