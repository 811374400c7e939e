-- Job.check_inclusion, version 1.
-- CheckPatientInkluded, every minute: applies due Relevant-list changes, then
-- re-evaluates the inclusion of the due patients of the dirty list only, under a budget.
-- Each batch is one call of Job.check_inclusion_batch, one short transaction, on the
-- shared batch engine Job.run_batched (lock, settings, health gate, adaptive
-- batch size, sleep, time limit, dry run, Ops.JobRun / Ops.JobRunBatch rows).
-- The parameters are the standard job parameters; Job.run_batched checks them
-- and names the one it refuses. docs/engine.md describes the rules.
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: this
-- procedure is plain (no SECURITY DEFINER, no SET clause) and must be CALLed on
-- an autocommit connection, because Job.run_batched COMMITs after every batch.
CREATE PROCEDURE Job.check_inclusion(
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
        p_JobName => 'check_inclusion',
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
