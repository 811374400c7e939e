-- Job.log_partitions_ensure, version 1.
-- Makes sure PLSP.Log has a month partition for the current UTC month and the
-- @MonthsAhead months after it, so log rows never pile up in the last partition
-- of PF_Log_Month (whose rows can only be removed row by row). The foundation
-- made the boundaries 2024-01-01 to 2031-01-01; this step keeps the window
-- moving. Job.log_cleanup_batch runs it as the first step of every clean-up.
--
-- A missing month boundary is added with NEXT USED + SPLIT RANGE. SPLIT takes a
-- schema-modification lock on every table of the scheme (PLSP.Log and
-- PLSP.Log_SwitchOut) and has no low-priority wait, so it is asked for with
-- LOCK_TIMEOUT 0, again every 10 ms for at most @LockWaitMs: a waiting request
-- would make every writer queue behind it. Not granted in time: the boundary is
-- left for the next run and @Note says so. Splitting the last partition moves
-- the rows at or after the new boundary (normally none: they are future rows).
-- @Created = partitions created (dry run: that would be created).
--
-- Permissions: ALTER PARTITION SCHEME / FUNCTION need ALTER ANY DATASPACE. It
-- runs in the owner's context of its caller Job.log_cleanup_batch (WITH EXECUTE
-- AS OWNER); called directly by a member of flp_orchestrator it fails.
CREATE OR ALTER PROCEDURE Job.log_partitions_ensure
    @MonthsAhead int,
    @Execute char(1),
    @LockWaitMs int,
    @Created int = NULL OUTPUT,
    @Note nvarchar(400) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Clock datetime2(7) = SYSUTCDATETIME();
    DECLARE @CurrentMonth datetime2(3);
    DECLARE @Boundary datetime2(3);
    DECLARE @Names nvarchar(400) = N'';
    DECLARE @Offset int = 0;
    DECLARE @Split bit;
    DECLARE @WaitStartedUtc datetime2(3);

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += N'Job.log_partitions_ensure must not run inside a transaction: it commits its own short transactions. ';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @MonthsAhead IS NULL OR @MonthsAhead < 0 OR @MonthsAhead > 120
        SET @Errors += N'The value for the parameter @MonthsAhead is not supported: give 0 to 120 months. ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (create) or N (count only). ';
    IF @LockWaitMs IS NULL OR @LockWaitMs < 0 OR @LockWaitMs > 60000
        SET @Errors += N'The value for the parameter @LockWaitMs is not supported: give 0 to 60000 milliseconds. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    SET @Created = 0;
    SET @Note = NULL;
    SET @CurrentMonth = DATETIME2FROMPARTS(YEAR(@Clock), MONTH(@Clock), 1, 0, 0, 0, 0, 3);

    ----------------------------------------------------------------------------
    -- Do the work: every month boundary from the current month's start to the
    -- end of the last month wanted (RANGE RIGHT: a month is a partition when its
    -- first day and the next month's first day are both boundaries)
    ----------------------------------------------------------------------------
    WHILE @Offset <= @MonthsAhead + 1
    BEGIN
        SET @Boundary = DATEADD(MONTH, @Offset, @CurrentMonth);
        SET @Offset += 1;

        IF EXISTS (
            SELECT 1
            FROM sys.partition_functions AS pf
            INNER JOIN sys.partition_range_values AS prv ON pf.function_id = prv.function_id
            WHERE pf.name = N'PF_Log_Month' AND CAST(prv.value AS datetime2(3)) = @Boundary
        )
            CONTINUE;

        IF @Execute = 'N'
        BEGIN
            SET @Created += 1;
            SET @Names += N' ' + CONVERT(nchar(10), @Boundary, 23);
            CONTINUE;
        END;

        -- LOCK_TIMEOUT 0, retried, never queued.
        SET @Split = 0;
        SET @WaitStartedUtc = SYSUTCDATETIME();
        WHILE @Split = 0
        BEGIN
            BEGIN TRY
                SET LOCK_TIMEOUT 0;
                BEGIN TRANSACTION;
                ALTER PARTITION SCHEME PS_Log_Month NEXT USED [PRIMARY];
                ALTER PARTITION FUNCTION PF_Log_Month() SPLIT RANGE (@Boundary);
                COMMIT TRANSACTION;
                SET @Split = 1;
            END TRY
            BEGIN CATCH
                IF @@TRANCOUNT > 0
                    ROLLBACK TRANSACTION;
                IF ERROR_NUMBER() <> 1222  -- lock request time-out
                    THROW;
            END CATCH;
            SET LOCK_TIMEOUT -1;
            IF @Split = 1 OR DATEDIFF(MILLISECOND, @WaitStartedUtc, SYSUTCDATETIME()) >= @LockWaitMs
                BREAK;
            WAITFOR DELAY '00:00:00.010';
        END;

        IF @Split = 0
        BEGIN
            SET @Note = CONCAT(
                N'PLSP.Log busy: no schema lock within ', @LockWaitMs, N' ms, boundary ',
                CONVERT(nchar(10), @Boundary, 23), N' and later left for the next run'
            );
            BREAK;
        END;
        SET @Created += 1;
        SET @Names += N' ' + CONVERT(nchar(10), @Boundary, 23);
    END;

    ----------------------------------------------------------------------------
    -- Log end: what was done, for the job's batch note
    ----------------------------------------------------------------------------
    IF @Created > 0
        SET @Note = LEFT(CONCAT(
            CASE WHEN @Execute = 'Y' THEN N'added' ELSE N'would add' END,
            N' PF_Log_Month boundaries', @Names, N'; ' + @Note
        ), 400);
END;
