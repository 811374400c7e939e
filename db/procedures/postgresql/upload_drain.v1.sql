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
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: this
-- procedure is plain (no SECURITY DEFINER, no SET clause) and must be CALLed on
-- an autocommit connection, because Job.run_batched COMMITs after every batch.
CREATE PROCEDURE Job.upload_drain(
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
        p_JobName => 'upload_drain',
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
