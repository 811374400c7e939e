-- Job.health_check, version 1.
-- Tells a batched job whether the database is busy: more other active client
-- sessions than p_MaxActive, or more sessions waiting for a lock than
-- p_MaxLockWaits. Runs as its owner, who must see every session's state
-- (superuser or member of pg_read_all_stats): otherwise other sessions' state
-- reads as NULL and the gate could never close, so it refuses to answer.
CREATE PROCEDURE Job.health_check(
    p_MaxActive integer,
    p_MaxLockWaits integer,
    INOUT p_Busy boolean DEFAULT NULL,
    INOUT p_Reason varchar(400) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_Active integer;
    v_LockWaits integer;
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF NOT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') THEN
        v_Errors := v_Errors || 'Job.health_check needs its owner in pg_read_all_stats (or a superuser owner), or the health gate could never close. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Check parameters (a NULL limit would silently open the gate)
    ----------------------------------------------------------------------------
    IF p_MaxActive IS NULL OR p_MaxActive < 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_MaxActive is not supported: give 0 or more sessions. ';
    END IF;
    IF p_MaxLockWaits IS NULL OR p_MaxLockWaits < 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_MaxLockWaits is not supported: give 0 or more sessions. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Look
    ----------------------------------------------------------------------------
    -- pg_stat_activity is a snapshot per transaction; take a fresh one.
    PERFORM pg_stat_clear_snapshot();

    SELECT
        count(CASE WHEN a.state = 'active' AND a.pid <> pg_backend_pid() THEN 1 END),
        count(CASE WHEN a.wait_event_type = 'Lock' THEN 1 END)
    INTO v_Active, v_LockWaits
    FROM pg_stat_activity AS a
    WHERE a.backend_type = 'client backend';

    p_Busy := v_Active > p_MaxActive OR v_LockWaits > p_MaxLockWaits;
    p_Reason := concat(
        'active sessions ', v_Active, ' (limit ', p_MaxActive, '), ',
        'lock waits ', v_LockWaits, ' (limit ', p_MaxLockWaits, ')'
    );
END;
$$;
