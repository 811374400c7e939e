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
-- procedure, Job.ops_retention_batch, from the job's name; @Host is one
-- character wider than Ops.JobRun.Host so an over-long host is refused, not cut.
--
-- Differences from the PostgreSQL twin, one line each:
--   * None in behaviour; the twin is a plain procedure CALLed on an autocommit connection, because its engine COMMITs after every batch.
CREATE OR ALTER PROCEDURE Job.ops_retention
    @Execute char(1) = 'Y',
    @TimeLimitSeconds int = NULL,
    @TriggeredBy varchar(20) = 'manual',
    @Host nvarchar(129) = NULL,
    @JobRunId bigint = NULL OUTPUT,
    @Result varchar(20) = NULL OUTPUT,
    @RowsAffected bigint = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET DEADLOCK_PRIORITY LOW;

    ----------------------------------------------------------------------------
    -- Do the work (parameters are checked by Job.run_batched)
    ----------------------------------------------------------------------------
    EXEC Job.run_batched
        @JobName = 'ops_retention',
        @Execute = @Execute,
        @TimeLimitSeconds = @TimeLimitSeconds,
        @TriggeredBy = @TriggeredBy,
        @Host = @Host,
        @JobRunId = @JobRunId OUTPUT,
        @Result = @Result OUTPUT,
        @RowsAffected = @RowsAffected OUTPUT;
END;
