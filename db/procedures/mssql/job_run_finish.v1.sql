-- Job.job_run_finish, version 1.
-- Ends a run started by Job.job_run_start in this session: writes its end
-- time, status, rows and message, and releases the job's lock. Another
-- session's live run cannot be finished from here.
CREATE OR ALTER PROCEDURE Job.job_run_finish
    @JobRunId bigint,
    @Status varchar(20),
    @RowsAffected bigint = NULL,
    @Message nvarchar(4000) = NULL
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @JobName varchar(100);
    DECLARE @Resource nvarchar(255);

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    SELECT @JobName = JobName
    FROM Ops.JobRun
    WHERE JobRunId = @JobRunId AND Status = 'running';

    IF @JobName IS NULL
        SET @Errors += N'The value for the parameter @JobRunId is not supported: no running job run has this id. ';
    ELSE IF APPLOCK_MODE('public', N'flp-job:' + @JobName, 'Session') = 'NoLock'
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
    EXEC sys.sp_releaseapplock @Resource = @Resource, @LockOwner = 'Session';
END;
