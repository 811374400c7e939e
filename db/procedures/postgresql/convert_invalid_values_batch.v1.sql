-- Job.convert_invalid_values_batch, version 1.
-- One batch of ConvertInvalidPatientValues (Job.convert_invalid_values runs it
-- through Job.run_batched): retries up to p_BatchSize invalid values (status 2)
-- in PatientvaerdiId order from p_Position under the rules of now (a new unit
-- mapping, a wider range), set-based, through Job.convert_values_rows. A value
-- still invalid when its attempts reach the job's MaxAttempts setting is given
-- up: status 3, rejected, never retried again (its reason code stays).
-- p_Position is the last PatientvaerdiId handled (NULL at the start).
-- p_Execute = 'N' counts what the batch would do and writes nothing.
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: no READPAST
-- (FOR UPDATE SKIP LOCKED in Job.convert_values_rows), no IMPLICIT_TRANSACTIONS
-- or DEADLOCK_PRIORITY to set, no transaction control.
CREATE PROCEDURE Job.convert_invalid_values_batch(
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
DECLARE
    v_Errors text := '';
    v_Text varchar(400);
    v_MaxAttempts integer;
BEGIN
    -- PostgreSQL has no READPAST, IMPLICIT_TRANSACTIONS or DEADLOCK_PRIORITY: nothing to set.

    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check; no transaction control here.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters (the batch's own are checked by Job.convert_values_rows)
    ----------------------------------------------------------------------------
    SELECT s.Value INTO v_Text
    FROM Ops.Setting AS s
    WHERE s.JobName IN ('convert_invalid_values', '*') AND s.Name = 'MaxAttempts'
    ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END
    LIMIT 1;
    IF v_Text ~ '^[0-9]{1,4}$' THEN
        v_MaxAttempts := v_Text::integer;
    END IF;
    IF v_MaxAttempts IS NULL OR v_MaxAttempts < 1 OR v_MaxAttempts > 1000 THEN
        v_Errors := v_Errors || 'Setting MaxAttempts (Ops.Setting, job convert_invalid_values) is missing or not a whole number of attempts from 1 to 1000. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    CALL Job.convert_values_rows(
        p_Mode => 'I',
        p_BatchSize => p_BatchSize,
        p_Execute => p_Execute,
        p_MaxAttempts => v_MaxAttempts,
        p_Position => p_Position,
        p_Rows => p_Rows,
        p_Done => p_Done,
        p_Note => p_Note
    );
END;
$$;
