-- Job.aim_settings_get, version 1.
-- The settings of the AIM pipeline from Ops.Setting: FlpAimImport's (job
-- aim_import) and the consumer's (aim_consume), a job's own row over the '*'
-- row. Read at the start of every import run and every consumer start, so a
-- DBA changes them with an UPDATE. A missing or malformed setting stops the
-- caller with a message naming it.
CREATE OR ALTER PROCEDURE Job.aim_settings_get
    @MaxRows int = NULL OUTPUT,
    @MessageSize int = NULL OUTPUT,
    @ClaimBatchSize int = NULL OUTPUT,
    @VisibilityTimeoutSeconds int = NULL OUTPUT,
    @TimeLimitSeconds int = NULL OUTPUT,
    @MaxAttempts int = NULL OUTPUT,
    @Concurrency int = NULL OUTPUT,
    @QueueVisibilitySeconds int = NULL OUTPUT,
    @MongoDatabase varchar(100) = NULL OUTPUT,
    @MongoCollection varchar(100) = NULL OUTPUT,
    @MongoWriteConcern varchar(20) = NULL OUTPUT,
    @MongoTimeoutMs int = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';

    ----------------------------------------------------------------------------
    -- Check parameters: every parameter is an output; nothing to check
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Read: a job's own value wins over '*'
    ----------------------------------------------------------------------------
    WITH Resolved AS (
        SELECT
            s.Name,
            s.Value,
            ROW_NUMBER() OVER (PARTITION BY s.Name ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END) AS Pick
        FROM Ops.Setting AS s
        WHERE s.JobName IN ('aim_import', 'aim_consume', '*')
    )

    SELECT
        @MaxRows = TRY_CAST(MAX(CASE WHEN r.Name = 'MaxRows' THEN r.Value END) AS int),
        @MessageSize = TRY_CAST(MAX(CASE WHEN r.Name = 'MessageSize' THEN r.Value END) AS int),
        @ClaimBatchSize = TRY_CAST(MAX(CASE WHEN r.Name = 'ClaimBatchSize' THEN r.Value END) AS int),
        @VisibilityTimeoutSeconds = TRY_CAST(MAX(CASE WHEN r.Name = 'VisibilityTimeoutSeconds' THEN r.Value END) AS int),
        @TimeLimitSeconds = TRY_CAST(MAX(CASE WHEN r.Name = 'TimeLimitSeconds' THEN r.Value END) AS int),
        @MaxAttempts = TRY_CAST(MAX(CASE WHEN r.Name = 'MaxAttempts' THEN r.Value END) AS int),
        @Concurrency = TRY_CAST(MAX(CASE WHEN r.Name = 'Concurrency' THEN r.Value END) AS int),
        @QueueVisibilitySeconds = TRY_CAST(MAX(CASE WHEN r.Name = 'QueueVisibilitySeconds' THEN r.Value END) AS int),
        @MongoDatabase = MAX(CASE WHEN r.Name = 'MongoDatabase' THEN r.Value END),
        @MongoCollection = MAX(CASE WHEN r.Name = 'MongoCollection' THEN r.Value END),
        @MongoWriteConcern = MAX(CASE WHEN r.Name = 'MongoWriteConcern' THEN r.Value END),
        @MongoTimeoutMs = TRY_CAST(MAX(CASE WHEN r.Name = 'MongoTimeoutMs' THEN r.Value END) AS int)
    FROM Resolved AS r
    WHERE r.Pick = 1;

    ----------------------------------------------------------------------------
    -- Check values
    ----------------------------------------------------------------------------
    IF @MaxRows IS NULL OR @MaxRows NOT BETWEEN 1 AND 10000000
        SET @Errors += N'Setting MaxRows (Ops.Setting, job aim_import) must be a whole number from 1 to 10000000. ';
    IF @MessageSize IS NULL OR @MessageSize NOT BETWEEN 1 AND 4999
        SET @Errors += N'Setting MessageSize (Ops.Setting, job aim_import) must be 1 to 4999 ids (a message''s rows are marked in one statement). ';
    IF @ClaimBatchSize IS NULL OR @ClaimBatchSize NOT BETWEEN 1 AND 4999
        SET @Errors += N'Setting ClaimBatchSize (Ops.Setting, job aim_import) must be a whole number of rows from 1 to 4999 (lock escalation starts at 5000). ';
    IF @VisibilityTimeoutSeconds IS NULL OR @VisibilityTimeoutSeconds NOT BETWEEN 1 AND 604800
        SET @Errors += N'Setting VisibilityTimeoutSeconds (Ops.Setting, job aim_import) must be a whole number of seconds from 1 to 604800. ';
    IF @TimeLimitSeconds IS NULL OR @TimeLimitSeconds NOT BETWEEN 1 AND 86400
        SET @Errors += N'Setting TimeLimitSeconds (Ops.Setting, job aim_import or *) must be a whole number of seconds from 1 to 86400. ';
    IF @MaxAttempts IS NULL OR @MaxAttempts NOT BETWEEN 1 AND 1000
        SET @Errors += N'Setting MaxAttempts (Ops.Setting, job aim_consume) must be a whole number from 1 to 1000. ';
    IF @Concurrency IS NULL OR @Concurrency NOT BETWEEN 1 AND 64
        SET @Errors += N'Setting Concurrency (Ops.Setting, job aim_consume) must be a whole number from 1 to 64. ';
    IF @QueueVisibilitySeconds IS NULL OR @QueueVisibilitySeconds NOT BETWEEN 1 AND 86400
        SET @Errors += N'Setting QueueVisibilitySeconds (Ops.Setting, job aim_consume) must be a whole number of seconds from 1 to 86400. ';
    IF @MongoDatabase IS NULL OR @MongoDatabase = '' OR LEN(@MongoDatabase) > 63
        OR @MongoDatabase COLLATE Latin1_General_BIN2 LIKE '%[^A-Za-z0-9_-]%'
        SET @Errors += N'Setting MongoDatabase (Ops.Setting, job aim_consume) must be 1 to 63 letters, digits, _ or -. ';
    IF @MongoCollection IS NULL OR @MongoCollection = '' OR @MongoCollection COLLATE Latin1_General_BIN2 LIKE '%[^A-Za-z0-9_.-]%'
        SET @Errors += N'Setting MongoCollection (Ops.Setting, job aim_consume) must be 1 to 100 letters, digits, _, . or -. ';
    IF @MongoWriteConcern IS NULL OR (@MongoWriteConcern COLLATE Latin1_General_BIN2 NOT LIKE '[1-9]' AND @MongoWriteConcern <> 'majority')
        SET @Errors += N'Setting MongoWriteConcern (Ops.Setting, job aim_consume) must be 1 to 9 or majority. ';
    IF @MongoTimeoutMs IS NULL OR @MongoTimeoutMs NOT BETWEEN 100 AND 600000
        SET @Errors += N'Setting MongoTimeoutMs (Ops.Setting, job aim_consume) must be a whole number of milliseconds from 100 to 600000. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;
END;
