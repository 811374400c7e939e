-- Job.job_batch_log, version 1.
-- Records one batch of a running job in Ops.JobRunBatch and adds its rows to the
-- run's total, so a DBA can follow a long run while it works.
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

    DECLARE @Errors nvarchar(2048) = N'';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @JobRunId IS NULL
        SET @Errors += N'The value for the parameter @JobRunId is not supported: give the running job run''s id. ';
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
