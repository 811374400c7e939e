-- Job.queue_ack, version 1.
-- Acknowledges a message received with Job.queue_receive: it leaves the queue.
-- Only the current receipt counts: when the visibility timeout ran out and
-- another consumer received the message since, @Acked is 0 and the message
-- stays with that consumer (processing is idempotent, so nothing is lost and
-- nothing is done twice in effect).
CREATE OR ALTER PROCEDURE Job.queue_ack
    @MessageId bigint,
    @ReceiptToken uniqueidentifier,
    @Acked bit = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @MessageId IS NULL OR @MessageId <= 0
        SET @Errors += N'The value for the parameter @MessageId is not supported: give the id Job.queue_receive returned. ';
    IF @ReceiptToken IS NULL
        SET @Errors += N'The value for the parameter @ReceiptToken is not supported: give the receipt Job.queue_receive returned. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    DELETE FROM Ops.QueueMessage WITH (ROWLOCK)
    WHERE MessageId = @MessageId AND ReceiptToken = @ReceiptToken;
    SET @Acked = CASE WHEN @@ROWCOUNT = 1 THEN 1 ELSE 0 END;
END;
