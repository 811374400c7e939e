-- Monitor.job_run_batches, version 1.
-- The batches of one run (Ops.JobRunBatch) in the order they ran: rows, time,
-- batch size and the batch procedure's note. A run that is still going shows
-- the batches done so far. flp status --run reads it.
-- Twin difference: a procedure returning one result set here, a function RETURNS TABLE on PostgreSQL.
CREATE OR ALTER PROCEDURE Monitor.job_run_batches
    @JobRunId bigint
AS
BEGIN
    SET NOCOUNT ON;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;

    DECLARE @Errors nvarchar(2048) = N'';

    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @JobRunId IS NULL OR @JobRunId < 1
        SET @Errors += N'The value for the parameter @JobRunId is not supported: give the id of a run (Ops.JobRun.JobRunId). ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Read: the batches in order
    ----------------------------------------------------------------------------
    SELECT
        b.JobRunId,
        b.BatchNo,
        b.StartedUtc,
        b.DurationMs,
        b.BatchSize,
        b.RowsAffected,
        b.Note
    FROM Ops.JobRunBatch AS b
    WHERE b.JobRunId = @JobRunId
    ORDER BY b.BatchNo;
END;
