-- Monitor.job_runs, version 1.
-- The runs of one job, newest first, at most @Limit of them, each with its
-- number of batches (Ops.JobRunBatch rows). NowUtc is the database's time.
-- flp status --job reads it.
-- Twin difference: a procedure returning one result set here, a function RETURNS TABLE on PostgreSQL.
CREATE OR ALTER PROCEDURE Monitor.job_runs
    @JobName varchar(100),
    @Limit int = 20
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
    IF @JobName IS NULL OR @JobName = '' OR @JobName COLLATE Latin1_General_BIN2 LIKE '%[^a-z0-9_]%'
        SET @Errors += N'The value for the parameter @JobName is not supported: give the job''s name in lower-case letters, digits and _. ';
    IF @Limit IS NULL OR @Limit < 1 OR @Limit > 1000
        SET @Errors += N'The value for the parameter @Limit is not supported: give a number of runs from 1 to 1000. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Read: the newest runs first
    ----------------------------------------------------------------------------
    SELECT TOP (@Limit)
        r.JobRunId,
        r.JobName,
        r.TriggeredBy,
        r.Host,
        r.StartedUtc,
        r.EndedUtc,
        r.Status,
        r.RowsAffected,
        r.Message,
        @NowUtc AS NowUtc,
        DATEDIFF_BIG(MILLISECOND, r.StartedUtc, COALESCE(r.EndedUtc, @NowUtc)) AS DurationMs,
        (SELECT COUNT(*) FROM Ops.JobRunBatch AS b WHERE b.JobRunId = r.JobRunId) AS Batches
    FROM Ops.JobRun AS r
    WHERE r.JobName = @JobName
    ORDER BY r.StartedUtc DESC, r.JobRunId DESC;
END;
