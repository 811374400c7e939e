-- Job.convert_values_batch, version 2.
-- One batch of ConvertPatientValues (Job.convert_values runs it through
-- Job.run_batched), converting by insert (issue 9, migration 0023;
-- docs/engine.md): up to p_BatchSize new values move out of
-- PLSP.Patientvaerdier_Pending, oldest first, into PLSP.Patientvaerdier
-- already converted or invalid (Job.convert_values_move). When fewer were
-- pending, the rest of the batch converts values of status 0 still in
-- PLSP.Patientvaerdier in place, as version 1 did (Job.convert_values_rows:
-- rows written before migration 0023, or by a writer of the old shape), in
-- PatientvaerdiId order from p_Position, the last PatientvaerdiId handled
-- in place (NULL at the start; the pending rows need no position: they leave
-- their table). Done when the batch found fewer rows than p_BatchSize.
-- p_Execute = 'N' counts what the batch would do and writes nothing.
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: no READPAST
-- (FOR UPDATE SKIP LOCKED in the two procedures called), no IMPLICIT_TRANSACTIONS
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
DECLARE
    v_Moved integer;
    v_InPlace integer;
    v_InPlaceNote varchar(400);
    v_InPlaceDone boolean;
BEGIN
    -- PostgreSQL has no READPAST, IMPLICIT_TRANSACTIONS or DEADLOCK_PRIORITY: nothing to set.

    ----------------------------------------------------------------------------
    -- Check requirements, check parameters, raise collected errors: in
    -- Job.convert_values_move and Job.convert_values_rows, which name each
    -- parameter they refuse.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Do the work: the pending values, then (when the batch has room) the
    -- values of status 0 in place
    ----------------------------------------------------------------------------
    CALL Job.convert_values_move(
        p_BatchSize => p_BatchSize,
        p_Execute => p_Execute,
        p_Rows => v_Moved,
        p_Note => p_Note
    );
    p_Rows := v_Moved;

    IF v_Moved < p_BatchSize THEN
        CALL Job.convert_values_rows(
            p_Mode => 'N',
            p_BatchSize => p_BatchSize - v_Moved,
            p_Execute => p_Execute,
            p_MaxAttempts => NULL,
            p_Position => p_Position,
            p_Rows => v_InPlace,
            p_Done => v_InPlaceDone,
            p_Note => v_InPlaceNote
        );
        p_Rows := p_Rows + v_InPlace;
        IF v_InPlace > 0 THEN
            p_Note := left(concat(p_Note, '; in place: ', v_InPlaceNote), 400);
        END IF;
    END IF;

    p_Done := p_Rows < p_BatchSize;
END;
$$;
