-- Job.aim_status, version 1.
-- The AIM pipeline's rows for an operator (flp aim status, flp status):
-- FLP_AIM rows pending, queued and delivered (still in the hot table), rows
-- queued longer than the VisibilityTimeoutSeconds setting (due to be
-- published again), and the age of the oldest pending row in seconds (NULL
-- when none is pending). The dead letters are the queue's (Job.queue_status).
CREATE PROCEDURE Job.aim_status(
    INOUT p_Pending bigint DEFAULT NULL,
    INOUT p_Queued bigint DEFAULT NULL,
    INOUT p_Delivered bigint DEFAULT NULL,
    INOUT p_Overdue bigint DEFAULT NULL,
    INOUT p_OldestPendingSeconds integer DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_NowUtc timestamp(3) := clock_timestamp() AT TIME ZONE 'UTC';
    v_TimeoutText varchar(400);
    v_TimeoutSeconds integer;
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters: every parameter is an output; the one setting read
    -- falls back to its shipped default (7200) when malformed, for a status
    -- must answer
    ----------------------------------------------------------------------------
    SELECT s.Value INTO v_TimeoutText
    FROM Ops.Setting AS s
    WHERE s.JobName = 'aim_import' AND s.Name = 'VisibilityTimeoutSeconds';
    v_TimeoutSeconds := CASE WHEN v_TimeoutText ~ '^[0-9]{1,6}$' THEN v_TimeoutText::integer ELSE 7200 END;

    ----------------------------------------------------------------------------
    -- Do the work (reads only)
    ----------------------------------------------------------------------------
    SELECT
        count(*) FILTER (WHERE a.Status = 0),
        count(*) FILTER (WHERE a.Status = 1),
        count(*) FILTER (WHERE a.Status = 1 AND a.QueuedUtc < v_NowUtc - make_interval(secs => v_TimeoutSeconds)),
        extract(EPOCH FROM v_NowUtc - min(a.CreatedUtc) FILTER (WHERE a.Status = 0))::integer
    INTO p_Pending, p_Queued, p_Overdue, p_OldestPendingSeconds
    FROM PLSP.FLP_AIM AS a
    WHERE a.Status IN (0, 1);

    SELECT count(*) INTO p_Delivered
    FROM PLSP.FLP_AIM AS a
    WHERE a.Status = 2;
END;
$$;
