-- Monitor.job_run_batches, version 1.
-- The batches of one run (Ops.JobRunBatch) in the order they ran: rows, time,
-- batch size and the batch procedure's note. A run that is still going shows
-- the batches done so far. flp status --run reads it.
-- Twin difference: a function RETURNS TABLE here, a procedure returning one result set on SQL Server.
CREATE FUNCTION Monitor.job_run_batches(
    p_JobRunId bigint
)
RETURNS TABLE (
    JobRunId bigint,
    BatchNo integer,
    StartedUtc timestamp,
    DurationMs integer,
    BatchSize integer,
    RowsAffected integer,
    Note varchar
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_Errors text := '';
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
    -- Read: the batches in order
    ----------------------------------------------------------------------------
    RETURN QUERY
    SELECT
        b.JobRunId,
        b.BatchNo,
        b.StartedUtc::timestamp,
        b.DurationMs,
        b.BatchSize,
        b.RowsAffected,
        b.Note
    FROM Ops.JobRunBatch AS b
    WHERE b.JobRunId = p_JobRunId
    ORDER BY b.BatchNo;
END;
$$;
