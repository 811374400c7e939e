-- Job.log_partitions_ensure, version 2.
-- Makes sure PLSP.Log has a month partition for the current UTC month and the
-- @MonthsAhead months after it, so log rows never pile up in the last partition
-- of PF_Log_Month (whose rows can only be removed row by row). The foundation
-- made the boundaries 2024-01-01 to 2031-01-01; this step keeps the window
-- moving. Job.log_cleanup_batch_as_owner runs it as the first step of every
-- clean-up.
--
-- One month per call: the first missing month of now .. @MonthsAhead is
-- created, and @More says whether another is missing after it; the caller
-- calls again, each call its own short transaction, so no transaction holds
-- the schema locks of many months. A month is a partition when its first day
-- and the next month's first day are both boundaries (RANGE RIGHT), so making
-- one may take two boundaries; @Created counts months, not boundaries, the
-- same count as the PostgreSQL twin's. A dry run (@Execute = 'N') creates
-- nothing and locks nothing, so it counts every missing month at once
-- (@More = 0).
--
-- A missing boundary is added with NEXT USED + SPLIT RANGE, the month's one or
-- two splits in one transaction (a month is made whole or not at all). SPLIT
-- takes a schema-modification lock on every table of the scheme (PLSP.Log and
-- PLSP.Log_SwitchOut) and has no low-priority wait, so it is asked for with
-- LOCK_TIMEOUT 0, again every 10 ms for at most @LockWaitMs: a waiting request
-- would make every writer queue behind it. Not granted in time: the month is
-- left for the next run and @Note says so. Splitting the last partition moves
-- the rows at or after the new boundary (normally none: they are future rows).
--
-- Version 2 (issue 7): one month per call with @More (version 1 split every
-- missing boundary in one call, and counted boundaries: one more than the
-- PostgreSQL twin's months); SET IMPLICIT_TRANSACTIONS OFF and DEADLOCK_PRIORITY
-- LOW on entry; LOCK_TIMEOUT 0 only inside the split's dynamic batch, so the
-- caller's bounded LOCK_TIMEOUT stays for the rest (version 1 set it back to
-- -1, wait forever).
-- Differences from the PostgreSQL twin, one line each:
--   * Boundaries are split in the partition function; the twin attaches a table as a partition.
--
-- Permissions: ALTER PARTITION SCHEME / FUNCTION need ALTER ANY DATASPACE. It
-- runs in the owner's context of its caller Job.log_cleanup_batch_as_owner
-- (WITH EXECUTE AS OWNER); called directly by a member of flp_orchestrator it
-- fails.
CREATE OR ALTER PROCEDURE Job.log_partitions_ensure
    @MonthsAhead int,
    @Execute char(1),
    @LockWaitMs int,
    @Created int = NULL OUTPUT,
    @Note nvarchar(400) = NULL OUTPUT,
    @More bit = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET DEADLOCK_PRIORITY LOW;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Clock datetime2(7) = SYSUTCDATETIME();
    DECLARE @CurrentMonth datetime2(3);
    DECLARE @Month datetime2(3);
    DECLARE @NextMonth datetime2(3);
    DECLARE @Target datetime2(3);
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
    SET @More = 0;
    SET @CurrentMonth = DATETIME2FROMPARTS(YEAR(@Clock), MONTH(@Clock), 1, 0, 0, 0, 0, 3);

    ----------------------------------------------------------------------------
    -- Survey: the missing months of now .. @MonthsAhead (a month is missing
    -- when its first day or the next month's first day is no boundary)
    ----------------------------------------------------------------------------
    WHILE @Offset <= @MonthsAhead
    BEGIN
        SET @Month = DATEADD(MONTH, @Offset, @CurrentMonth);
        SET @NextMonth = DATEADD(MONTH, 1, @Month);
        SET @Offset += 1;

        IF (
            SELECT COUNT(*)
            FROM sys.partition_functions AS pf
            INNER JOIN sys.partition_range_values AS prv ON pf.function_id = prv.function_id
            WHERE pf.name = N'PF_Log_Month' AND CAST(prv.value AS datetime2(3)) IN (@Month, @NextMonth)
        ) = 2
            CONTINUE;

        IF @Execute = 'N'
        BEGIN
            -- A dry run counts every missing month: it creates nothing.
            SET @Created += 1;
            SET @Names = LEFT(@Names + N' ' + CONVERT(nchar(7), @Month, 23), 300);
            CONTINUE;
        END;
        IF @Target IS NULL
        BEGIN
            SET @Target = @Month;  -- the one month this call creates
            CONTINUE;
        END;
        SET @More = 1;  -- another missing month: the next call's
        BREAK;
    END;

    ----------------------------------------------------------------------------
    -- Do the work: the first missing month, its one or two boundaries in one
    -- transaction; LOCK_TIMEOUT 0 inside the dynamic batch (it reverts when the
    -- batch returns), retried every 10 ms, never queued
    ----------------------------------------------------------------------------
    IF @Target IS NOT NULL
    BEGIN
        SET @NextMonth = DATEADD(MONTH, 1, @Target);
        SET @Split = 0;
        SET @WaitStartedUtc = SYSUTCDATETIME();
        WHILE @Split = 0
        BEGIN
            BEGIN TRY
                BEGIN TRANSACTION;
                EXEC sys.sp_executesql
                    N'SET LOCK_TIMEOUT 0;
                    IF NOT EXISTS (
                        SELECT 1
                        FROM sys.partition_functions AS pf
                        INNER JOIN sys.partition_range_values AS prv ON pf.function_id = prv.function_id
                        WHERE pf.name = N''PF_Log_Month'' AND CAST(prv.value AS datetime2(3)) = @Month
                    )
                    BEGIN
                        ALTER PARTITION SCHEME PS_Log_Month NEXT USED [PRIMARY];
                        ALTER PARTITION FUNCTION PF_Log_Month() SPLIT RANGE (@Month);
                    END;
                    IF NOT EXISTS (
                        SELECT 1
                        FROM sys.partition_functions AS pf
                        INNER JOIN sys.partition_range_values AS prv ON pf.function_id = prv.function_id
                        WHERE pf.name = N''PF_Log_Month'' AND CAST(prv.value AS datetime2(3)) = @NextMonth
                    )
                    BEGIN
                        ALTER PARTITION SCHEME PS_Log_Month NEXT USED [PRIMARY];
                        ALTER PARTITION FUNCTION PF_Log_Month() SPLIT RANGE (@NextMonth);
                    END;',
                    N'@Month datetime2(3), @NextMonth datetime2(3)',
                    @Month = @Target,
                    @NextMonth = @NextMonth;
                COMMIT TRANSACTION;
                SET @Split = 1;
            END TRY
            BEGIN CATCH
                IF @@TRANCOUNT > 0
                    ROLLBACK TRANSACTION;
                IF ERROR_NUMBER() <> 1222  -- lock request time-out
                    THROW;
            END CATCH;
            IF @Split = 1 OR DATEDIFF(MILLISECOND, @WaitStartedUtc, SYSUTCDATETIME()) >= @LockWaitMs
                BREAK;
            WAITFOR DELAY '00:00:00.010';
        END;

        IF @Split = 0
        BEGIN
            SET @More = 0;  -- the caller moves on; the next run tries again
            SET @Note = CONCAT(
                N'PLSP.Log busy: no schema lock within ', @LockWaitMs, N' ms, month ',
                CONVERT(nchar(7), @Target, 23), N' and later left for the next run'
            );
        END
        ELSE
        BEGIN
            SET @Created = 1;
            SET @Names = N' ' + CONVERT(nchar(7), @Target, 23);
        END;
    END;

    ----------------------------------------------------------------------------
    -- Log end: what was done, for the job's batch note
    ----------------------------------------------------------------------------
    IF @Created > 0
        SET @Note = LEFT(CONCAT(
            CASE WHEN @Execute = 'Y' THEN N'added' ELSE N'would add' END,
            N' PF_Log_Month months', @Names,
            CASE WHEN @More = 1 THEN N'; more months missing: next step' END
        ), 400);
END;
