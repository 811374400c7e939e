-- Monitor.heartbeats, version 1.
-- Every orchestrator process that has beaten (Ops.Heartbeat), the most recent
-- first, with the database's time (NowUtc) for their ages: an orchestrator
-- beats every 30 seconds. flp status reads it.
-- Twin difference: a procedure returning one result set here, a function RETURNS TABLE on PostgreSQL.
CREATE OR ALTER PROCEDURE Monitor.heartbeats
AS
BEGIN
    SET NOCOUNT ON;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;

    DECLARE @NowUtc datetime2(3) = SYSUTCDATETIME();

    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    -- Check parameters: none (it has none).
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Read: the heartbeats, most recent first
    ----------------------------------------------------------------------------
    SELECT
        h.Component,
        h.Host,
        h.ProcessId,
        h.StartedUtc,
        h.BeatUtc,
        @NowUtc AS NowUtc
    FROM Ops.Heartbeat AS h
    ORDER BY h.BeatUtc DESC, h.Component ASC;
END;
