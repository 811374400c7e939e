-- Job.queue_publish, version 1.
-- Publishes a batch of messages on the database queue (Ops.QueueMessage, the
-- embedded default beside RabbitMQ): one row per body, visible at once, all
-- in one statement. The batch is confirmed when the call returns (it commits
-- with the caller's autocommit): either every body is on the queue or none is.
-- p_Bodies is a JSON array of strings; p_Count returns how many were queued.
CREATE PROCEDURE Job.queue_publish(
    p_QueueName varchar(100),
    p_Bodies text,
    INOUT p_Count integer DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_Bodies jsonb;
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_QueueName IS NULL OR p_QueueName !~ '^[a-z0-9_.]{1,100}$' THEN
        v_Errors := v_Errors || 'The value for the parameter p_QueueName is not supported: give the queue''s name in lower-case letters, digits, _ and dot. ';
    END IF;
    IF p_Bodies ~ '^\s*\[' THEN
        BEGIN
            v_Bodies := p_Bodies::jsonb;
        EXCEPTION WHEN invalid_text_representation THEN
            v_Bodies := NULL;  -- not JSON: reported below
        END;
    END IF;
    IF v_Bodies IS NULL THEN
        v_Errors := v_Errors || 'The value for the parameter p_Bodies is not supported: give a JSON array of message bodies (strings). ';
    ELSE
        IF jsonb_array_length(v_Bodies) NOT BETWEEN 1 AND 10000 THEN
            v_Errors := v_Errors || 'The value for the parameter p_Bodies is not supported: give 1 to 10000 bodies. ';
        ELSIF EXISTS (
            SELECT 1 FROM jsonb_array_elements(v_Bodies) AS b(Value)
            WHERE jsonb_typeof(b.Value) <> 'string' OR b.Value #>> '{}' = ''
        ) THEN
            v_Errors := v_Errors || 'The value for the parameter p_Bodies is not supported: every body must be a non-empty string. ';
        END IF;
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work: every body in one statement, in array order
    ----------------------------------------------------------------------------
    INSERT INTO Ops.QueueMessage (QueueName, Body)
    SELECT p_QueueName, b.Value
    FROM jsonb_array_elements_text(v_Bodies) WITH ORDINALITY AS b(Value, Position)
    ORDER BY b.Position;
    GET DIAGNOSTICS p_Count = ROW_COUNT;
END;
$$;
