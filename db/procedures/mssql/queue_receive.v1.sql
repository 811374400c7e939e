-- Job.queue_receive, version 1.
-- Receives the next visible message of a database queue for one consumer: the
-- message becomes invisible to every other consumer for @VisibilitySeconds,
-- its delivery count goes up by one and it gets a new receipt. Unless the
-- holder acknowledges (Job.queue_ack), releases (Job.queue_release) or
-- dead-letters it (Job.queue_dead_letter) in that time, it is delivered again,
-- so a consumer that dies loses nothing. Competing consumers skip the rows
-- another one is claiming (UPDLOCK, READPAST): never the same message twice at
-- once, and nobody waits. No message: every output is NULL.
CREATE OR ALTER PROCEDURE Job.queue_receive
    @QueueName varchar(100),
    @VisibilitySeconds int,
    @MessageId bigint = NULL OUTPUT,
    @Body nvarchar(MAX) = NULL OUTPUT,
    @DeliveryCount int = NULL OUTPUT,
    @ReceiptToken uniqueidentifier = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;  -- READPAST needs it (error 650 otherwise); reverts when the procedure returns

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @NowUtc datetime2(3) = SYSUTCDATETIME();
    DECLARE @Receipt uniqueidentifier = NEWID();
    DECLARE @Received TABLE (MessageId bigint NOT NULL, Body nvarchar(MAX) NOT NULL, DeliveryCount int NOT NULL);

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @QueueName IS NULL OR @QueueName = '' OR @QueueName COLLATE Latin1_General_BIN2 LIKE '%[^a-z0-9_.]%'
        SET @Errors += N'The value for the parameter @QueueName is not supported: give the queue''s name in lower-case letters, digits, _ and dot. ';
    IF @VisibilitySeconds IS NULL OR @VisibilitySeconds NOT BETWEEN 1 AND 86400
        SET @Errors += N'The value for the parameter @VisibilitySeconds is not supported: give 1 to 86400 seconds. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work: claim the oldest visible message (nothing is logged: one
    -- call per message)
    ----------------------------------------------------------------------------
    WITH NextMessage AS (
        SELECT TOP (1) m.MessageId, m.Body, m.VisibleAfterUtc, m.DeliveryCount, m.ReceiptToken
        FROM Ops.QueueMessage AS m WITH (ROWLOCK, UPDLOCK, READPAST)
        WHERE m.QueueName = @QueueName AND m.VisibleAfterUtc <= @NowUtc
        ORDER BY m.VisibleAfterUtc, m.MessageId
    )

    UPDATE NextMessage
    SET VisibleAfterUtc = DATEADD(SECOND, @VisibilitySeconds, @NowUtc),
        DeliveryCount = DeliveryCount + 1,
        ReceiptToken = @Receipt
    OUTPUT inserted.MessageId, inserted.Body, inserted.DeliveryCount INTO @Received (MessageId, Body, DeliveryCount);

    SELECT @MessageId = r.MessageId, @Body = r.Body, @DeliveryCount = r.DeliveryCount, @ReceiptToken = @Receipt
    FROM @Received AS r;
END;
