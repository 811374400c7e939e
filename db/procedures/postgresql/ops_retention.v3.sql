-- Job.ops_retention, version 3.
-- The Ops retention job, nightly: removes the operations history older than
-- the job's settings (Ops.Setting, job ops_retention: JobRunDays, default 90;
-- JobRunBatchDays, default 30; HeartbeatDays, default 7; DeadLetterDays, default 90;
-- CdaAccessLogDays, default 400; JobSlotDays, default 30; UploadDeadLetterDays,
-- default 30) so Ops.JobRun, Ops.JobRunBatch, Ops.Heartbeat, Ops.QueueDeadLetter,
-- PLSP.CdaAccessLog, Ops.JobSlot and Upload.DeadLetterDocument stop growing, in
-- short keyset batches on the shared batch engine Job.run_batched (lock,
-- settings, health gate, adaptive batch size, sleep, time limit, dry run,
-- Ops.JobRun / Ops.JobRunBatch rows). Each batch is one call of
-- Job.ops_retention_batch (version 3 from migration 0027: the upload dead
-- letters more; version 2 from migration 0014: the three tables before; this
-- wrapper is unchanged but for this header). A running run is never removed,
-- so the job never removes its own run.
-- The parameters are the standard job parameters; Job.run_batched checks them
-- and names the one it refuses. Job.run_batched (version 2) derives the batch
-- procedure, Job.ops_retention_batch, from the job's name; p_Host is one
-- character wider than Ops.JobRun.Host so an over-long host is refused, not cut.
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: this
-- procedure is plain (no SECURITY DEFINER, no SET clause) and must be CALLed on
-- an autocommit connection, because Job.run_batched COMMITs after every batch;
-- no SET IMPLICIT_TRANSACTIONS / DEADLOCK_PRIORITY (PostgreSQL has neither).
CREATE PROCEDURE Job.ops_retention(
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
        p_JobName => 'ops_retention',
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
