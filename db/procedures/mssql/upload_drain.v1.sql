-- Job.upload_drain, version 1.
-- Drains the queued bulk uploads (issue 11, docs/http.md): every minute it
-- applies the documents Upload.upload_enqueue staged in Upload.StagedDocument,
-- oldest upload first, in short batches on the shared batch engine
-- Job.run_batched (lock, settings, health gate, adaptive batch size, sleep,
-- time limit, dry run, Ops.JobRun / Ops.JobRunBatch rows). Each batch is one
-- call of Job.upload_drain_batch, one short transaction that applies its
-- documents through Upload.upload_data and deletes them from the stage. A
-- queued upload with more rows than the setting OffHoursRows waits for the
-- off-hours window (Job.off_hours_check); while the health gate is closed no
-- batch starts, so new bulk work waits and interactive uploads go on. A
-- batch that raises is rolled back and counted against its documents; a
-- document that has raised alone MaxAttempts times (setting, default 3)
-- fails its upload (Job.upload_drain_batch) and the run goes on with the
-- other uploads.
-- The parameters are the standard job parameters; Job.run_batched checks them
-- and names the one it refuses.
CREATE OR ALTER PROCEDURE Job.upload_drain
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
        @JobName = 'upload_drain',
        @Execute = @Execute,
        @TimeLimitSeconds = @TimeLimitSeconds,
        @TriggeredBy = @TriggeredBy,
        @Host = @Host,
        @JobRunId = @JobRunId OUTPUT,
        @Result = @Result OUTPUT,
        @RowsAffected = @RowsAffected OUTPUT;
END;
