-- Monitor.heartbeats, version 1.
-- Every orchestrator process that has beaten (Ops.Heartbeat), the most recent
-- first, with the database's time (NowUtc) for their ages: an orchestrator
-- beats every 30 seconds. flp status reads it.
-- Twin difference: a function RETURNS TABLE here, a procedure returning one result set on SQL Server.
CREATE FUNCTION Monitor.heartbeats()
RETURNS TABLE (
    Component varchar,
    Host varchar,
    ProcessId integer,
    StartedUtc timestamp,
    BeatUtc timestamp,
    NowUtc timestamp
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_NowUtc timestamp(3) := (clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3);
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    -- Check parameters: none (it has none).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Read: the heartbeats, most recent first
    ----------------------------------------------------------------------------
    RETURN QUERY
    SELECT
        h.Component,
        h.Host,
        h.ProcessId,
        h.StartedUtc::timestamp,
        h.BeatUtc::timestamp,
        v_NowUtc::timestamp
    FROM Ops.Heartbeat AS h
    ORDER BY h.BeatUtc DESC, h.Component ASC;
END;
$$;
