-- Monitor.aim_counts, version 1.
-- The AIM pipeline for flp status (docs/aim-document.md), readable by the
-- operator role: FLP_AIM rows pending (status 0), queued (1) and delivered (2,
-- still in the hot table until the nightly archive), queued rows past the
-- visibility timeout (due to be published again), the oldest pending row's
-- creation time, and the database queue's dead letters for flp.aim (with
-- RabbitMQ the dead letters are RabbitMQ's: flp aim status reads them there).
-- The counts read IX_FLP_AIM_Undelivered and IX_FLP_AIM_Delivered. The oldest
-- pending row is the first pending one by Id (Ids grow as rows are created): an
-- ordered scan of IX_FLP_AIM_Undelivered and one heap fetch of its CreatedUtc,
-- not a fetch per pending row (CreatedUtc is not in the index). NowUtc is the
-- database's time.
-- Twin difference: a function RETURNS TABLE here, a procedure returning one result set on SQL Server.
CREATE FUNCTION Monitor.aim_counts()
RETURNS TABLE (
    Pending bigint,
    Queued bigint,
    Overdue bigint,
    Delivered bigint,
    OldestPendingUtc timestamp,
    DeadLetters bigint,
    NowUtc timestamp
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_NowUtc timestamp(3) := (clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3);
    v_TimeoutText varchar(400);
    v_TimeoutSeconds integer;
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: none (a monitoring read at READ COMMITTED).
    -- Check parameters: none (it has none). The one setting read falls back to
    -- its shipped default (7200 seconds) when malformed, for a status must answer.
    ----------------------------------------------------------------------------
    SELECT s.Value INTO v_TimeoutText
    FROM Ops.Setting AS s
    WHERE s.JobName = 'aim_import' AND s.Name = 'VisibilityTimeoutSeconds';
    v_TimeoutSeconds := CASE WHEN v_TimeoutText ~ '^[0-9]{1,6}$' THEN v_TimeoutText::integer ELSE 7200 END;

    ----------------------------------------------------------------------------
    -- Read: one row of counts
    ----------------------------------------------------------------------------
    RETURN QUERY
    SELECT
        (SELECT count(*) FROM PLSP.FLP_AIM AS a WHERE a.Status IN (0, 1) AND a.Status = 0),
        (SELECT count(*) FROM PLSP.FLP_AIM AS a WHERE a.Status IN (0, 1) AND a.Status = 1),
        (
            SELECT count(*) FROM PLSP.FLP_AIM AS a
            WHERE a.Status IN (0, 1) AND a.Status = 1
                AND a.QueuedUtc < v_NowUtc - make_interval(secs => v_TimeoutSeconds)
        ),
        (SELECT count(*) FROM PLSP.FLP_AIM AS a WHERE a.Status = 2),
        (
            SELECT a.CreatedUtc::timestamp FROM PLSP.FLP_AIM AS a
            WHERE a.Status IN (0, 1) AND a.Status = 0
            ORDER BY a.Id
            LIMIT 1
        ),
        (SELECT count(*) FROM Ops.QueueDeadLetter AS d WHERE d.QueueName = 'flp.aim'),
        v_NowUtc::timestamp;
END;
$$;
