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
-- procedure (Job.log_cleanup_batch) from the job's name; @Host is one character
-- wider than Ops.JobRun.Host so an over-long host is refused, not cut.
--
-- Differences from the PostgreSQL twin, one line each:
--   * None in behaviour; the twin is a plain procedure CALLed on an autocommit connection, because its engine COMMITs after every batch.
CREATE OR ALTER PROCEDURE Job.log_cleanup
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
    SET IMPLICIT_TRANSACTIONS OFF;  -- a caller's ON would leave the first read's transaction open

    ----------------------------------------------------------------------------
    -- Do the work (parameters are checked by Job.run_batched)
    ----------------------------------------------------------------------------
    EXEC Job.run_batched
        @JobName = 'log_cleanup',
        @Execute = @Execute,
        @TimeLimitSeconds = @TimeLimitSeconds,
        @TriggeredBy = @TriggeredBy,
        @Host = @Host,
        @JobRunId = @JobRunId OUTPUT,
        @Result = @Result OUTPUT,
        @RowsAffected = @RowsAffected OUTPUT;
END;
