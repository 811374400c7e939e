-- Job.health_check, version 2.
-- Tells a batched job whether the FLP database is busy: more other active
-- client sessions in this database than p_MaxActive, or more sessions of this
-- database waiting for a heavyweight lock than p_MaxLockWaits. Sessions of
-- other databases on the same server are not this database's load and do not
-- count. Runs as its owner, who must see every session's state (superuser or
-- member of pg_read_all_stats): otherwise other sessions' state reads as NULL
-- and the gate could never close, so it refuses to answer.
--
-- PostgreSQL differences from the T-SQL twin, one line each:
--   * Left out as "not load": FLP's own job sessions sleeping between batches or in a pause (application_name 'flp-job:<job>', set by Job.run_batched, waiting in PgSleep); T-SQL leaves out WAITFOR, RECEIVE and diagnostic waits. A pg_sleep in any other session still counts, so a test can simulate load with it.
--   * A lock wait is wait_event_type 'Lock' (a heavyweight lock, which always has a blocker); T-SQL counts LCK_M_% waits with a positive blocking session id.
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
        count(CASE WHEN a.state = 'active' THEN 1 END),
        count(CASE WHEN a.wait_event_type = 'Lock' THEN 1 END)
    INTO v_Active, v_LockWaits
    FROM pg_stat_activity AS a
    WHERE a.backend_type = 'client backend'
        AND a.datname = current_database()
        AND a.pid <> pg_backend_pid()
        AND NOT (
            a.application_name LIKE 'flp-job:%'
            AND a.wait_event_type IS NOT DISTINCT FROM 'Timeout'
            AND a.wait_event IS NOT DISTINCT FROM 'PgSleep'
        );

    p_Busy := v_Active > p_MaxActive OR v_LockWaits > p_MaxLockWaits;
    p_Reason := concat(
        'active sessions ', v_Active, ' (limit ', p_MaxActive, '), ',
        'lock waits ', v_LockWaits, ' (limit ', p_MaxLockWaits, ')'
    );
END;
$$;
