-- Job.aim_import_mark_queued, version 1.
-- Marks queued (Status 1, QueuedUtc now) the rows one claim of this run took,
-- Ids p_FromId (exclusive) to p_ToId, once the queue has confirmed every
-- message holding them. A row delivered meanwhile (Status 2: a consumer was
-- faster than this call) stays delivered. Only the session running the
-- aim_import job may mark.
CREATE PROCEDURE Job.aim_import_mark_queued(
    p_JobRunId bigint,
    p_FromId bigint,
    p_ToId bigint,
    INOUT p_Rows integer DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: this session runs the aim_import job
    ----------------------------------------------------------------------------
    IF NOT EXISTS (
        SELECT 1 FROM Ops.JobRun AS r
        WHERE r.JobRunId = p_JobRunId AND r.JobName = 'aim_import' AND r.Status = 'running'
    ) OR NOT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 1
            AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('flp-job:aim_import', 0)
    ) THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobRunId is not supported: give the running aim_import run this session started (Job.job_run_start). ';
    END IF;

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_FromId IS NULL OR p_FromId < 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_FromId is not supported: give the position the claim started after (0 at the start). ';
    END IF;
    IF p_ToId IS NULL OR p_ToId <= p_FromId THEN
        v_Errors := v_Errors || 'The value for the parameter p_ToId is not supported: give the highest Id the claim returned (above p_FromId). ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    UPDATE PLSP.FLP_AIM AS a
    SET Status = 1,
        QueuedUtc = clock_timestamp() AT TIME ZONE 'UTC'
    WHERE a.Id > p_FromId AND a.Id <= p_ToId AND a.ClaimJobRunId = p_JobRunId AND a.Status IN (0, 1);
    GET DIAGNOSTICS p_Rows = ROW_COUNT;
END;
$$;
