-- Job.job_batch_log, version 2.
-- Records one batch of a running job in Ops.JobRunBatch and adds its rows to the
-- run's total, so a DBA can follow a long run while it works.
-- Version 2: only the session holding the run's job lock may log its batches
-- (as only it may finish the run), so no other caller can rewrite a run's
-- history; a note over 400 characters is cut to 400, as T-SQL's nvarchar(400)
-- parameter cuts it.
CREATE PROCEDURE Job.job_batch_log(
    p_JobRunId bigint,
    p_BatchNo integer,
    p_StartedUtc timestamp(3),
    p_DurationMs integer,
    p_BatchSize integer,
    p_RowsAffected integer,
    p_Note varchar(400) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_JobName varchar(100);
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    SELECT JobName INTO v_JobName
    FROM Ops.JobRun
    WHERE JobRunId = p_JobRunId AND Status = 'running';

    IF v_JobName IS NULL THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobRunId is not supported: give the running job run''s id. ';
    ELSIF NOT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 1
            AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('flp-job:' || v_JobName, 0)
    ) THEN
        v_Errors := v_Errors || 'The value for the parameter p_JobRunId is not supported: this session does not hold that run''s job lock. ';
    END IF;
    IF p_BatchNo IS NULL OR p_BatchNo < 1 THEN
        v_Errors := v_Errors || 'The value for the parameter p_BatchNo is not supported: give 1 or more. ';
    END IF;
    IF p_StartedUtc IS NULL THEN
        v_Errors := v_Errors || 'The value for the parameter p_StartedUtc is not supported: give the batch''s start (UTC). ';
    END IF;
    IF p_DurationMs IS NULL OR p_DurationMs < 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_DurationMs is not supported: give 0 or more milliseconds. ';
    END IF;
    IF p_BatchSize IS NULL OR p_BatchSize < 1 THEN
        v_Errors := v_Errors || 'The value for the parameter p_BatchSize is not supported: give 1 or more rows. ';
    END IF;
    IF p_RowsAffected IS NULL OR p_RowsAffected < 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_RowsAffected is not supported: give 0 or more rows. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Log the batch (both rows in the caller's transaction)
    ----------------------------------------------------------------------------
    INSERT INTO Ops.JobRunBatch (JobRunId, BatchNo, StartedUtc, DurationMs, BatchSize, RowsAffected, Note)
    VALUES (p_JobRunId, p_BatchNo, p_StartedUtc, p_DurationMs, p_BatchSize, p_RowsAffected, left(p_Note, 400));

    UPDATE Ops.JobRun
    SET RowsAffected = RowsAffected + p_RowsAffected
    WHERE JobRunId = p_JobRunId;
END;
$$;
