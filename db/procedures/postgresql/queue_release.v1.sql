-- Job.queue_release, version 1.
-- Changes when a received message becomes visible again, for the holder of its
-- current receipt: 0 seconds gives it back at once (a negative acknowledgement:
-- the next receive delivers it again, its delivery count one higher); more
-- keeps it hidden that much longer from now (a consumer still working on it,
-- for instance waiting for MongoDB to come back). p_Released is false when the
-- receipt is no longer current.
CREATE PROCEDURE Job.queue_release(
    p_MessageId bigint,
    p_ReceiptToken uuid,
    p_VisibleInSeconds integer DEFAULT 0,
    INOUT p_Released boolean DEFAULT NULL
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
    IF p_MessageId IS NULL OR p_MessageId <= 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_MessageId is not supported: give the id Job.queue_receive returned. ';
    END IF;
    IF p_ReceiptToken IS NULL THEN
        v_Errors := v_Errors || 'The value for the parameter p_ReceiptToken is not supported: give the receipt Job.queue_receive returned. ';
    END IF;
    IF p_VisibleInSeconds IS NULL OR p_VisibleInSeconds NOT BETWEEN 0 AND 86400 THEN
        v_Errors := v_Errors || 'The value for the parameter p_VisibleInSeconds is not supported: give 0 (now) to 86400 seconds. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    UPDATE Ops.QueueMessage
    SET VisibleAfterUtc = (clock_timestamp() AT TIME ZONE 'UTC') + make_interval(secs => p_VisibleInSeconds)
    WHERE MessageId = p_MessageId AND ReceiptToken = p_ReceiptToken;
    p_Released := FOUND;
END;
$$;
