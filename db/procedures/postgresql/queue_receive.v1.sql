-- Job.queue_receive, version 1.
-- Receives the next visible message of a database queue for one consumer: the
-- message becomes invisible to every other consumer for p_VisibilitySeconds,
-- its delivery count goes up by one and it gets a new receipt. Unless the
-- holder acknowledges (Job.queue_ack), releases (Job.queue_release) or
-- dead-letters it (Job.queue_dead_letter) in that time, it is delivered again,
-- so a consumer that dies loses nothing. Competing consumers skip the rows
-- another one is claiming (FOR UPDATE SKIP LOCKED): never the same message twice
-- at once, and nobody waits. No message: every output is NULL.
CREATE PROCEDURE Job.queue_receive(
    p_QueueName varchar(100),
    p_VisibilitySeconds integer,
    INOUT p_MessageId bigint DEFAULT NULL,
    INOUT p_Body text DEFAULT NULL,
    INOUT p_DeliveryCount integer DEFAULT NULL,
    INOUT p_ReceiptToken uuid DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_NowUtc timestamp(3) := clock_timestamp() AT TIME ZONE 'UTC';
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_QueueName IS NULL OR p_QueueName !~ '^[a-z0-9_.]{1,100}$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_QueueName is not supported: give the queue''s name in lower-case letters, digits, _ and dot. ';
    END IF;
    IF p_VisibilitySeconds IS NULL OR p_VisibilitySeconds NOT BETWEEN 1 AND 86400 THEN
        v_Errors := v_Errors || 'The value for the parameter p_VisibilitySeconds is not supported: give 1 to 86400 seconds. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work: claim the oldest visible message (nothing is logged: one
    -- call per message)
    ----------------------------------------------------------------------------
    UPDATE Ops.QueueMessage AS m
    SET VisibleAfterUtc = v_NowUtc + make_interval(secs => p_VisibilitySeconds),
        DeliveryCount = m.DeliveryCount + 1,
        ReceiptToken = gen_random_uuid()
    WHERE m.MessageId = (
        SELECT n.MessageId
        FROM Ops.QueueMessage AS n
        WHERE n.QueueName = p_QueueName AND n.VisibleAfterUtc <= v_NowUtc
        ORDER BY n.VisibleAfterUtc, n.MessageId
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING m.MessageId, m.Body, m.DeliveryCount, m.ReceiptToken
    INTO p_MessageId, p_Body, p_DeliveryCount, p_ReceiptToken;
END;
$$;
