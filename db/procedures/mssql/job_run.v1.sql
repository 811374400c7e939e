-- Monitor.job_run, version 1.
-- One run by its id, with its parameters, its whole message and its number of
-- batches; no row when there is no such run. NowUtc is the database's time.
-- flp status --run reads it above the run's batches.
-- Twin difference: a procedure returning one result set here, a function RETURNS TABLE on PostgreSQL.
CREATE OR ALTER PROCEDURE Monitor.job_run
    @JobRunId bigint
AS
BEGIN
    SET NOCOUNT ON;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @NowUtc datetime2(3) = SYSUTCDATETIME();

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
    -- Read: the run
    ----------------------------------------------------------------------------
    SELECT
        r.JobRunId,
        r.JobName,
        r.TriggeredBy,
        r.Host,
        r.StartedUtc,
        r.EndedUtc,
        r.Status,
        r.RowsAffected,
        r.Parameters,
        r.Message,
        @NowUtc AS NowUtc,
        DATEDIFF_BIG(MILLISECOND, r.StartedUtc, COALESCE(r.EndedUtc, @NowUtc)) AS DurationMs,
        (SELECT COUNT(*) FROM Ops.JobRunBatch AS b WHERE b.JobRunId = r.JobRunId) AS Batches
    FROM Ops.JobRun AS r
    WHERE r.JobRunId = @JobRunId;
END;
