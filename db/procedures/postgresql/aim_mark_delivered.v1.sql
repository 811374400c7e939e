-- Job.aim_mark_delivered, version 1.
-- Marks delivered (Status 2, DeliveredUtc now) the FLP_AIM rows of p_Ids (a
-- JSON array of ids) once MongoDB holds their documents; the nightly archive
-- may then move them. Idempotent: rows delivered already are left as they
-- are, so a redelivered message marks nothing twice. p_Rows counts the rows
-- marked by this call.
CREATE PROCEDURE Job.aim_mark_delivered(
    p_Ids text,
    INOUT p_Rows integer DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_Ids jsonb;
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_Ids ~ '^\s*\[' THEN
        BEGIN
            v_Ids := p_Ids::jsonb;
        EXCEPTION WHEN invalid_text_representation THEN
            v_Ids := NULL;  -- not JSON: reported below
        END;
    END IF;
    IF v_Ids IS NULL THEN
        v_Errors := v_Errors || 'The value for the parameter p_Ids is not supported: give a JSON array of FLP_AIM ids. ';
    ELSIF jsonb_array_length(v_Ids) NOT BETWEEN 1 AND 4999 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Ids is not supported: give 1 to 4999 ids (lock escalation starts at 5000). ';
    ELSIF EXISTS (
        SELECT 1 FROM jsonb_array_elements(v_Ids) AS e(Value)
        WHERE jsonb_typeof(e.Value) <> 'number' OR e.Value::text !~ '^[1-9][0-9]{0,17}$'
    ) THEN
        v_Errors := v_Errors || 'The value for the parameter p_Ids is not supported: every id must be a positive whole number. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work (nothing is logged per message)
    ----------------------------------------------------------------------------
    UPDATE PLSP.FLP_AIM AS a
    SET Status = 2,
        DeliveredUtc = clock_timestamp() AT TIME ZONE 'UTC'
    WHERE a.Id IN (SELECT e.Value::bigint FROM jsonb_array_elements_text(v_Ids) AS e(Value))
        AND a.Status IN (0, 1);
    GET DIAGNOSTICS p_Rows = ROW_COUNT;
END;
$$;
