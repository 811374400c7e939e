-- Job.ops_retention_batch, version 1.
-- One batch of the Ops retention job (Job.ops_retention runs it through
-- Job.run_batched): removes the operations history older than the job's
-- settings, so Ops.JobRun, Ops.JobRunBatch and Ops.Heartbeat stop growing:
--   * JobRunDays (default 90): a run that started longer ago goes, with its
--     Ops.JobRunBatch rows;
--   * JobRunBatchDays (default 30): the progress rows of a run that started
--     longer ago go, the run's own row stays until JobRunDays;
--   * HeartbeatDays (default 7): the row of an orchestrator that has not beaten
--     for longer goes (a live one beats every 30 seconds).
-- A run still 'running' is never touched, whatever its age (its job's next
-- start marks it abandoned; then it may go).
-- (Ops.QueueMessage has no done state: an acknowledged message is deleted by
-- its consumer, so there is nothing old to keep or remove.)
--
-- Keyset: @Position is the last JobRunId handled (NULL at the start); a batch
-- walks Ops.JobRun's clustered key upward from there and takes the next runs
-- with something to remove, as many as fit in @BatchSize rows (a run's row plus
-- its batch rows). A run with more batch rows than @BatchSize alone is emptied
-- over several batches (@Position stays on it). When the walk finds no more
-- runs, the old heartbeats go (at most @BatchSize) and the job is done.
-- Each DELETE removes at most @BatchSize (<= 4000) rows of one index, under
-- SQL Server's lock escalation at 5,000 locks, in one short transaction. Rows
-- another session holds locked are skipped (READPAST), left for the next run.
-- @Execute = 'N' only counts what the batch would remove; it writes nothing
-- (a dry batch may count a large run's rows in one go, more than @BatchSize).
--
-- Differences from the PostgreSQL twin, one line each:
--   * Digit checks are binary LIKEs (COLLATE Latin1_General_BIN2: ASCII digits only); the twin: ASCII patterns.
--   * READPAST skips locked rows; the twin picks them with FOR UPDATE SKIP LOCKED.
--   * Its own short transaction; the twin has no transaction control (Job.run_batched commits).
--   * The picks are a table variable; the twin's are arrays.
CREATE OR ALTER PROCEDURE Job.ops_retention_batch
    @BatchSize int,
    @Execute char(1),
    @Position bigint = NULL OUTPUT,
    @Rows int = NULL OUTPUT,
    @Done bit = NULL OUTPUT,
    @Note nvarchar(400) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET DEADLOCK_PRIORITY LOW;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;  -- READPAST needs READ COMMITTED (error 650 otherwise); reverts on return
    IF @@LOCK_TIMEOUT < 0
        SET LOCK_TIMEOUT 1000;  -- called on its own: never wait forever; reverts on return

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();
    DECLARE @JobRunDaysText nvarchar(400);
    DECLARE @JobRunBatchDaysText nvarchar(400);
    DECLARE @HeartbeatDaysText nvarchar(400);
    DECLARE @JobRunDays int;
    DECLARE @JobRunBatchDays int;
    DECLARE @HeartbeatDays int;
    DECLARE @RunCutoffUtc datetime2(3);
    DECLARE @BatchCutoffUtc datetime2(3);
    DECLARE @HeartbeatCutoffUtc datetime2(3);
    DECLARE @FromId bigint = COALESCE(@Position, 0);
    DECLARE @Found int;
    DECLARE @Picked int;
    DECLARE @LastId bigint;
    DECLARE @FirstId bigint;
    DECLARE @FirstRows int;
    DECLARE @BatchRows int = 0;
    DECLARE @RunRows int = 0;
    DECLARE @HeartbeatRows int = 0;
    DECLARE @WalkDone bit = 0;
    DECLARE @Runs TABLE (
        JobRunId bigint NOT NULL PRIMARY KEY,
        RunGoes bit NOT NULL,
        BatchRows int NOT NULL,
        Total bigint NOT NULL
    );

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += N'Job.ops_retention_batch must not run inside a transaction: it commits its own short transactions. ';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @BatchSize IS NULL OR @BatchSize < 1 OR @BatchSize > 4000
        SET @Errors += N'The value for the parameter @BatchSize is not supported: give 1 to 4000 rows (under SQL Server''s lock escalation at 5,000 locks). ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (delete) or N (count only). ';
    IF @Position < 0
        SET @Errors += N'The value for the parameter @Position is not supported: give the last JobRunId handled, or NULL at the start. ';

    -- The job's settings: whole days to keep, per table.
    SELECT @JobRunDaysText = s.Value
    FROM Ops.Setting AS s
    WHERE s.JobName = 'ops_retention' AND s.Name = 'JobRunDays';
    SELECT @JobRunBatchDaysText = s.Value
    FROM Ops.Setting AS s
    WHERE s.JobName = 'ops_retention' AND s.Name = 'JobRunBatchDays';
    SELECT @HeartbeatDaysText = s.Value
    FROM Ops.Setting AS s
    WHERE s.JobName = 'ops_retention' AND s.Name = 'HeartbeatDays';
    IF LEN(@JobRunDaysText) BETWEEN 1 AND 5 AND @JobRunDaysText COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @JobRunDays = TRY_CAST(@JobRunDaysText AS int);
    IF LEN(@JobRunBatchDaysText) BETWEEN 1 AND 5 AND @JobRunBatchDaysText COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @JobRunBatchDays = TRY_CAST(@JobRunBatchDaysText AS int);
    IF LEN(@HeartbeatDaysText) BETWEEN 1 AND 5 AND @HeartbeatDaysText COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @HeartbeatDays = TRY_CAST(@HeartbeatDaysText AS int);
    IF @JobRunDays IS NULL OR @JobRunDays < 1 OR @JobRunDays > 36500
        SET @Errors += N'Setting JobRunDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';
    IF @JobRunBatchDays IS NULL OR @JobRunBatchDays < 1 OR @JobRunBatchDays > 36500
        SET @Errors += N'Setting JobRunBatchDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';
    IF @HeartbeatDays IS NULL OR @HeartbeatDays < 1 OR @HeartbeatDays > 36500
        SET @Errors += N'Setting HeartbeatDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    SET @RunCutoffUtc = DATEADD(DAY, -@JobRunDays, @Now);
    SET @BatchCutoffUtc = DATEADD(DAY, -@JobRunBatchDays, @Now);
    SET @HeartbeatCutoffUtc = DATEADD(DAY, -@HeartbeatDays, @Now);

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    -- The next runs with something to remove (never a running one), with their
    -- batch rows and the running total of rows; those within @BatchSize are
    -- this batch.
    INSERT INTO @Runs (JobRunId, RunGoes, BatchRows, Total)
    SELECT
        k.JobRunId, k.RunGoes, c.BatchRows,
        SUM(CAST(k.RunGoes AS int) + c.BatchRows) OVER (ORDER BY k.JobRunId ROWS UNBOUNDED PRECEDING)
    FROM (
        SELECT TOP (@BatchSize)
            r.JobRunId,
            CAST(CASE WHEN r.StartedUtc < @RunCutoffUtc THEN 1 ELSE 0 END AS bit) AS RunGoes
        -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
        FROM Ops.JobRun AS r WITH (READCOMMITTEDLOCK, READPAST)
        WHERE
            r.JobRunId > @FromId
            AND r.Status <> 'running'
            AND (
                r.StartedUtc < @RunCutoffUtc
                OR (r.StartedUtc < @BatchCutoffUtc AND EXISTS (
                    SELECT 1 FROM Ops.JobRunBatch AS e WHERE e.JobRunId = r.JobRunId
                ))
            )
        ORDER BY r.JobRunId
    ) AS k
    CROSS APPLY (
        SELECT COUNT(*) AS BatchRows
        FROM Ops.JobRunBatch AS b
        WHERE b.JobRunId = k.JobRunId
    ) AS c;

    SELECT @Found = COUNT(*), @FirstId = MIN(u.JobRunId)
    FROM @Runs AS u;
    SELECT @Picked = COUNT(*), @LastId = MAX(u.JobRunId)
    FROM @Runs AS u
    WHERE u.Total <= @BatchSize;
    SELECT @FirstRows = CAST(u.RunGoes AS int) + u.BatchRows
    FROM @Runs AS u
    WHERE u.JobRunId = @FirstId;
    SET @WalkDone = CASE WHEN @Found < @BatchSize AND @Picked = @Found THEN 1 ELSE 0 END;

    IF @Picked = 0 AND @Found > 0
    BEGIN
        -- The first run alone has more rows than a batch: its batch rows go
        -- over several batches, the keyset stays on it.
        IF @Execute = 'Y'
        BEGIN
            BEGIN TRY
                BEGIN TRANSACTION;

                -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                DELETE TOP (@BatchSize) FROM Ops.JobRunBatch WITH (ROWLOCK, READCOMMITTEDLOCK, READPAST)
                WHERE JobRunId = @FirstId;
                SET @BatchRows = @@ROWCOUNT;

                COMMIT TRANSACTION;
            END TRY
            BEGIN CATCH
                IF @@TRANCOUNT > 0
                    ROLLBACK TRANSACTION;
                THROW;
            END CATCH;
            -- Every row of it locked by others: leave the run for the next run.
            SET @LastId = CASE WHEN @BatchRows = 0 THEN @FirstId ELSE @FromId END;
        END
        ELSE
        BEGIN
            SET @BatchRows = @FirstRows;
            SET @LastId = @FirstId;
        END;
    END
    ELSE IF @Picked > 0
    BEGIN
        IF @Execute = 'Y'
        BEGIN
            BEGIN TRY
                BEGIN TRANSACTION;

                -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                DELETE b
                FROM Ops.JobRunBatch AS b WITH (ROWLOCK, READCOMMITTEDLOCK, READPAST)
                WHERE
                    b.JobRunId > @FromId AND b.JobRunId <= @LastId
                    AND EXISTS (
                        SELECT 1 FROM @Runs AS u
                        WHERE u.JobRunId = b.JobRunId AND u.Total <= @BatchSize
                    );
                SET @BatchRows = @@ROWCOUNT;

                -- The run rows, checked again on the locked row: not running,
                -- and no batch row left (one skipped above keeps its run).
                -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                DELETE r
                FROM Ops.JobRun AS r WITH (ROWLOCK, READCOMMITTEDLOCK, READPAST)
                WHERE
                    r.JobRunId > @FromId AND r.JobRunId <= @LastId
                    AND r.Status <> 'running'
                    AND r.StartedUtc < @RunCutoffUtc
                    AND EXISTS (
                        SELECT 1 FROM @Runs AS u
                        WHERE u.JobRunId = r.JobRunId AND u.Total <= @BatchSize AND u.RunGoes = 1
                    )
                    AND NOT EXISTS (SELECT 1 FROM Ops.JobRunBatch AS b WHERE b.JobRunId = r.JobRunId);
                SET @RunRows = @@ROWCOUNT;

                COMMIT TRANSACTION;
            END TRY
            BEGIN CATCH
                IF @@TRANCOUNT > 0
                    ROLLBACK TRANSACTION;
                THROW;
            END CATCH;
        END
        ELSE
            SELECT @BatchRows = SUM(u.BatchRows), @RunRows = SUM(CAST(u.RunGoes AS int))
            FROM @Runs AS u
            WHERE u.Total <= @BatchSize;
    END;

    -- The walk is over: the heartbeats of orchestrators gone quiet.
    IF @WalkDone = 1
    BEGIN
        IF @Execute = 'Y'
        BEGIN
            BEGIN TRY
                BEGIN TRANSACTION;

                -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                DELETE TOP (@BatchSize) FROM Ops.Heartbeat WITH (ROWLOCK, READCOMMITTEDLOCK, READPAST)
                WHERE BeatUtc < @HeartbeatCutoffUtc;
                SET @HeartbeatRows = @@ROWCOUNT;

                COMMIT TRANSACTION;
            END TRY
            BEGIN CATCH
                IF @@TRANCOUNT > 0
                    ROLLBACK TRANSACTION;
                THROW;
            END CATCH;
        END
        ELSE
            SELECT @HeartbeatRows = COUNT(*)
            FROM (
                SELECT TOP (@BatchSize) h.Component
                -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                FROM Ops.Heartbeat AS h WITH (READCOMMITTEDLOCK, READPAST)
                WHERE h.BeatUtc < @HeartbeatCutoffUtc
            ) AS hb;
    END;

    ----------------------------------------------------------------------------
    -- Report: where the next batch starts, and whether everything old is gone
    ----------------------------------------------------------------------------
    SET @Rows = @BatchRows + @RunRows + @HeartbeatRows;
    SET @Position = COALESCE(@LastId, @Position);
    SET @Done = CASE WHEN @WalkDone = 1 AND @HeartbeatRows < @BatchSize THEN 1 ELSE 0 END;
    SET @Note = LEFT(CONCAT(
        CASE WHEN @Execute = 'Y' THEN N'deleted ' ELSE N'would delete ' END,
        @RunRows, N' runs, ', @BatchRows, N' batch rows',
        CASE WHEN @Found > 0 THEN CONCAT(N' (runs after ', @FromId, N' to ', COALESCE(@LastId, @FromId), N')') END,
        CASE WHEN @WalkDone = 1 THEN CONCAT(N', ', @HeartbeatRows, N' heartbeats') END,
        N'; runs started before ', CONVERT(nvarchar(23), @RunCutoffUtc, 126),
        N', batch rows of runs before ', CONVERT(nvarchar(23), @BatchCutoffUtc, 126)
    ), 400);
END;
