-- Job.job_batch_log, version 1.
-- Records one batch of a running job in Ops.JobRunBatch and adds its rows to the
-- run's total, so a DBA can follow a long run while it works.
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
BEGIN
    INSERT INTO Ops.JobRunBatch (JobRunId, BatchNo, StartedUtc, DurationMs, BatchSize, RowsAffected, Note)
    VALUES (p_JobRunId, p_BatchNo, p_StartedUtc, p_DurationMs, p_BatchSize, p_RowsAffected, p_Note);

    UPDATE Ops.JobRun
    SET RowsAffected = RowsAffected + p_RowsAffected
    WHERE JobRunId = p_JobRunId;
END;
$$;
