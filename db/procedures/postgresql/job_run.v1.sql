-- Monitor.job_run, version 1.
-- One run by its id, with its parameters, its whole message and its number of
-- batches; no row when there is no such run. NowUtc is the database's time.
-- flp status --run reads it above the run's batches.
-- Twin difference: a function RETURNS TABLE here, a procedure returning one result set on SQL Server.
CREATE FUNCTION Monitor.job_run(
    p_JobRunId bigint
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
    Parameters varchar,
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
    IF p_JobRunId IS NULL OR p_JobRunId < 1 THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobRunId is not supported: give the id of a run (Ops.JobRun.JobRunId). ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Read: the run
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
        r.Parameters,
        r.Message,
        v_NowUtc::timestamp,
        (extract(epoch FROM coalesce(r.EndedUtc, v_NowUtc) - r.StartedUtc) * 1000)::bigint,
        (SELECT count(*) FROM Ops.JobRunBatch AS b WHERE b.JobRunId = r.JobRunId)::integer
    FROM Ops.JobRun AS r
    WHERE r.JobRunId = p_JobRunId;
END;
$$;
