-- Job.log_cleanup_batch, version 2.
-- One step of the log clean-up: the batch procedure Job.run_batched calls for
-- job log_cleanup. It checks its parameters in the caller's context and hands
-- the step to Job.log_cleanup_batch_as_owner, which does the work with the
-- owner's rights (docs/jobs/log_cleanup.md has the steps: months ahead, old
-- months, stragglers).
--
-- Version 2 (issue 7): version 1's body moved to Job.log_cleanup_batch_as_owner
-- (one month partition created per step, exact row counts, straggler keyset,
-- the clock at the step), so that on SQL Server this procedure can check that
-- the database owner is a login before anything runs as the owner.
-- PostgreSQL differences from the T-SQL twin, forced by the engine: no owner
-- check (SECURITY DEFINER runs as the routine's owner role, which always
-- exists); this procedure touches no table, so it runs with the caller's
-- rights; a char(1) parameter is not cut to its length, so 'YES' for
-- p_Execute is refused naming it (SQL Server cuts it to 'Y').
CREATE PROCEDURE Job.log_cleanup_batch(
    p_BatchSize integer,
    p_Execute char(1),
    INOUT p_Position bigint DEFAULT NULL,
    INOUT p_Rows integer DEFAULT NULL,
    INOUT p_Done boolean DEFAULT NULL,
    INOUT p_Note varchar(400) DEFAULT NULL
)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check here (the T-SQL twin checks the
    -- database owner); no transaction control (Job.run_batched commits).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_BatchSize IS NULL OR p_BatchSize < 1 OR p_BatchSize > 4000 THEN
        v_Errors := v_Errors || 'The value for the parameter p_BatchSize is not supported: give 1 to 4000 rows (under SQL Server''s lock escalation at 5,000 locks). ';
    END IF;
    IF p_Execute IS NULL OR p_Execute NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (remove) or N (count only). ';
    END IF;
    IF p_Position < -315537897600001 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Position is not supported: give NULL, a step position from an earlier call, or -1. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work: the step, with the owner's rights
    ----------------------------------------------------------------------------
    CALL Job.log_cleanup_batch_as_owner(p_BatchSize, p_Execute, p_Position, p_Rows, p_Done, p_Note);
END;
$$;
