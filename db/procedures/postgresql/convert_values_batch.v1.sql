-- Job.convert_values_batch, version 1.
-- One batch of ConvertPatientValues (Job.convert_values runs it through
-- Job.run_batched): converts up to p_BatchSize new values (status 0) in
-- PatientvaerdiId order from p_Position, set-based, through the shared
-- conversion Job.convert_values_rows (docs/engine.md has the rules and the
-- reason codes). p_Position is the last PatientvaerdiId handled (NULL at the
-- start); done when fewer than p_BatchSize rows were left.
-- p_Execute = 'N' counts what the batch would do and writes nothing.
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: no READPAST
-- (FOR UPDATE SKIP LOCKED in Job.convert_values_rows), no IMPLICIT_TRANSACTIONS
-- or DEADLOCK_PRIORITY to set, no transaction control.
CREATE PROCEDURE Job.convert_values_batch(
    p_BatchSize integer,
    p_Execute char(1),
    INOUT p_Position bigint DEFAULT NULL,
    INOUT p_Rows integer DEFAULT NULL,
    INOUT p_Done boolean DEFAULT NULL,
    INOUT p_Note varchar(400) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- PostgreSQL has no READPAST, IMPLICIT_TRANSACTIONS or DEADLOCK_PRIORITY: nothing to set.

    ----------------------------------------------------------------------------
    -- Check requirements, check parameters, raise collected errors: in
    -- Job.convert_values_rows, which names each parameter it refuses.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    CALL Job.convert_values_rows(
        p_Mode => 'N',
        p_BatchSize => p_BatchSize,
        p_Execute => p_Execute,
        p_MaxAttempts => NULL,
        p_Position => p_Position,
        p_Rows => p_Rows,
        p_Done => p_Done,
        p_Note => p_Note
    );
END;
$$;
