-- Monitor.job_runs, version 1.
-- The runs of one job, newest first, at most p_Limit of them, each with its
-- number of batches (Ops.JobRunBatch rows). NowUtc is the database's time.
-- flp status --job reads it.
-- Twin difference: a function RETURNS TABLE here, a procedure returning one result set on SQL Server.
CREATE FUNCTION Monitor.job_runs(
    p_JobName varchar(100),
    p_Limit integer DEFAULT 20
)
RETURNS TABLE (
    JobRunId bigint,
    JobName varchar,
    TriggeredBy varchar,
    Host varchar,
    StartedUtc timestamp,
    EndedUtc timestamp,
    Status varchar,
    RowsAffected bigint,
    Message varchar,
    NowUtc timestamp,
    DurationMs bigint,
    Batches integer
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_Errors text := '';
    v_NowUtc timestamp(3) := (clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3);
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_JobName IS NULL OR p_JobName !~ '^[a-z0-9_]+$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobName is not supported: give the job''s name in lower-case letters, digits and _. ';
    END IF;
    IF p_Limit IS NULL OR p_Limit < 1 OR p_Limit > 1000 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Limit is not supported: give a number of runs from 1 to 1000. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Read: the newest runs first
    ----------------------------------------------------------------------------
    RETURN QUERY
    SELECT
        r.JobRunId,
        r.JobName,
        r.TriggeredBy,
        r.Host,
        r.StartedUtc::timestamp,
        r.EndedUtc::timestamp,
        r.Status,
        r.RowsAffected,
        r.Message,
        v_NowUtc::timestamp,
        (extract(epoch FROM coalesce(r.EndedUtc, v_NowUtc) - r.StartedUtc) * 1000)::bigint,
        (SELECT count(*) FROM Ops.JobRunBatch AS b WHERE b.JobRunId = r.JobRunId)::integer
    FROM Ops.JobRun AS r
    WHERE r.JobName = p_JobName
    ORDER BY r.StartedUtc DESC, r.JobRunId DESC
    LIMIT p_Limit;
END;
$$;
