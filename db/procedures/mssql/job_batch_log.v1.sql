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

    BEGIN TRANSACTION;
    INSERT INTO Ops.JobRunBatch (JobRunId, BatchNo, StartedUtc, DurationMs, BatchSize, RowsAffected, Note)
    VALUES (@JobRunId, @BatchNo, @StartedUtc, @DurationMs, @BatchSize, @RowsAffected, @Note);

    UPDATE Ops.JobRun
    SET RowsAffected = RowsAffected + @RowsAffected
    WHERE JobRunId = @JobRunId;
    COMMIT TRANSACTION;
END;
