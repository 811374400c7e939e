-- Monitor.job_last_runs, version 1.
-- The last run of every job (or of one), with the runs and failures of the last
-- @WindowHours hours and the failures in a row since the job last ended
-- cleanly (succeeded or stopped), in one pass over Ops.JobRun. The last run is
-- the newest row that is not 'skipped' (a skipped row only says another session
-- had the job), or the newest row when there is no other. NowUtc is the
-- database's time, for ages. flp status reads it.
-- Twin difference: a procedure returning one result set here, a function RETURNS TABLE on PostgreSQL.
CREATE OR ALTER PROCEDURE Monitor.job_last_runs
    @JobName varchar(100) = NULL,
    @WindowHours int = 24
AS
BEGIN
    SET NOCOUNT ON;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @NowUtc datetime2(3) = SYSUTCDATETIME();
    DECLARE @SinceUtc datetime2(3);

    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @JobName IS NOT NULL AND (@JobName = '' OR @JobName COLLATE Latin1_General_BIN2 LIKE '%[^a-z0-9_]%')
        SET @Errors += N'The value for the parameter @JobName is not supported: give a job''s name (lower-case letters, digits, _) or NULL for every job. ';
    IF @WindowHours IS NULL OR @WindowHours < 1 OR @WindowHours > 8784
        SET @Errors += N'The value for the parameter @WindowHours is not supported: give whole hours from 1 to 8784 (a year). ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Read: one row per job
    ----------------------------------------------------------------------------
    SET @SinceUtc = DATEADD(HOUR, -@WindowHours, @NowUtc);

    WITH Marked AS (
        SELECT
            r.JobName,
            r.JobRunId,
            r.StartedUtc,
            r.EndedUtc,
            r.Status,
            MAX(CASE WHEN r.Status IN ('succeeded', 'stopped') THEN r.JobRunId ELSE 0 END)
                OVER (PARTITION BY r.JobName) AS LastCleanRunId
        FROM Ops.JobRun AS r
        WHERE @JobName IS NULL OR r.JobName = @JobName
    ),

    Summary AS (
        SELECT
            m.JobName,
            MAX(CASE WHEN m.Status <> 'skipped' THEN m.JobRunId ELSE 0 END) AS LastRealRunId,
            MAX(m.JobRunId) AS LastRowId,
            MAX(CASE WHEN m.Status = 'succeeded' THEN COALESCE(m.EndedUtc, m.StartedUtc) END) AS LastSucceededUtc,
            SUM(CASE WHEN m.StartedUtc >= @SinceUtc THEN 1 ELSE 0 END) AS RunsInWindow,
            SUM(CASE WHEN m.StartedUtc >= @SinceUtc AND m.Status = 'failed' THEN 1 ELSE 0 END) AS FailuresInWindow,
            SUM(CASE WHEN m.Status = 'failed' AND m.JobRunId > m.LastCleanRunId THEN 1 ELSE 0 END) AS ConsecutiveFailures
        FROM Marked AS m
        GROUP BY m.JobName
    )

    SELECT
        s.JobName,
        r.JobRunId,
        r.TriggeredBy,
        r.Host,
        r.StartedUtc,
        r.EndedUtc,
        r.Status,
        r.RowsAffected,
        r.Message,
        s.LastSucceededUtc,
        s.RunsInWindow,
        s.FailuresInWindow,
        s.ConsecutiveFailures,
        @NowUtc AS NowUtc,
        DATEDIFF_BIG(MILLISECOND, r.StartedUtc, COALESCE(r.EndedUtc, @NowUtc)) AS DurationMs
    FROM Summary AS s
    INNER JOIN Ops.JobRun AS r
        ON r.JobRunId = CASE WHEN s.LastRealRunId > 0 THEN s.LastRealRunId ELSE s.LastRowId END
    ORDER BY s.JobName
    -- "@JobName IS NULL OR JobName = @JobName": one cached plan would serve both
    -- (a scan for every call); RECOMPILE seeks IX_JobRun_JobName_Started for one job.
    OPTION (RECOMPILE);
END;
