-- Job.queue_ack, version 1.
-- Acknowledges a message received with Job.queue_receive: it leaves the queue.
-- Only the current receipt counts: when the visibility timeout ran out and
-- another consumer received the message since, p_Acked is false and the
-- message stays with that consumer (processing is idempotent, so nothing is
-- lost and nothing is done twice in effect).
CREATE PROCEDURE Job.queue_ack(
    p_MessageId bigint,
    p_ReceiptToken uuid,
    INOUT p_Acked boolean DEFAULT NULL
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

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    DELETE FROM Ops.QueueMessage
    WHERE MessageId = p_MessageId AND ReceiptToken = p_ReceiptToken;
    p_Acked := FOUND;
END;
$$;
