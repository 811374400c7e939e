-- Job.heartbeat_beat, version 2.
-- Records that an orchestrator process is alive: one row per component in
-- Ops.Heartbeat, its BeatUtc moved forward on every call. Operators (and the
-- database's fallback scheduler) read it to see whether an orchestrator runs.
-- Version 2: an over-long component or host is refused naming the parameter
-- on both engines (each parameter is one character wider than its column, so
-- T-SQL no longer cuts it silently and PostgreSQL no longer fails at the write).
CREATE PROCEDURE Job.heartbeat_beat(
    p_Component varchar(201),
    p_Host varchar(129),
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
    IF p_Component IS NULL OR btrim(p_Component) = '' OR length(p_Component) > 200 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Component is not supported: name the process, at most 200 characters. ';
    END IF;
    IF p_Host IS NULL OR btrim(p_Host) = '' OR length(p_Host) > 128 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Host is not supported: give the host name, at most 128 characters. ';
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
