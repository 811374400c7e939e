-- Job.log_cleanup_batch_as_owner, version 1.
-- The work of one step of the log clean-up, run WITH EXECUTE AS OWNER.
-- Job.log_cleanup_batch (the batch procedure Job.run_batched calls) checks in
-- the caller's context that the database owner is a login on this server, then
-- calls this; it was version 1 of Job.log_cleanup_batch until issue 7 split it
-- (inside a module WITH EXECUTE AS OWNER no check can run when the owner has
-- no login: the context switch itself fails, 15517 / 15404).
--
-- PLSP.Log keeps the current UTC month and the RetentionMonths before it;
-- everything logged before that cutoff goes, a whole month at a time, so the
-- cost does not grow with the rows removed. The steps, in order:
--   1. ensure   (@Position NULL): Job.log_partitions_ensure adds the first
--               month missing for now .. PartitionMonthsAhead; one row of work
--               per month. @Position stays NULL while more months are missing,
--               so the next step adds the next one, each in its own short
--               transaction. Nothing to create: straight on to 2.
--   2. months   (@Position >= 0): the next partition of PF_Log_Month wholly
--               before the cutoff that holds rows is switched out to
--               PLSP.Log_SwitchOut (same scheme, same partition number) and the
--               switch-out table truncated: metadata only. @Position is then the
--               partition's upper bound, as milliseconds since 1970-01-01 UTC.
--   3. stragglers (@Position <= -1): rows before the cutoff that no partition
--               wholly before the cutoff holds (here: those in the partition that
--               holds the cutoff, only when the boundaries ran out) go
--               @BatchSize at a time, oldest first by (LoggedUtc, LogId). The
--               keyset moves forward: @Position = -1 - (milliseconds from
--               0001-01-01 to the LoggedUtc of the last row handled), -1 at the
--               start, so no batch seeks again over the ghost records earlier
--               batches left. PostgreSQL's twin deletes here the old rows of its
--               default partition.
--
-- The SWITCH needs a schema-modification lock on PLSP.Log and PLSP.Log_SwitchOut.
-- LockWaitMs has one meaning on both engines: the longest the step tries for
-- that lock, asked so that nobody ever queues behind the request. Here that is
-- LOCK_TIMEOUT 0 (inside the SWITCH's dynamic batch), again every 10 ms for at
-- most LockWaitMs, as PostgreSQL's LOCK ... NOWAIT is. (WAIT_AT_LOW_PRIORITY
-- counts its MAX_DURATION in whole minutes, and with ABORT_AFTER_WAIT = SELF at
-- least 1, so it cannot mean milliseconds.) Not granted in time: error 1222 is
-- caught, the month is left for the next run, the batch note says so, and the
-- run goes on.
-- Before the SWITCH the switch-out table is compared with PLSP.Log: columns,
-- every index's kind, uniqueness, key columns and their order, included
-- columns, filter, partition scheme and column, and the data compression of
-- the partition switched. A difference (an index added to PLSP.Log only, say)
-- fails the step with a message naming it, instead of every SWITCH failing
-- with error 4947 / 4913; docs/jobs/log_cleanup.md says what to do.
-- Rows counted exactly: COUNT_BIG(*) of the switch-out table after the SWITCH
-- (nobody else uses it, so nobody waits while it is read) and, in a dry run,
-- of the month in PLSP.Log; sys.partitions.rows is only an estimate. A dry run
-- writes nothing (no boundaries added either).
--
-- Settings are read digits only, as the PostgreSQL twin reads them: ' 200',
-- '+5' and '.5' are refused naming the setting (TRY_CONVERT would take them).
-- Every READPAST has READCOMMITTEDLOCK or UPDLOCK beside it: on a database with
-- READ_COMMITTED_SNAPSHOT ON a READPAST read under READ COMMITTED raises error
-- 650. SET IMPLICIT_TRANSACTIONS OFF and DEADLOCK_PRIORITY LOW on entry; lock
-- waits other than the SWITCH's are bounded by the caller's LOCK_TIMEOUT
-- (Job.run_batched sets LockTimeoutMs), 1000 ms when there is none.
--
-- Differences from the PostgreSQL twin, one line each:
--   * Digit checks are binary LIKEs (COLLATE Latin1_General_BIN2: ASCII digits only); the twin: ASCII patterns.
--   * SWITCH to a switch-out table (hence the switch-target check); the twin: TRUNCATE of the partition.
--   * Stragglers sit in the partition that holds the cutoff; the twin: in a default partition.
--   * READPAST; the twin: FOR UPDATE SKIP LOCKED.
--   * A char(1) parameter is cut to its length before the body runs ('YES' is 'Y'); the twin refuses 'YES' naming the parameter.
--
-- Permissions: ALTER TABLE ... SWITCH and TRUNCATE TABLE need ALTER on both
-- tables, SPLIT needs ALTER ANY DATASPACE, and reading sys.partitions needs
-- metadata visibility; ownership chaining covers data access only, never DDL.
-- So this procedure runs WITH EXECUTE AS OWNER (dbo, the owner of schema Job
-- and of the tables): flp_orchestrator needs EXECUTE on schema Job only, and
-- gets no table rights. The body is fixed code: it takes no SQL text from its
-- caller.
CREATE OR ALTER PROCEDURE Job.log_cleanup_batch_as_owner
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
    SET IMPLICIT_TRANSACTIONS OFF;
    SET DEADLOCK_PRIORITY LOW;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;  -- READPAST needs READ COMMITTED (error 650 otherwise); reverts on return
    IF @@LOCK_TIMEOUT < 0
        SET LOCK_TIMEOUT 1000;  -- called on its own: never wait forever; reverts on return

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Drift nvarchar(2048) = N'';
    DECLARE @Clock datetime2(7) = SYSUTCDATETIME();
    DECLARE @RetentionText nvarchar(400);
    DECLARE @LockWaitText nvarchar(400);
    DECLARE @MonthsAheadText nvarchar(400);
    DECLARE @RetentionMonths int;
    DECLARE @LockWaitMs int;
    DECLARE @PartitionMonthsAhead int;
    DECLARE @Cutoff datetime2(3);
    DECLARE @From datetime2(3);
    DECLARE @KeyFrom datetime2(3);
    DECLARE @KeyMs bigint;
    DECLARE @Inclusive bit;
    DECLARE @PartitionNumber int;
    DECLARE @LowerBound datetime2(3);
    DECLARE @UpperBound datetime2(3);
    DECLARE @MonthRows bigint;
    DECLARE @MoreMonths bit = 0;
    DECLARE @StragglerFrom datetime2(3);
    DECLARE @StragglerRows bit = 0;
    DECLARE @Found int;
    DECLARE @Last datetime2(3);
    DECLARE @Created int;
    DECLARE @More bit;
    DECLARE @Switched bit = 0;
    DECLARE @WaitStartedUtc datetime2(3);
    DECLARE @Deleted TABLE (LoggedUtc datetime2(3) NOT NULL);
    DECLARE @Shapes TABLE (
        TableName sysname NOT NULL,
        IndexName sysname NULL,
        Shape nvarchar(1800) NOT NULL
    );

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += N'Job.log_cleanup_batch_as_owner must not run inside a transaction: it commits its own short transactions. ';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @BatchSize IS NULL OR @BatchSize < 1 OR @BatchSize > 4000
        SET @Errors += N'The value for the parameter @BatchSize is not supported: give 1 to 4000 rows (under SQL Server''s lock escalation at 5,000 locks). ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (remove) or N (count only). ';
    IF @Position < -315537897600001
        SET @Errors += N'The value for the parameter @Position is not supported: give NULL, a step position from an earlier call, or -1. ';

    ----------------------------------------------------------------------------
    -- Check settings (Ops.Setting, job log_cleanup; read before every step),
    -- digits only like the PostgreSQL twin
    ----------------------------------------------------------------------------
    SELECT
        @RetentionText = MAX(CASE WHEN s.Name = 'RetentionMonths' THEN s.Value END),
        @LockWaitText = MAX(CASE WHEN s.Name = 'LockWaitMs' THEN s.Value END),
        @MonthsAheadText = MAX(CASE WHEN s.Name = 'PartitionMonthsAhead' THEN s.Value END)
    FROM Ops.Setting AS s
    WHERE s.JobName = 'log_cleanup';
    IF LEN(@RetentionText) BETWEEN 1 AND 4 AND @RetentionText COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @RetentionMonths = TRY_CAST(@RetentionText AS int);
    IF LEN(@LockWaitText) BETWEEN 1 AND 9 AND @LockWaitText COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @LockWaitMs = TRY_CAST(@LockWaitText AS int);
    IF LEN(@MonthsAheadText) BETWEEN 1 AND 4 AND @MonthsAheadText COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @PartitionMonthsAhead = TRY_CAST(@MonthsAheadText AS int);

    IF @RetentionMonths IS NULL OR @RetentionMonths > 1200
        SET @Errors += N'Setting RetentionMonths (Ops.Setting, log_cleanup) must be a whole number from 0 to 1200. ';
    IF @LockWaitMs IS NULL OR @LockWaitMs > 60000
        SET @Errors += N'Setting LockWaitMs (Ops.Setting, log_cleanup) must be a whole number from 0 to 60000. ';
    IF @PartitionMonthsAhead IS NULL OR @PartitionMonthsAhead > 120
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
        MILLISECOND, CAST(CASE WHEN @Position > 0 THEN @Position ELSE 0 END % 86400000 AS int),
        DATEADD(DAY, CAST(CASE WHEN @Position > 0 THEN @Position ELSE 0 END / 86400000 AS int), CAST('1970-01-01' AS datetime2(3)))
    );
    -- The straggler keyset: from the start, or from the last row handled.
    SET @KeyMs = CASE WHEN @Position IS NULL OR @Position >= -1 THEN 0 ELSE -1 - @Position END;
    SET @KeyFrom = DATEADD(
        MILLISECOND, CAST(@KeyMs % 86400000 AS int),
        DATEADD(DAY, CAST(@KeyMs / 86400000 AS int), CAST('0001-01-01' AS datetime2(3)))
    );
    SET @Inclusive = CASE WHEN @Position IS NULL OR @Position >= -1 THEN 1 ELSE 0 END;

    ----------------------------------------------------------------------------
    -- Survey: the next old month partition holding rows, whether another
    -- follows, and whether rows before the cutoff remain in the partition that
    -- holds the cutoff. RANGE RIGHT: partition n ends at boundary n.
    ----------------------------------------------------------------------------
    SELECT @StragglerFrom = MAX(CAST(prv.value AS datetime2(3)))
    FROM sys.partition_functions AS pf
    INNER JOIN sys.partition_range_values AS prv ON pf.function_id = prv.function_id
    WHERE pf.name = N'PF_Log_Month' AND CAST(prv.value AS datetime2(3)) <= @Cutoff;
    SET @StragglerFrom = COALESCE(@StragglerFrom, CAST('0001-01-01' AS datetime2(3)));

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

        IF EXISTS (
            SELECT 1
            -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
            FROM PLSP.Log AS l WITH (READCOMMITTEDLOCK, READPAST)
            WHERE l.LoggedUtc >= @StragglerFrom AND l.LoggedUtc < @Cutoff
        )
            SET @StragglerRows = 1;
    END;

    ----------------------------------------------------------------------------
    -- Do the work: step 1, ensure the months ahead have partitions, one a step
    ----------------------------------------------------------------------------
    IF @Position IS NULL
    BEGIN
        EXEC Job.log_partitions_ensure
            @MonthsAhead = @PartitionMonthsAhead,
            @Execute = @Execute,
            @LockWaitMs = @LockWaitMs,
            @Created = @Created OUTPUT,
            @Note = @Note OUTPUT,
            @More = @More OUTPUT;
        IF @Created > 0 OR @Note IS NOT NULL
        BEGIN
            SET @Rows = @Created;
            -- More months missing after the one just added: step 1 again.
            SET @Position = CASE WHEN @More = 1 AND @Created > 0 THEN NULL ELSE 0 END;
            SET @Done = CASE WHEN @Position IS NOT NULL AND @PartitionNumber IS NULL AND @StragglerRows = 0 THEN 1 ELSE 0 END;
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
        SELECT @LowerBound = CAST(prv.value AS datetime2(3))
        FROM sys.partition_functions AS pf
        INNER JOIN sys.partition_range_values AS prv ON pf.function_id = prv.function_id
        WHERE pf.name = N'PF_Log_Month' AND prv.boundary_id = @PartitionNumber - 1;
        SET @LowerBound = COALESCE(@LowerBound, CAST('0001-01-01' AS datetime2(3)));

        -- The switch target must match PLSP.Log exactly (SWITCH fails otherwise):
        -- each index described without its name, for the partition switched.
        INSERT INTO @Shapes (TableName, IndexName, Shape)
        SELECT
            OBJECT_NAME(i.object_id), i.name,
            CONCAT(
                i.type_desc, CASE WHEN i.is_unique = 1 THEN N' UNIQUE' END,
                N' key (', (
                    SELECT STRING_AGG(CONCAT(c.name, CASE WHEN ic.is_descending_key = 1 THEN N' DESC' END), N', ')
                        WITHIN GROUP (ORDER BY ic.key_ordinal)
                    FROM sys.index_columns AS ic
                    INNER JOIN sys.columns AS c ON ic.object_id = c.object_id AND ic.column_id = c.column_id
                    WHERE ic.object_id = i.object_id AND ic.index_id = i.index_id AND ic.key_ordinal > 0
                ), N')',
                N' include (', (
                    SELECT STRING_AGG(c.name, N', ') WITHIN GROUP (ORDER BY c.name)
                    FROM sys.index_columns AS ic
                    INNER JOIN sys.columns AS c ON ic.object_id = c.object_id AND ic.column_id = c.column_id
                    WHERE ic.object_id = i.object_id AND ic.index_id = i.index_id AND ic.is_included_column = 1
                ), N')',
                N' where ' + i.filter_definition,
                N' on ', ds.name, N' (', (
                    SELECT STRING_AGG(c.name, N', ')
                    FROM sys.index_columns AS ic
                    INNER JOIN sys.columns AS c ON ic.object_id = c.object_id AND ic.column_id = c.column_id
                    WHERE ic.object_id = i.object_id AND ic.index_id = i.index_id AND ic.partition_ordinal > 0
                ), N')',
                N' compression ', (
                    SELECT p.data_compression_desc
                    FROM sys.partitions AS p
                    WHERE p.object_id = i.object_id AND p.index_id = i.index_id AND p.partition_number = @PartitionNumber
                )
            )
        FROM sys.indexes AS i
        INNER JOIN sys.data_spaces AS ds ON i.data_space_id = ds.data_space_id
        WHERE i.object_id IN (OBJECT_ID(N'PLSP.Log'), OBJECT_ID(N'PLSP.Log_SwitchOut'))
            AND i.type > 0 AND i.is_hypothetical = 0;  -- hypothetical: a tuning advisor's, no data
        -- The columns, in order, with type and nullability.
        INSERT INTO @Shapes (TableName, IndexName, Shape)
        SELECT
            OBJECT_NAME(c.object_id), NULL,
            CONCAT(
                N'column ', c.column_id, N' ', c.name, N' ', TYPE_NAME(c.user_type_id), N'(', c.max_length, N',', c.[precision],
                N',', c.scale, N')', CASE WHEN c.is_nullable = 1 THEN N' NULL' ELSE N' NOT NULL' END, N' ' + c.collation_name
            )
        FROM sys.columns AS c
        WHERE c.object_id IN (OBJECT_ID(N'PLSP.Log'), OBJECT_ID(N'PLSP.Log_SwitchOut'));

        SELECT @Drift = LEFT(STRING_AGG(CAST(CONCAT(
            N'PLSP.', a.TableName, N' has ', COALESCE(N'index ' + a.IndexName + N' ', N''), N'(', a.Shape, N'), PLSP.',
            CASE WHEN a.TableName = N'Log' THEN N'Log_SwitchOut' ELSE N'Log' END, N' has none like it'
        ) AS nvarchar(MAX)), N'; '), 1500)
        FROM @Shapes AS a
        WHERE NOT EXISTS (
            SELECT 1 FROM @Shapes AS b
            WHERE b.TableName <> a.TableName AND b.Shape = a.Shape
        );
        IF @Drift <> N''
        BEGIN
            SET @Drift = CONCAT(
                N'PLSP.Log_SwitchOut no longer matches PLSP.Log, so the SWITCH of partition ', @PartitionNumber,
                N' would fail: ', @Drift,
                N'. Give PLSP.Log_SwitchOut the same (docs/jobs/log_cleanup.md, "When the switch-out table drifts").'
            );
            THROW 50003, @Drift, 1;
        END;

        IF @Execute = 'Y'
        BEGIN
            -- Left over only if an earlier run died between its two steps.
            TRUNCATE TABLE PLSP.Log_SwitchOut;
            -- LOCK_TIMEOUT 0 inside the dynamic batch (it reverts when the batch
            -- returns), retried every 10 ms for at most LockWaitMs, never queued.
            -- Dynamic because sqlfluff's T-SQL grammar does not take a variable
            -- partition number; SQL Server does.
            SET @WaitStartedUtc = SYSUTCDATETIME();
            WHILE @Switched = 0
            BEGIN
                BEGIN TRY
                    EXEC sys.sp_executesql
                        N'SET LOCK_TIMEOUT 0;
                        ALTER TABLE PLSP.Log SWITCH PARTITION @PartitionNumber TO PLSP.Log_SwitchOut PARTITION @PartitionNumber;',
                        N'@PartitionNumber int',
                        @PartitionNumber = @PartitionNumber;
                    SET @Switched = 1;
                END TRY
                BEGIN CATCH
                    IF @@TRANCOUNT > 0
                        ROLLBACK TRANSACTION;
                    IF ERROR_NUMBER() <> 1222  -- lock request time-out
                        THROW;
                END CATCH;
                IF @Switched = 1 OR DATEDIFF(MILLISECOND, @WaitStartedUtc, SYSUTCDATETIME()) >= @LockWaitMs
                    BREAK;
                WAITFOR DELAY '00:00:00.010';
            END;
            IF @Switched = 0
            BEGIN
                SET @Rows = 0;
                SET @Note = CONCAT(
                    N'PLSP.Log partition ', @PartitionNumber, N' (logged before ', CONVERT(nchar(10), @UpperBound, 23),
                    N') busy: no schema lock within ', @LockWaitMs, N' ms, left for the next run'
                );
                RETURN;
            END;

            -- The rows the switch took, counted exactly where they now are:
            -- nobody else uses the switch-out table.
            SELECT @MonthRows = COUNT_BIG(*) FROM PLSP.Log_SwitchOut;
            TRUNCATE TABLE PLSP.Log_SwitchOut;
        END
        ELSE
            SELECT @MonthRows = COUNT_BIG(*)
            FROM PLSP.Log AS l
            WHERE l.LoggedUtc >= @LowerBound AND l.LoggedUtc < @UpperBound;

        SET @Rows = CAST(CASE WHEN @MonthRows > 2147483647 THEN 2147483647 ELSE @MonthRows END AS int);
        SET @Note = CONCAT(
            CASE WHEN @Execute = 'Y' THEN N'emptied' ELSE N'would empty' END,
            N' PLSP.Log partition ', @PartitionNumber, N' (logged before ', CONVERT(nchar(10), @UpperBound, 23), N'), ',
            @Rows, N' rows'
        );
        RETURN;
    END;

    ----------------------------------------------------------------------------
    -- Do the work: step 3, stragglers before the cutoff, in keyset batches
    ----------------------------------------------------------------------------
    IF @KeyFrom < @StragglerFrom
    BEGIN
        SET @KeyFrom = @StragglerFrom;
        SET @Inclusive = 1;
    END;
    IF @Execute = 'Y'
    BEGIN
        BEGIN TRY
            BEGIN TRANSACTION;
            -- Oldest first in key order from the keyset position: a seek on the
            -- clustered key (LoggedUtc, LogId), never again over earlier ghosts.
            WITH batch AS (
                SELECT TOP (@BatchSize) l.LoggedUtc
                -- READPAST needs a locking read: UPDLOCK (RCSI databases raise error 650 otherwise).
                FROM PLSP.Log AS l WITH (ROWLOCK, UPDLOCK, READPAST)
                WHERE l.LoggedUtc >= @KeyFrom AND l.LoggedUtc < @Cutoff
                ORDER BY l.LoggedUtc, l.LogId
            )

            DELETE FROM batch
            OUTPUT deleted.LoggedUtc INTO @Deleted (LoggedUtc);
            COMMIT TRANSACTION;
        END TRY
        BEGIN CATCH
            IF @@TRANCOUNT > 0
                ROLLBACK TRANSACTION;
            THROW;
        END CATCH;
        SELECT @Rows = COUNT(*), @Last = MAX(d.LoggedUtc)
        FROM @Deleted AS d;
        SET @Done = CASE WHEN @Rows < @BatchSize THEN 1 ELSE 0 END;
    END
    ELSE
    BEGIN
        -- Counted once each: @BatchSize rows after the position, plus the rows
        -- sharing the last millisecond counted (as the session purge's dry run).
        SELECT @Found = COUNT(*), @Last = MAX(c.LoggedUtc)
        FROM (
            SELECT TOP (@BatchSize) l.LoggedUtc
            -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
            FROM PLSP.Log AS l WITH (READCOMMITTEDLOCK, READPAST)
            WHERE (l.LoggedUtc > @KeyFrom OR (@Inclusive = 1 AND l.LoggedUtc = @KeyFrom)) AND l.LoggedUtc < @Cutoff
            ORDER BY l.LoggedUtc, l.LogId
        ) AS c;
        SET @Rows = @Found;
        IF @Found = @BatchSize
            SELECT @Rows = COUNT(*)
            -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
            FROM PLSP.Log AS l WITH (READCOMMITTEDLOCK, READPAST)
            WHERE (l.LoggedUtc > @KeyFrom OR (@Inclusive = 1 AND l.LoggedUtc = @KeyFrom)) AND l.LoggedUtc <= @Last;
        SET @Done = CASE WHEN @Found < @BatchSize THEN 1 ELSE 0 END;
    END;
    SET @Position = -1 - DATEDIFF_BIG(MILLISECOND, CAST('0001-01-01' AS datetime2(3)), COALESCE(@Last, @KeyFrom));
    SET @Note = CONCAT(
        CASE WHEN @Execute = 'Y' THEN N'deleted ' ELSE N'would delete ' END, @Rows,
        N' rows logged before ', CONVERT(nchar(10), @Cutoff, 23), N' from the PLSP.Log partition that holds it',
        N', last logged ' + CONVERT(nvarchar(23), @Last, 126)
    );
END;
