-- Job.convert_values, version 1.
-- ConvertPatientValues, every 5 minutes: turns the raw text of new patient values
-- (status 0) into typed values in their canonical unit, or marks them invalid with a reason code.
-- Each batch is one call of Job.convert_values_batch, one short transaction, on the
-- shared batch engine Job.run_batched (lock, settings, health gate, adaptive
-- batch size, sleep, time limit, dry run, Ops.JobRun / Ops.JobRunBatch rows).
-- The parameters are the standard job parameters; Job.run_batched checks them
-- and names the one it refuses. docs/engine.md describes the rules.
--
-- Differences from the PostgreSQL twin, one line each:
--   * None in behaviour; the twin is a plain procedure CALLed on an autocommit connection, because its engine COMMITs after every batch.
CREATE OR ALTER PROCEDURE Job.convert_values
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
    SET DEADLOCK_PRIORITY LOW;

    ----------------------------------------------------------------------------
    -- Do the work (parameters are checked by Job.run_batched)
    ----------------------------------------------------------------------------
    EXEC Job.run_batched
        @JobName = 'convert_values',
        @Execute = @Execute,
        @TimeLimitSeconds = @TimeLimitSeconds,
        @TriggeredBy = @TriggeredBy,
        @Host = @Host,
        @JobRunId = @JobRunId OUTPUT,
        @Result = @Result OUTPUT,
        @RowsAffected = @RowsAffected OUTPUT;
END;
