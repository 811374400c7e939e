-- Monitor.job_last_runs, version 1.
-- The last run of every job (or of one), with the runs and failures of the last
-- p_WindowHours hours and the failures in a row since the job last ended
-- cleanly (succeeded or stopped), in one pass over Ops.JobRun. The last run is
-- the newest row that is not 'skipped' (a skipped row only says another session
-- had the job), or the newest row when there is no other. NowUtc is the
-- database's time, for ages. flp status reads it.
-- Twin difference: a function RETURNS TABLE here, a procedure returning one result set on SQL Server.
CREATE FUNCTION Monitor.job_last_runs(
    p_JobName varchar(100) DEFAULT NULL,
    p_WindowHours integer DEFAULT 24
)
RETURNS TABLE (
    JobName varchar,
    JobRunId bigint,
    TriggeredBy varchar,
    Host varchar,
    StartedUtc timestamp,
    EndedUtc timestamp,
    Status varchar,
    RowsAffected bigint,
    Message varchar,
    LastSucceededUtc timestamp,
    RunsInWindow integer,
    FailuresInWindow integer,
    ConsecutiveFailures integer,
    NowUtc timestamp,
    DurationMs bigint
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_Errors text := '';
    v_NowUtc timestamp(3) := (clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3);
    v_SinceUtc timestamp(3);
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_JobName IS NOT NULL AND p_JobName !~ '^[a-z0-9_]+$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobName is not supported: give a job''s name (lower-case letters, digits, _) or NULL for every job. ';
    END IF;
    IF p_WindowHours IS NULL OR p_WindowHours < 1 OR p_WindowHours > 8784 THEN
        v_Errors := v_Errors || 'The value for the parameter p_WindowHours is not supported: give whole hours from 1 to 8784 (a year). ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Read: one row per job
    ----------------------------------------------------------------------------
    v_SinceUtc := v_NowUtc - make_interval(hours => p_WindowHours);

    RETURN QUERY
    WITH Marked AS (
        SELECT
            r.JobName,
            r.JobRunId,
            r.StartedUtc,
            r.EndedUtc,
            r.Status,
            max(CASE WHEN r.Status IN ('succeeded', 'stopped') THEN r.JobRunId ELSE 0 END)
                OVER (PARTITION BY r.JobName) AS LastCleanRunId
        FROM Ops.JobRun AS r
        WHERE p_JobName IS NULL OR r.JobName = p_JobName
    ),

    Summary AS (
        SELECT
            m.JobName,
            max(CASE WHEN m.Status <> 'skipped' THEN m.JobRunId ELSE 0 END) AS LastRealRunId,
            max(m.JobRunId) AS LastRowId,
            max(CASE WHEN m.Status = 'succeeded' THEN coalesce(m.EndedUtc, m.StartedUtc) END) AS LastSucceededUtc,
            sum(CASE WHEN m.StartedUtc >= v_SinceUtc THEN 1 ELSE 0 END)::integer AS RunsInWindow,
            sum(CASE WHEN m.StartedUtc >= v_SinceUtc AND m.Status = 'failed' THEN 1 ELSE 0 END)::integer AS FailuresInWindow,
            sum(CASE WHEN m.Status = 'failed' AND m.JobRunId > m.LastCleanRunId THEN 1 ELSE 0 END)::integer AS ConsecutiveFailures
        FROM Marked AS m
        GROUP BY m.JobName
    )

    SELECT
        s.JobName,
        r.JobRunId,
        r.TriggeredBy,
        r.Host,
        r.StartedUtc::timestamp,
        r.EndedUtc::timestamp,
        r.Status,
        r.RowsAffected,
        r.Message,
        s.LastSucceededUtc::timestamp,
        s.RunsInWindow,
        s.FailuresInWindow,
        s.ConsecutiveFailures,
        v_NowUtc::timestamp,
        (extract(epoch FROM coalesce(r.EndedUtc, v_NowUtc) - r.StartedUtc) * 1000)::bigint
    FROM Summary AS s
    INNER JOIN Ops.JobRun AS r
        ON r.JobRunId = CASE WHEN s.LastRealRunId > 0 THEN s.LastRealRunId ELSE s.LastRowId END
    ORDER BY s.JobName;
END;
$$;
