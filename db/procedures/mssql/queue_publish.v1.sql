-- Job.queue_publish, version 1.
-- Publishes a batch of messages on the database queue (Ops.QueueMessage, the
-- embedded default beside RabbitMQ): one row per body, visible at once, all
-- in one statement. The batch is confirmed when the call returns (it commits
-- with the caller's autocommit): either every body is on the queue or none is.
-- @Bodies is a JSON array of strings; @Count returns how many were queued.
CREATE OR ALTER PROCEDURE Job.queue_publish
    @QueueName varchar(100),
    @Bodies nvarchar(MAX),
    @Count int = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Elements int;

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @QueueName IS NULL OR @QueueName = '' OR @QueueName COLLATE Latin1_General_BIN2 LIKE '%[^a-z0-9_.]%'
        SET @Errors += N'The value for the parameter @QueueName is not supported: give the queue''s name in lower-case letters, digits, _ and dot. ';
    IF @Bodies IS NULL OR ISJSON(@Bodies) <> 1 OR LTRIM(@Bodies) NOT LIKE N'[[]%'
        SET @Errors += N'The value for the parameter @Bodies is not supported: give a JSON array of message bodies (strings). ';
    ELSE
    BEGIN
        SELECT @Elements = COUNT(*) FROM OPENJSON(@Bodies);
        IF @Elements NOT BETWEEN 1 AND 10000
            SET @Errors += N'The value for the parameter @Bodies is not supported: give 1 to 10000 bodies. ';
        ELSE IF EXISTS (SELECT 1 FROM OPENJSON(@Bodies) AS b WHERE b.type <> 1 OR b.value = N'')
            SET @Errors += N'The value for the parameter @Bodies is not supported: every body must be a non-empty string. ';
    END;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work: every body in one statement, in array order
    ----------------------------------------------------------------------------
    INSERT INTO Ops.QueueMessage (QueueName, Body)
    SELECT @QueueName, b.value
    FROM OPENJSON(@Bodies) AS b
    ORDER BY CAST(b.[key] AS int);
    SET @Count = @@ROWCOUNT;
END;
