-- Job.batch_settings_get, version 2.
-- Reads the settings a batched job obeys from Ops.Setting: the job's own row
-- where it has one, else the '*' row. Called before every batch, so a DBA can
-- slow a running job down with an UPDATE. A missing or malformed setting stops
-- the job with a message naming it.
-- Version 2 adds LockTimeoutMs, DeadlockRetries, TimeEfficiencyMin and
-- BatchMaxMs (Job.run_batched's header says what they do) and caps
-- BatchSizeMax at 4,000.
--
-- Parsing is strict and the same on both engines: a whole number is an
-- optional minus and 1 to 9 digits, a decimal adds an optional point and 1 to
-- 3 digits; nothing else (no spaces, no plus sign, no '.5', no exponent).
-- SQL Server's TRY_CONVERT would take ' 200', '+5' and '.5', so the T-SQL twin
-- checks the same pattern before it converts.
--
-- BatchSizeMax is at most 4,000: SQL Server tries lock escalation when one
-- statement holds 5,000 locks on one index or table (and again every 1,250
-- locks after), and a batch touches each row in the table and in every index
-- it changes; 4,000 keeps a batch clear of the threshold with room for the
-- page and key locks around the rows. The cap is the same on PostgreSQL (no
-- escalation there) so the two engines run the same batches.
CREATE PROCEDURE Job.batch_settings_get(
    p_JobName varchar(100),
    INOUT p_BatchTargetMs integer DEFAULT NULL,
    INOUT p_BatchSizeStart integer DEFAULT NULL,
    INOUT p_BatchSizeMin integer DEFAULT NULL,
    INOUT p_BatchSizeMax integer DEFAULT NULL,
    INOUT p_SleepFactor numeric(9, 3) DEFAULT NULL,
    INOUT p_TimeLimitSeconds integer DEFAULT NULL,
    INOUT p_HealthMaxActive integer DEFAULT NULL,
    INOUT p_HealthMaxLockWaits integer DEFAULT NULL,
    INOUT p_HealthHoldSeconds integer DEFAULT NULL,
    INOUT p_HealthMaxPauseSeconds integer DEFAULT NULL,
    INOUT p_LockTimeoutMs integer DEFAULT NULL,
    INOUT p_DeadlockRetries integer DEFAULT NULL,
    INOUT p_TimeEfficiencyMin numeric(9, 3) DEFAULT NULL,
    INOUT p_BatchMaxMs integer DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_JobName IS NULL OR p_JobName = '' OR length(p_JobName) > 100 THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001',
            MESSAGE = 'The value for the parameter p_JobName is not supported: give the job''s name, at most 100 characters. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Read: the job's own value wins over '*'
    ----------------------------------------------------------------------------
    WITH resolved AS (
        SELECT
            s.Name,
            s.Value,
            row_number() OVER (PARTITION BY s.Name ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END) AS pick
        FROM Ops.Setting AS s
        WHERE s.JobName IN (p_JobName, '*')
    )

    SELECT
        max(CASE WHEN r.Name = 'BatchTargetMs' AND r.Value ~ '^-?[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'BatchSizeStart' AND r.Value ~ '^-?[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'BatchSizeMin' AND r.Value ~ '^-?[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'BatchSizeMax' AND r.Value ~ '^-?[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'SleepFactor' AND r.Value ~ '^-?[0-9]{1,6}(\.[0-9]{1,3})?$' THEN r.Value::numeric(9, 3) END),
        max(CASE WHEN r.Name = 'TimeLimitSeconds' AND r.Value ~ '^-?[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'HealthMaxActive' AND r.Value ~ '^-?[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'HealthMaxLockWaits' AND r.Value ~ '^-?[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'HealthHoldSeconds' AND r.Value ~ '^-?[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'HealthMaxPauseSeconds' AND r.Value ~ '^-?[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'LockTimeoutMs' AND r.Value ~ '^-?[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'DeadlockRetries' AND r.Value ~ '^-?[0-9]{1,9}$' THEN r.Value::integer END),
        max(CASE WHEN r.Name = 'TimeEfficiencyMin' AND r.Value ~ '^-?[0-9]{1,6}(\.[0-9]{1,3})?$' THEN r.Value::numeric(9, 3) END),
        max(CASE WHEN r.Name = 'BatchMaxMs' AND r.Value ~ '^-?[0-9]{1,9}$' THEN r.Value::integer END)
    INTO
        p_BatchTargetMs, p_BatchSizeStart, p_BatchSizeMin, p_BatchSizeMax, p_SleepFactor,
        p_TimeLimitSeconds, p_HealthMaxActive, p_HealthMaxLockWaits, p_HealthHoldSeconds, p_HealthMaxPauseSeconds,
        p_LockTimeoutMs, p_DeadlockRetries, p_TimeEfficiencyMin, p_BatchMaxMs
    FROM resolved AS r
    WHERE r.pick = 1;

    ----------------------------------------------------------------------------
    -- Check values
    ----------------------------------------------------------------------------
    -- Upper limits keep the engine's millisecond arithmetic inside integer.
    IF p_BatchTargetMs IS NULL OR p_BatchTargetMs <= 0 OR p_BatchTargetMs > 60000 THEN
        v_Errors := v_Errors || 'Setting BatchTargetMs (Ops.Setting) must be a whole number of milliseconds from 1 to 60000. ';
    END IF;
    IF p_BatchSizeMin IS NULL OR p_BatchSizeMin <= 0 THEN
        v_Errors := v_Errors || 'Setting BatchSizeMin (Ops.Setting) is missing or not a positive whole number. ';
    END IF;
    IF p_BatchSizeMax IS NULL OR p_BatchSizeMax < p_BatchSizeMin OR p_BatchSizeMax > 4000 THEN
        v_Errors := v_Errors || 'Setting BatchSizeMax (Ops.Setting) must be a whole number from BatchSizeMin to 4000 (clear of lock escalation at 5000). ';
    END IF;
    IF p_BatchSizeStart IS NULL OR p_BatchSizeStart <= 0 THEN
        v_Errors := v_Errors || 'Setting BatchSizeStart (Ops.Setting) is missing or not a positive whole number. ';
    END IF;
    IF p_SleepFactor IS NULL OR p_SleepFactor < 0 OR p_SleepFactor > 10 THEN
        v_Errors := v_Errors || 'Setting SleepFactor (Ops.Setting) must be a number from 0 to 10. ';
    END IF;
    IF p_TimeLimitSeconds IS NULL OR p_TimeLimitSeconds <= 0 OR p_TimeLimitSeconds > 604800 THEN
        v_Errors := v_Errors || 'Setting TimeLimitSeconds (Ops.Setting) must be a whole number of seconds from 1 to 604800 (7 days). ';
    END IF;
    IF p_HealthMaxActive IS NULL OR p_HealthMaxActive < 0 THEN
        v_Errors := v_Errors || 'Setting HealthMaxActive (Ops.Setting) is missing or negative. ';
    END IF;
    IF p_HealthMaxLockWaits IS NULL OR p_HealthMaxLockWaits < 0 THEN
        v_Errors := v_Errors || 'Setting HealthMaxLockWaits (Ops.Setting) is missing or negative. ';
    END IF;
    IF p_HealthHoldSeconds IS NULL OR p_HealthHoldSeconds < 0 OR p_HealthHoldSeconds > 86400 THEN
        v_Errors := v_Errors || 'Setting HealthHoldSeconds (Ops.Setting) must be a whole number of seconds from 0 to 86400. ';
    END IF;
    IF p_HealthMaxPauseSeconds IS NULL OR p_HealthMaxPauseSeconds <= 0 OR p_HealthMaxPauseSeconds > 86400 THEN
        v_Errors := v_Errors || 'Setting HealthMaxPauseSeconds (Ops.Setting) must be a whole number of seconds from 1 to 86400. ';
    END IF;
    -- At least 1: 0 would mean "no wait" on SQL Server but "wait forever" on PostgreSQL.
    IF p_LockTimeoutMs IS NULL OR p_LockTimeoutMs < 1 OR p_LockTimeoutMs > 60000 THEN
        v_Errors := v_Errors || 'Setting LockTimeoutMs (Ops.Setting) must be a whole number of milliseconds from 1 to 60000. ';
    END IF;
    IF p_DeadlockRetries IS NULL OR p_DeadlockRetries < 0 OR p_DeadlockRetries > 100 THEN
        v_Errors := v_Errors || 'Setting DeadlockRetries (Ops.Setting) must be a whole number from 0 to 100. ';
    END IF;
    IF p_TimeEfficiencyMin IS NULL OR p_TimeEfficiencyMin < 0 OR p_TimeEfficiencyMin > 0.95 THEN
        v_Errors := v_Errors || 'Setting TimeEfficiencyMin (Ops.Setting) must be a number from 0 (off) to 0.95. ';
    END IF;
    -- BatchMaxMs bounds how far time efficiency raises the target, not BatchTargetMs itself.
    IF p_BatchMaxMs IS NULL OR p_BatchMaxMs < 1 OR p_BatchMaxMs > 60000 THEN
        v_Errors := v_Errors || 'Setting BatchMaxMs (Ops.Setting) must be a whole number of milliseconds from 1 to 60000. ';
    END IF;

    -- BatchSizeStart is clamped, not refused: lowering BatchSizeMax to slow a
    -- running job down must not fail it.
    IF v_Errors = '' THEN
        p_BatchSizeStart := CASE
            WHEN p_BatchSizeStart < p_BatchSizeMin THEN p_BatchSizeMin
            WHEN p_BatchSizeStart > p_BatchSizeMax THEN p_BatchSizeMax
            ELSE p_BatchSizeStart
        END;
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL002', MESSAGE = 'Job ' || p_JobName || ': ' || v_Errors;
    END IF;
END;
$$;
