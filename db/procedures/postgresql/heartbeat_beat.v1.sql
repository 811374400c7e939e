-- Job.heartbeat_beat, version 1.
-- Records that an orchestrator process is alive: one row per component in
-- Ops.Heartbeat, its BeatUtc moved forward on every call. Operators (and the
-- database's fallback scheduler) read it to see whether an orchestrator runs.
CREATE PROCEDURE Job.heartbeat_beat(
    p_Component varchar(200),
    p_Host varchar(128),
    p_ProcessId integer
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
    IF p_Component IS NULL OR btrim(p_Component) = '' THEN
        v_Errors := v_Errors || 'The value for the parameter p_Component is not supported: name the process. ';
    END IF;
    IF p_Host IS NULL OR btrim(p_Host) = '' THEN
        v_Errors := v_Errors || 'The value for the parameter p_Host is not supported: give the host name. ';
    END IF;
    IF p_ProcessId IS NULL OR p_ProcessId <= 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_ProcessId is not supported: give the process id. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Upsert
    ----------------------------------------------------------------------------
    INSERT INTO Ops.Heartbeat (Component, Host, ProcessId, StartedUtc, BeatUtc)
    VALUES (
        p_Component, p_Host, p_ProcessId,
        clock_timestamp() AT TIME ZONE 'UTC', clock_timestamp() AT TIME ZONE 'UTC'
    )
    ON CONFLICT (Component) DO UPDATE
    SET Host = excluded.Host,
        ProcessId = excluded.ProcessId,
        BeatUtc = excluded.BeatUtc;
END;
$$;
