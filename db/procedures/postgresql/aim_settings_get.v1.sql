-- Job.aim_settings_get, version 1.
-- The settings of the AIM pipeline from Ops.Setting: FlpAimImport's (job
-- aim_import) and the consumer's (aim_consume), a job's own row over the '*'
-- row. Read at the start of every import run and every consumer start, so a
-- DBA changes them with an UPDATE. A missing or malformed setting stops the
-- caller with a message naming it.
CREATE PROCEDURE Job.aim_settings_get(
    INOUT p_MaxRows integer DEFAULT NULL,
    INOUT p_MessageSize integer DEFAULT NULL,
    INOUT p_ClaimBatchSize integer DEFAULT NULL,
    INOUT p_VisibilityTimeoutSeconds integer DEFAULT NULL,
    INOUT p_TimeLimitSeconds integer DEFAULT NULL,
    INOUT p_MaxAttempts integer DEFAULT NULL,
    INOUT p_Concurrency integer DEFAULT NULL,
    INOUT p_QueueVisibilitySeconds integer DEFAULT NULL,
    INOUT p_MongoDatabase varchar(100) DEFAULT NULL,
    INOUT p_MongoCollection varchar(100) DEFAULT NULL,
    INOUT p_MongoWriteConcern varchar(20) DEFAULT NULL,
    INOUT p_MongoTimeoutMs integer DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters: every parameter is an output; nothing to check
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Read: a job's own value wins over '*'
    ----------------------------------------------------------------------------
    WITH resolved AS (
        SELECT
            s.Name,
            s.Value,
            row_number() OVER (PARTITION BY s.Name ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END) AS pick
        FROM Ops.Setting AS s
        WHERE s.JobName IN ('aim_import', 'aim_consume', '*')
    )

    SELECT
        max(CASE WHEN r.Name = 'MaxRows' AND r.Value ~ '^[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'MessageSize' AND r.Value ~ '^[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'ClaimBatchSize' AND r.Value ~ '^[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'VisibilityTimeoutSeconds' AND r.Value ~ '^[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'TimeLimitSeconds' AND r.Value ~ '^[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'MaxAttempts' AND r.Value ~ '^[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'Concurrency' AND r.Value ~ '^[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'QueueVisibilitySeconds' AND r.Value ~ '^[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'MongoDatabase' THEN r.Value END),
        max(CASE WHEN r.Name = 'MongoCollection' THEN r.Value END),
        max(CASE WHEN r.Name = 'MongoWriteConcern' THEN r.Value END),
        max(CASE WHEN r.Name = 'MongoTimeoutMs' AND r.Value ~ '^[0-9]{1,9}$' THEN r.Value::integer END)
    INTO
        p_MaxRows, p_MessageSize, p_ClaimBatchSize, p_VisibilityTimeoutSeconds, p_TimeLimitSeconds,
        p_MaxAttempts, p_Concurrency, p_QueueVisibilitySeconds, p_MongoDatabase, p_MongoCollection,
        p_MongoWriteConcern, p_MongoTimeoutMs
    FROM resolved AS r
    WHERE r.pick = 1;

    ----------------------------------------------------------------------------
    -- Check values
    ----------------------------------------------------------------------------
    IF p_MaxRows IS NULL OR p_MaxRows NOT BETWEEN 1 AND 10000000 THEN
        v_Errors := v_Errors || 'Setting MaxRows (Ops.Setting, job aim_import) must be a whole number from 1 to 10000000. ';
    END IF;
    IF p_MessageSize IS NULL OR p_MessageSize NOT BETWEEN 1 AND 4999 THEN
        v_Errors := v_Errors || 'Setting MessageSize (Ops.Setting, job aim_import) must be 1 to 4999 ids (a message''s rows are marked in one statement). ';
    END IF;
    IF p_ClaimBatchSize IS NULL OR p_ClaimBatchSize NOT BETWEEN 1 AND 4999 THEN
        v_Errors := v_Errors || 'Setting ClaimBatchSize (Ops.Setting, job aim_import) must be a whole number of rows from 1 to 4999 (lock escalation starts at 5000). ';
    END IF;
    IF p_VisibilityTimeoutSeconds IS NULL OR p_VisibilityTimeoutSeconds NOT BETWEEN 1 AND 604800 THEN
        v_Errors := v_Errors || 'Setting VisibilityTimeoutSeconds (Ops.Setting, job aim_import) must be a whole number of seconds from 1 to 604800. ';
    END IF;
    IF p_TimeLimitSeconds IS NULL OR p_TimeLimitSeconds NOT BETWEEN 1 AND 86400 THEN
        v_Errors := v_Errors || 'Setting TimeLimitSeconds (Ops.Setting, job aim_import or *) must be a whole number of seconds from 1 to 86400. ';
    END IF;
    IF p_MaxAttempts IS NULL OR p_MaxAttempts NOT BETWEEN 1 AND 1000 THEN
        v_Errors := v_Errors || 'Setting MaxAttempts (Ops.Setting, job aim_consume) must be a whole number from 1 to 1000. ';
    END IF;
    IF p_Concurrency IS NULL OR p_Concurrency NOT BETWEEN 1 AND 64 THEN
        v_Errors := v_Errors || 'Setting Concurrency (Ops.Setting, job aim_consume) must be a whole number from 1 to 64. ';
    END IF;
    IF p_QueueVisibilitySeconds IS NULL OR p_QueueVisibilitySeconds NOT BETWEEN 1 AND 86400 THEN
        v_Errors := v_Errors || 'Setting QueueVisibilitySeconds (Ops.Setting, job aim_consume) must be a whole number of seconds from 1 to 86400. ';
    END IF;
    IF p_MongoDatabase IS NULL OR p_MongoDatabase !~ '^[A-Za-z0-9_-]{1,63}$' THEN
        v_Errors := v_Errors || 'Setting MongoDatabase (Ops.Setting, job aim_consume) must be 1 to 63 letters, digits, _ or -. ';
    END IF;
    IF p_MongoCollection IS NULL OR p_MongoCollection !~ '^[A-Za-z0-9_.-]{1,100}$' THEN
        v_Errors := v_Errors || 'Setting MongoCollection (Ops.Setting, job aim_consume) must be 1 to 100 letters, digits, _, . or -. ';
    END IF;
    IF p_MongoWriteConcern IS NULL OR p_MongoWriteConcern !~ '^([1-9]|majority)$' THEN
        v_Errors := v_Errors || 'Setting MongoWriteConcern (Ops.Setting, job aim_consume) must be 1 to 9 or majority. ';
    END IF;
    IF p_MongoTimeoutMs IS NULL OR p_MongoTimeoutMs NOT BETWEEN 100 AND 600000 THEN
        v_Errors := v_Errors || 'Setting MongoTimeoutMs (Ops.Setting, job aim_consume) must be a whole number of milliseconds from 100 to 600000. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;
END;
$$;
