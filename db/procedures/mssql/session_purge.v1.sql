-- Job.session_purge, version 1.
-- The session purge, every 10 minutes (the FLP service's MaintenanceJob):
-- deletes the PLSP.Session rows whose ExpiresUtc has passed, oldest expiry
-- first, in short batches on the shared batch engine Job.run_batched (lock,
-- settings, health gate, adaptive batch size, sleep, time limit, dry run,
-- Ops.JobRun / Ops.JobRunBatch rows). Each batch is one call of
-- Job.session_purge_batch, one short transaction. Live sessions are never read
-- for deletion: a session expiring now or later stays.
-- The parameters are the standard job parameters; Job.run_batched checks them
-- and names the one it refuses. docs/jobs/session_purge.md is the run book.
--
-- Differences from the PostgreSQL twin: none in behaviour. (PostgreSQL's is a
-- plain procedure CALLed on an autocommit connection, because its engine
-- COMMITs after every batch.)
CREATE OR ALTER PROCEDURE Job.session_purge
    @Execute char(1) = 'Y',
    @TimeLimitSeconds int = NULL,
    @TriggeredBy varchar(20) = 'manual',
    @Host nvarchar(128) = NULL,
    @JobRunId bigint = NULL OUTPUT,
    @Result varchar(20) = NULL OUTPUT,
    @RowsAffected bigint = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;

    ----------------------------------------------------------------------------
    -- Do the work (parameters are checked by Job.run_batched)
    ----------------------------------------------------------------------------
    EXEC Job.run_batched
        @JobName = 'session_purge',
        @BatchProcedure = N'Job.session_purge_batch',
        @Execute = @Execute,
        @TimeLimitSeconds = @TimeLimitSeconds,
        @TriggeredBy = @TriggeredBy,
        @Host = @Host,
        @JobRunId = @JobRunId OUTPUT,
        @Result = @Result OUTPUT,
        @RowsAffected = @RowsAffected OUTPUT;
END;
