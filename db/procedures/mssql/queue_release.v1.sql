-- Job.queue_release, version 1.
-- Changes when a received message becomes visible again, for the holder of its
-- current receipt: 0 seconds gives it back at once (a negative acknowledgement:
-- the next receive delivers it again, its delivery count one higher); more
-- keeps it hidden that much longer from now (a consumer still working on it,
-- for instance waiting for MongoDB to come back). @Released is 0 when the
-- receipt is no longer current.
CREATE OR ALTER PROCEDURE Job.queue_release
    @MessageId bigint,
    @ReceiptToken uniqueidentifier,
    @VisibleInSeconds int = 0,
    @Released bit = NULL OUTPUT
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
    IF @VisibleInSeconds IS NULL OR @VisibleInSeconds NOT BETWEEN 0 AND 86400
        SET @Errors += N'The value for the parameter @VisibleInSeconds is not supported: give 0 (now) to 86400 seconds. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    UPDATE Ops.QueueMessage WITH (ROWLOCK)
    SET VisibleAfterUtc = DATEADD(SECOND, @VisibleInSeconds, SYSUTCDATETIME())
    WHERE MessageId = @MessageId AND ReceiptToken = @ReceiptToken;
    SET @Released = CASE WHEN @@ROWCOUNT = 1 THEN 1 ELSE 0 END;
END;
