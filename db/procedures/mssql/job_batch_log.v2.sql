-- Job.job_batch_log, version 2.
-- Records one batch of a running job in Ops.JobRunBatch and adds its rows to the
-- run's total, so a DBA can follow a long run while it works.
-- Version 2: only the session holding the run's job lock may log its batches
-- (as only it may finish the run), so no other caller can rewrite a run's
-- history. A note is cut to 400 characters by its parameter, as the
-- PostgreSQL twin now cuts it.
CREATE OR ALTER PROCEDURE Job.job_batch_log
    @JobRunId bigint,
    @BatchNo int,
    @StartedUtc datetime2(3),
    @DurationMs int,
    @BatchSize int,
    @RowsAffected int,
    @Note nvarchar(400) = NULL
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @JobName varchar(100);
    -- Members of the orchestrator's role and the database's owners may hold job locks.
    DECLARE @IsOrchestrator bit = CASE WHEN IS_MEMBER(N'flp_orchestrator') = 1 OR IS_MEMBER(N'db_owner') = 1 THEN 1 ELSE 0 END;
    -- APPLOCK_MODE fails for a caller outside the principal: asked only for members.
    DECLARE @LockMode nvarchar(32) = N'NoLock';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    SELECT @JobName = JobName
    FROM Ops.JobRun
    WHERE JobRunId = @JobRunId AND Status = 'running';
    IF @IsOrchestrator = 1 AND @JobName IS NOT NULL
        SET @LockMode = APPLOCK_MODE(N'flp_orchestrator', N'flp-job:' + @JobName, 'Session');

    IF @JobName IS NULL
        SET @Errors += N'The value for the parameter @JobRunId is not supported: give the running job run''s id. ';
    ELSE IF @LockMode = N'NoLock'
        SET @Errors += N'The value for the parameter @JobRunId is not supported: this session does not hold that run''s job lock. ';
    IF @BatchNo IS NULL OR @BatchNo < 1
        SET @Errors += N'The value for the parameter @BatchNo is not supported: give 1 or more. ';
    IF @StartedUtc IS NULL
        SET @Errors += N'The value for the parameter @StartedUtc is not supported: give the batch''s start (UTC). ';
    IF @DurationMs IS NULL OR @DurationMs < 0
        SET @Errors += N'The value for the parameter @DurationMs is not supported: give 0 or more milliseconds. ';
    IF @BatchSize IS NULL OR @BatchSize < 1
        SET @Errors += N'The value for the parameter @BatchSize is not supported: give 1 or more rows. ';
    IF @RowsAffected IS NULL OR @RowsAffected < 0
        SET @Errors += N'The value for the parameter @RowsAffected is not supported: give 0 or more rows. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Log the batch (both rows in one transaction)
    ----------------------------------------------------------------------------
    BEGIN TRANSACTION;
    INSERT INTO Ops.JobRunBatch (JobRunId, BatchNo, StartedUtc, DurationMs, BatchSize, RowsAffected, Note)
    VALUES (@JobRunId, @BatchNo, @StartedUtc, @DurationMs, @BatchSize, @RowsAffected, @Note);

    UPDATE Ops.JobRun
    SET RowsAffected = RowsAffected + @RowsAffected
    WHERE JobRunId = @JobRunId;
    COMMIT TRANSACTION;
END;
