-- Job.queue_status, version 1.
-- The counts of one database queue for an operator (flp aim status): messages
-- ready to be received, received and not yet acknowledged (in flight), dead
-- letters, and the age of the oldest ready message in seconds (NULL when none).
CREATE OR ALTER PROCEDURE Job.queue_status
    @QueueName varchar(100),
    @Ready bigint = NULL OUTPUT,
    @InFlight bigint = NULL OUTPUT,
    @Dead bigint = NULL OUTPUT,
    @OldestReadySeconds int = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @NowUtc datetime2(3) = SYSUTCDATETIME();

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @QueueName IS NULL OR @QueueName = '' OR @QueueName COLLATE Latin1_General_BIN2 LIKE '%[^a-z0-9_.]%'
        THROW 50001, N'The value for the parameter @QueueName is not supported: give the queue''s name in lower-case letters, digits, _ and dot. ', 1;

    ----------------------------------------------------------------------------
    -- Do the work (reads only)
    ----------------------------------------------------------------------------
    SELECT
        @Ready = COUNT_BIG(CASE WHEN m.VisibleAfterUtc <= @NowUtc THEN 1 END),
        @InFlight = COUNT_BIG(CASE WHEN m.VisibleAfterUtc > @NowUtc THEN 1 END),
        @OldestReadySeconds = DATEDIFF(SECOND, MIN(CASE WHEN m.VisibleAfterUtc <= @NowUtc THEN m.EnqueuedUtc END), @NowUtc)
    FROM Ops.QueueMessage AS m
    WHERE m.QueueName = @QueueName;

    SELECT @Dead = COUNT_BIG(*)
    FROM Ops.QueueDeadLetter AS d
    WHERE d.QueueName = @QueueName;
END;
