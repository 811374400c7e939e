-- Job.log_cleanup, version 2.
-- The log clean-up: empties PLSP.Log except the current UTC month and the
-- RetentionMonths before it, a whole month partition at a time (its cost does
-- not grow with the rows removed, and writers of new log rows never wait for
-- it), then removes old rows that sit in the default partition in batches, and
-- keeps month partitions ready for PartitionMonthsAhead months. Runs on the
-- shared batch engine Job.run_batched (lock, settings, health gate, time limit,
-- dry run, Ops.JobRun / Ops.JobRunBatch rows); each step is one call of
-- Job.log_cleanup_batch, one short transaction.
-- The parameters are the standard job parameters; Job.run_batched checks them
-- and names the one it refuses. docs/jobs/log_cleanup.md is the run book.
--
-- Version 2: runs on Job.run_batched version 2, which derives the batch
-- procedure (Job.log_cleanup_batch) from the job's name; p_Host is one character
-- wider than Ops.JobRun.Host so an over-long host is refused, not cut.
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: this
-- procedure is plain (no SECURITY DEFINER, no SET clause) and must be CALLed on
-- an autocommit connection, because Job.run_batched COMMITs after every batch.
CREATE PROCEDURE Job.log_cleanup(
    p_Execute char(1) DEFAULT 'Y',
    p_TimeLimitSeconds integer DEFAULT NULL,
    p_TriggeredBy varchar(20) DEFAULT 'manual',
    p_Host varchar(129) DEFAULT NULL,
    INOUT p_JobRunId bigint DEFAULT NULL,
    INOUT p_Result varchar(20) DEFAULT NULL,
    INOUT p_RowsAffected bigint DEFAULT NULL
)
LANGUAGE plpgsql
AS $$
BEGIN
    ----------------------------------------------------------------------------
    -- Do the work (parameters are checked by Job.run_batched)
    ----------------------------------------------------------------------------
    CALL Job.run_batched(
        p_JobName => 'log_cleanup',
        p_Execute => p_Execute,
        p_TimeLimitSeconds => p_TimeLimitSeconds,
        p_TriggeredBy => p_TriggeredBy,
        p_Host => p_Host,
        p_JobRunId => p_JobRunId,
        p_Result => p_Result,
        p_RowsAffected => p_RowsAffected
    );
END;
$$;
