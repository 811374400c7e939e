-- Job.queue_status, version 1.
-- The counts of one database queue for an operator (flp aim status): messages
-- ready to be received, received and not yet acknowledged (in flight), dead
-- letters, and the age of the oldest ready message in seconds (NULL when none).
CREATE PROCEDURE Job.queue_status(
    p_QueueName varchar(100),
    INOUT p_Ready bigint DEFAULT NULL,
    INOUT p_InFlight bigint DEFAULT NULL,
    INOUT p_Dead bigint DEFAULT NULL,
    INOUT p_OldestReadySeconds integer DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_NowUtc timestamp(3) := clock_timestamp() AT TIME ZONE 'UTC';
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_QueueName IS NULL OR p_QueueName !~ '^[a-z0-9_.]{1,100}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001',
            MESSAGE = 'The value for the parameter p_QueueName is not supported: give the queue''s name in lower-case letters, digits, _ and dot. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work (reads only)
    ----------------------------------------------------------------------------
    SELECT
        count(*) FILTER (WHERE m.VisibleAfterUtc <= v_NowUtc),
        count(*) FILTER (WHERE m.VisibleAfterUtc > v_NowUtc),
        extract(EPOCH FROM v_NowUtc - min(m.EnqueuedUtc) FILTER (WHERE m.VisibleAfterUtc <= v_NowUtc))::integer
    INTO p_Ready, p_InFlight, p_OldestReadySeconds
    FROM Ops.QueueMessage AS m
    WHERE m.QueueName = p_QueueName;

    SELECT count(*) INTO p_Dead
    FROM Ops.QueueDeadLetter AS d
    WHERE d.QueueName = p_QueueName;
END;
$$;
