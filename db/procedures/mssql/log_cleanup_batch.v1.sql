-- Job.log_cleanup_batch, version 1.
-- One step of the log clean-up (Job.log_cleanup runs it through
-- Job.run_batched). PLSP.Log keeps the current UTC month and the RetentionMonths
-- before it; everything logged before that cutoff goes, a whole month at a time,
-- so the cost does not grow with the rows removed. The steps, in order:
--   1. ensure   (@Position NULL): Job.log_partitions_ensure adds the month
--               boundaries missing for now .. PartitionMonthsAhead; one row of
--               work per partition created. Nothing to create: straight on to 2.
--   2. months   (@Position >= 0): the next partition of PF_Log_Month wholly
--               before the cutoff that holds rows is switched out to
--               PLSP.Log_SwitchOut (same scheme, same partition number) and the
--               switch-out table truncated: metadata only. @Position is then the
--               partition's upper bound, as milliseconds since 1970-01-01 UTC.
--   3. stragglers (@Position = -1): rows before the cutoff in the partition
--               that holds the cutoff (only when the boundaries ran out, so that
--               partition began before it) go @BatchSize at a time. PostgreSQL's
--               twin deletes here the old rows of its default partition.
-- The SWITCH takes a schema-modification lock on PLSP.Log for a moment. It waits
-- for it WITH (WAIT_AT_LOW_PRIORITY ...): writers are granted their locks ahead
-- of it and never queue behind it; after 1 minute (SQL Server counts this wait
-- in minutes) it gives up (ABORT_AFTER_WAIT = SELF, error 1222), the month is
-- left for the next run, the batch note says so, and the run goes on.
-- Rows counted: sys.partitions (O(1)); a dry run counts the same way and writes
-- nothing (no boundaries added either).
--
-- Permissions: ALTER TABLE ... SWITCH and TRUNCATE TABLE need ALTER on both
-- tables, and SPLIT needs ALTER ANY DATASPACE; ownership chaining covers data
-- access only, never DDL. So this procedure runs WITH EXECUTE AS OWNER (dbo,
-- the owner of schema Job and of the tables): flp_orchestrator needs EXECUTE on
-- schema Job only, and gets no table rights. The body is fixed code: it takes
-- no SQL text from its caller.
CREATE OR ALTER PROCEDURE Job.log_cleanup_batch
    @BatchSize int,
    @Execute char(1),
    @Position bigint = NULL OUTPUT,
    @Rows int = NULL OUTPUT,
    @Done bit = NULL OUTPUT,
    @Note nvarchar(400) = NULL OUTPUT
