-- Job.queue_dead_letter, version 1.
-- Puts a message aside with the reason it will not be processed
-- (Ops.QueueDeadLetter), so it never blocks the rest of the queue. Either a
-- received message (p_MessageId with its current receipt: it leaves the queue
-- in the same statement) or a new body (p_Body, for instance the ids of a
-- message that no longer exist). The reason must never hold a CPR number: the
-- callers mask it. p_Moved is false when the receipt is no longer current.
CREATE PROCEDURE Job.queue_dead_letter(
    p_QueueName varchar(100),
    p_Reason varchar(1000),
    p_MessageId bigint DEFAULT NULL,
    p_ReceiptToken uuid DEFAULT NULL,
    p_Body text DEFAULT NULL,
    INOUT p_Moved boolean DEFAULT NULL
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
    IF p_QueueName IS NULL OR p_QueueName !~ '^[a-z0-9_.]{1,100}$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_QueueName is not supported: give the queue''s name in lower-case letters, digits, _ and dot. ';
    END IF;
    IF p_Reason IS NULL OR btrim(p_Reason) = '' THEN
        v_Errors := v_Errors || 'The value for the parameter p_Reason is not supported: say why the message is put aside. ';
    END IF;
    IF p_MessageId <= 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_MessageId is not supported: give the id Job.queue_receive returned. ';
    END IF;
    IF p_MessageId IS NOT NULL AND p_ReceiptToken IS NULL THEN
        v_Errors := v_Errors || 'The value for the parameter p_ReceiptToken is not supported: give the receipt Job.queue_receive returned with p_MessageId. ';
    END IF;
    IF (p_MessageId IS NULL) = (p_Body IS NULL) OR p_Body = '' THEN
        v_Errors := v_Errors || 'The value for the parameter p_Body is not supported: give either p_MessageId (a received message) or a non-empty p_Body (a new one). ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work: move the received message, or add the new body
    ----------------------------------------------------------------------------
    IF p_MessageId IS NOT NULL THEN
        WITH moved AS (
            DELETE FROM Ops.QueueMessage AS m
            WHERE m.MessageId = p_MessageId AND m.ReceiptToken = p_ReceiptToken AND m.QueueName = p_QueueName
            RETURNING m.MessageId, m.Body, m.EnqueuedUtc, m.DeliveryCount
        )

        INSERT INTO Ops.QueueDeadLetter (QueueName, MessageId, Body, EnqueuedUtc, DeliveryCount, Reason)
        SELECT p_QueueName, d.MessageId, d.Body, d.EnqueuedUtc, d.DeliveryCount, p_Reason
        FROM moved AS d;
    ELSE
        INSERT INTO Ops.QueueDeadLetter (QueueName, MessageId, Body, EnqueuedUtc, DeliveryCount, Reason)
        VALUES (p_QueueName, NULL, p_Body, clock_timestamp() AT TIME ZONE 'UTC', 0, p_Reason);
    END IF;
    p_Moved := FOUND;
END;
$$;
