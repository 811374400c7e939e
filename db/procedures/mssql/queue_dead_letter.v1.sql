-- Job.queue_dead_letter, version 1.
-- Puts a message aside with the reason it will not be processed
-- (Ops.QueueDeadLetter), so it never blocks the rest of the queue. Either a
-- received message (@MessageId with its current receipt: it leaves the queue
-- in the same statement) or a new body (@Body, for instance the ids of a
-- message that no longer exist). The reason must never hold a CPR number: the
-- callers mask it. @Moved is 0 when the receipt is no longer current.
CREATE OR ALTER PROCEDURE Job.queue_dead_letter
    @QueueName varchar(100),
    @Reason nvarchar(1000),
    @MessageId bigint = NULL,
    @ReceiptToken uniqueidentifier = NULL,
    @Body nvarchar(MAX) = NULL,
    @Moved bit = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @QueueName IS NULL OR @QueueName = '' OR @QueueName COLLATE Latin1_General_BIN2 LIKE '%[^a-z0-9_.]%'
        SET @Errors += N'The value for the parameter @QueueName is not supported: give the queue''s name in lower-case letters, digits, _ and dot. ';
    IF @Reason IS NULL OR LTRIM(RTRIM(@Reason)) = N''
        SET @Errors += N'The value for the parameter @Reason is not supported: say why the message is put aside. ';
    IF @MessageId <= 0
        SET @Errors += N'The value for the parameter @MessageId is not supported: give the id Job.queue_receive returned. ';
    IF @MessageId IS NOT NULL AND @ReceiptToken IS NULL
        SET @Errors += N'The value for the parameter @ReceiptToken is not supported: give the receipt Job.queue_receive returned with @MessageId. ';
    IF (@MessageId IS NULL AND @Body IS NULL) OR (@MessageId IS NOT NULL AND @Body IS NOT NULL) OR @Body = N''
        SET @Errors += N'The value for the parameter @Body is not supported: give either @MessageId (a received message) or a non-empty @Body (a new one). ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work: move the received message, or add the new body
    ----------------------------------------------------------------------------
    IF @MessageId IS NOT NULL
    BEGIN
        DELETE FROM Ops.QueueMessage WITH (ROWLOCK)
        OUTPUT @QueueName, deleted.MessageId, deleted.Body, deleted.EnqueuedUtc, deleted.DeliveryCount, @Reason
        INTO Ops.QueueDeadLetter (QueueName, MessageId, Body, EnqueuedUtc, DeliveryCount, Reason)
        WHERE MessageId = @MessageId AND ReceiptToken = @ReceiptToken AND QueueName = @QueueName;
        SET @Moved = CASE WHEN @@ROWCOUNT = 1 THEN 1 ELSE 0 END;
    END;
    ELSE
    BEGIN
        INSERT INTO Ops.QueueDeadLetter (QueueName, MessageId, Body, EnqueuedUtc, DeliveryCount, Reason)
        VALUES (@QueueName, NULL, @Body, SYSUTCDATETIME(), 0, @Reason);
        SET @Moved = 1;
    END;
END;