WITH EXECUTE AS OWNER
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;  -- READPAST needs it (error 650 otherwise); reverts when the procedure returns

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @CountExactMax int = 10000;  -- straggler rows counted exactly in a dry run
    DECLARE @Clock datetime2(7) = SYSUTCDATETIME();
    DECLARE @RetentionMonths int;
    DECLARE @LockWaitMs int;
    DECLARE @PartitionMonthsAhead int;
    DECLARE @Cutoff datetime2(3);
    DECLARE @From datetime2(3);
    DECLARE @PartitionNumber int;
    DECLARE @UpperBound datetime2(3);
    DECLARE @MonthRows bigint;
    DECLARE @MoreMonths bit = 0;
    DECLARE @StragglerFrom datetime2(3);
    DECLARE @StragglerRows bit = 0;
    DECLARE @Counted int;
    DECLARE @Created int;

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += N'Job.log_cleanup_batch must not run inside a transaction: it commits its own short transactions. ';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @BatchSize IS NULL OR @BatchSize < 1 OR @BatchSize > 4999
        SET @Errors += N'The value for the parameter @BatchSize is not supported: give 1 to 4999 rows (lock escalation starts at 5000). ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (remove) or N (count only). ';
    IF @Position < -1
        SET @Errors += N'The value for the parameter @Position is not supported: give NULL, -1 or milliseconds since 1970-01-01 UTC. ';

    ----------------------------------------------------------------------------
    -- Check settings (Ops.Setting, job log_cleanup; read before every step)
    ----------------------------------------------------------------------------
    SELECT
        @RetentionMonths = MAX(CASE WHEN s.Name = 'RetentionMonths' THEN TRY_CONVERT(int, s.Value) END),
        @LockWaitMs = MAX(CASE WHEN s.Name = 'LockWaitMs' THEN TRY_CONVERT(int, s.Value) END),
        @PartitionMonthsAhead = MAX(CASE WHEN s.Name = 'PartitionMonthsAhead' THEN TRY_CONVERT(int, s.Value) END)
    FROM Ops.Setting AS s
    WHERE s.JobName = 'log_cleanup';

    IF @RetentionMonths IS NULL OR @RetentionMonths < 0 OR @RetentionMonths > 1200
        SET @Errors += N'Setting RetentionMonths (Ops.Setting, log_cleanup) must be a whole number from 0 to 1200. ';
    IF @LockWaitMs IS NULL OR @LockWaitMs < 0 OR @LockWaitMs > 60000
        SET @Errors += N'Setting LockWaitMs (Ops.Setting, log_cleanup) must be a whole number from 0 to 60000. ';
    IF @PartitionMonthsAhead IS NULL OR @PartitionMonthsAhead < 0 OR @PartitionMonthsAhead > 120
        SET @Errors += N'Setting PartitionMonthsAhead (Ops.Setting, log_cleanup) must be a whole number from 0 to 120. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    -- Rows logged before the cutoff go: the start of the current UTC month,
    -- RetentionMonths earlier.
    SET @Cutoff = DATEADD(MONTH, -@RetentionMonths, DATETIME2FROMPARTS(YEAR(@Clock), MONTH(@Clock), 1, 0, 0, 0, 0, 3));
    -- DATEADD takes an int: add whole days, then the remaining milliseconds.
    SET @From = DATEADD(
        MILLISECOND, CAST(COALESCE(@Position, 0) % 86400000 AS int),
        DATEADD(DAY, CAST(COALESCE(@Position, 0) / 86400000 AS int), CAST('1970-01-01' AS datetime2(3)))
    );

    ----------------------------------------------------------------------------
    -- Survey: the next old month partition holding rows, whether another
    -- follows, and whether rows before the cutoff remain in the partition that
    -- holds the cutoff. RANGE RIGHT: partition n ends at boundary n.
    ----------------------------------------------------------------------------
    IF @Position IS NULL OR @Position >= 0
    BEGIN
        SELECT TOP (1)
            @PartitionNumber = p.partition_number,
            @UpperBound = CAST(prv.value AS datetime2(3))
        FROM sys.partition_functions AS pf
        INNER JOIN sys.partition_range_values AS prv ON pf.function_id = prv.function_id
        INNER JOIN sys.partitions AS p ON prv.boundary_id = p.partition_number
        WHERE pf.name = N'PF_Log_Month'
            AND p.object_id = OBJECT_ID(N'PLSP.Log') AND p.index_id = 1
            AND CAST(prv.value AS datetime2(3)) <= @Cutoff
            AND CAST(prv.value AS datetime2(3)) > @From
            AND p.rows > 0
        ORDER BY p.partition_number;

        IF @PartitionNumber IS NOT NULL AND EXISTS (
            SELECT 1
            FROM sys.partition_functions AS pf
            INNER JOIN sys.partition_range_values AS prv ON pf.function_id = prv.function_id
            INNER JOIN sys.partitions AS p ON prv.boundary_id = p.partition_number
            WHERE pf.name = N'PF_Log_Month'
                AND p.object_id = OBJECT_ID(N'PLSP.Log') AND p.index_id = 1
                AND CAST(prv.value AS datetime2(3)) <= @Cutoff
                AND CAST(prv.value AS datetime2(3)) > @UpperBound
                AND p.rows > 0
        )
            SET @MoreMonths = 1;
    END;

    SELECT @StragglerFrom = MAX(CAST(prv.value AS datetime2(3)))
    FROM sys.partition_functions AS pf
    INNER JOIN sys.partition_range_values AS prv ON pf.function_id = prv.function_id
    WHERE pf.name = N'PF_Log_Month' AND CAST(prv.value AS datetime2(3)) <= @Cutoff;
    SET @StragglerFrom = COALESCE(@StragglerFrom, CAST('0001-01-01' AS datetime2(3)));
    IF EXISTS (
        SELECT 1 FROM PLSP.Log AS l WITH (READPAST)
        WHERE l.LoggedUtc >= @StragglerFrom AND l.LoggedUtc < @Cutoff
    )
        SET @StragglerRows = 1;

    ----------------------------------------------------------------------------
    -- Do the work: step 1, ensure the months ahead have partitions
    ----------------------------------------------------------------------------
    IF @Position IS NULL
    BEGIN
        EXEC Job.log_partitions_ensure
            @MonthsAhead = @PartitionMonthsAhead,
            @Execute = @Execute,
            @LockWaitMs = @LockWaitMs,
            @Created = @Created OUTPUT,
            @Note = @Note OUTPUT;
        IF @Created > 0 OR @Note IS NOT NULL
        BEGIN
            SET @Rows = @Created;
            SET @Position = 0;
            SET @Done = CASE WHEN @PartitionNumber IS NULL AND @StragglerRows = 0 THEN 1 ELSE 0 END;
            RETURN;
        END;
    END;

    ----------------------------------------------------------------------------
    -- Do the work: step 2, empty the next old month partition
    ----------------------------------------------------------------------------
    IF @PartitionNumber IS NOT NULL
    BEGIN
        SET @Position = DATEDIFF_BIG(MILLISECOND, CAST('1970-01-01' AS datetime2(3)), @UpperBound);
        SET @Done = CASE WHEN @MoreMonths = 0 AND @StragglerRows = 0 THEN 1 ELSE 0 END;

        IF @Execute = 'Y'
        BEGIN
            BEGIN TRY
                -- Left over only if an earlier run died between its two steps.
                TRUNCATE TABLE PLSP.Log_SwitchOut;
                -- Through sp_executesql because sqlfluff's T-SQL grammar does not
                -- take a variable partition number; SQL Server does.
                EXEC sys.sp_executesql
                    N'ALTER TABLE PLSP.Log SWITCH PARTITION @PartitionNumber
                    TO PLSP.Log_SwitchOut PARTITION @PartitionNumber
                    WITH (WAIT_AT_LOW_PRIORITY (MAX_DURATION = 1 MINUTES, ABORT_AFTER_WAIT = SELF));',
                    N'@PartitionNumber int',
                    @PartitionNumber = @PartitionNumber;
            END TRY
            BEGIN CATCH
                IF @@TRANCOUNT > 0
                    ROLLBACK TRANSACTION;
                IF ERROR_NUMBER() <> 1222  -- lock request time-out
                    THROW;
                SET @Rows = 0;
                SET @Note = CONCAT(
                    N'PLSP.Log partition ', @PartitionNumber, N' (logged before ', CONVERT(nchar(10), @UpperBound, 23),
                    N') busy: no schema lock within 1 minute at low priority, left for the next run'
                );
                RETURN;
            END CATCH;

            -- The rows the switch took, read where they now are.
            SELECT @MonthRows = p.rows
            FROM sys.partitions AS p
            WHERE p.object_id = OBJECT_ID(N'PLSP.Log_SwitchOut') AND p.index_id = 1 AND p.partition_number = @PartitionNumber;
            TRUNCATE TABLE PLSP.Log_SwitchOut;
        END
        ELSE
            SELECT @MonthRows = p.rows
            FROM sys.partitions AS p
            WHERE p.object_id = OBJECT_ID(N'PLSP.Log') AND p.index_id = 1 AND p.partition_number = @PartitionNumber;

        SET @Rows = CAST(CASE WHEN @MonthRows > 2147483647 THEN 2147483647 ELSE @MonthRows END AS int);
        SET @Note = CONCAT(
            CASE WHEN @Execute = 'Y' THEN N'emptied' ELSE N'would empty' END,
            N' PLSP.Log partition ', @PartitionNumber, N' (logged before ', CONVERT(nchar(10), @UpperBound, 23), N'), ',
            @Rows, N' rows'
        );
        RETURN;
    END;

    ----------------------------------------------------------------------------
    -- Do the work: step 3, stragglers before the cutoff, in batches
    ----------------------------------------------------------------------------
    SET @Position = -1;
    IF @Execute = 'Y'
    BEGIN
        BEGIN TRY
            BEGIN TRANSACTION;
            -- TOP without ORDER BY: every qualifying row goes, in any order.
            DELETE TOP (@BatchSize) FROM PLSP.Log WITH (ROWLOCK, READPAST)
            WHERE LoggedUtc >= @StragglerFrom AND LoggedUtc < @Cutoff;
            SET @Rows = @@ROWCOUNT;
            COMMIT TRANSACTION;
        END TRY
        BEGIN CATCH
            IF @@TRANCOUNT > 0
                ROLLBACK TRANSACTION;
            THROW;
        END CATCH;
        SET @Done = CASE WHEN @Rows < @BatchSize THEN 1 ELSE 0 END;
    END
    ELSE
    BEGIN
        SELECT @Counted = COUNT(*)
        FROM (
            SELECT TOP (@CountExactMax + 1) l.LogId
            FROM PLSP.Log AS l WITH (READPAST)  -- a dry run (the probe) never waits on a row
            WHERE l.LoggedUtc >= @StragglerFrom AND l.LoggedUtc < @Cutoff
        ) AS c;
        SET @Rows = @Counted;
        SET @Done = 1;
    END;
    SET @Note = CONCAT(
        CASE
            WHEN @Execute = 'Y' THEN CONCAT(N'deleted ', @Rows)
            WHEN @Counted > @CountExactMax THEN CONCAT(N'would delete more than ', @CountExactMax)
            ELSE CONCAT(N'would delete ', @Rows)
        END,
        N' rows logged before ', CONVERT(nchar(10), @Cutoff, 23), N' from the PLSP.Log partition that holds it'
    );
END;
