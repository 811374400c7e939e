-- Job.ops_retention_batch, version 3.
-- One batch of the Ops retention job (Job.ops_retention runs it through
-- Job.run_batched): removes the operations history older than the job's
-- settings (whole days to keep, Ops.Setting job ops_retention), so these tables
-- stop growing:
--   * JobRunDays (default 90): a run that started longer ago goes, with its
--     Ops.JobRunBatch rows;
--   * JobRunBatchDays (default 30): the progress rows of a run that started
--     longer ago go, the run's own row stays until JobRunDays;
--   * HeartbeatDays (default 7): the row of an orchestrator that has not beaten
--     for longer goes (a live one beats every 30 seconds);
--   * DeadLetterDays (default 90): an Ops.QueueDeadLetter row dead-lettered
--     longer ago goes (long enough to look into any failure the daily report named);
--   * CdaAccessLogDays (default 400): a PLSP.CdaAccessLog row (who read which
--     care plan, HentCDA / DDS) logged longer ago goes: an audit log, kept
--     for a year and a month so a citizen's or an auditor's question about the
--     past year can always be answered;
--   * JobSlotDays (default 30, at least 8): an Ops.JobSlot claim for a slot
--     longer ago goes (Job.job_slot_claim trims a job's claims older than 7
--     days only while that job is still claimed; a job taken out of the
--     timetable kept its claims forever). At least 8 so the retention never
--     removes a claim Job.job_slot_claim still reads (its 'first' rule);
--   * UploadDeadLetterDays (default 30, migration 0027): an Upload.DeadLetterDocument
--     row (a bulk upload's poison document, personal data, kept for an operator
--     to mend and send again) dead-lettered longer ago goes, at most
--     @DeadLetterBatchMax (100) documents a batch: a document may hold up to
--     4,000 rows of JSON (about half a megabyte), so a batch of 4,000 of them
--     would be a transaction of gigabytes of log.
-- A run still 'running' is never touched, whatever its age (its job's next
-- start marks it abandoned; then it may go).
-- (Ops.QueueMessage has no done state: an acknowledged message is deleted by
-- its consumer, so there is nothing old to keep or remove.)
--
-- Version 3 (migration 0027): phase 5, the upload dead letters
-- (UploadDeadLetterDays), along IX_DeadLetterDocument_DeadLettered (migration
-- 0027); otherwise version 2.
-- Version 2: the dead letters, the CDA access log and the job slots, each with
-- its setting, and a keyset per table (below). A dry run counts each table's
-- old rows in one step (version 1 counted the heartbeats BatchSize at a time
-- from the same place, so a dry run never ended when BatchSize or more were old).
--
-- Keyset. The tables go one after the other, in phases: 0 the runs, 1 the
-- heartbeats, 2 the dead letters, 3 the CDA access log, 4 the job slots, 5 the
-- upload dead letters. @Position
-- is phase * 10^15 + the phase's own position (NULL at the start):
--   * phase 0 walks Ops.JobRun's primary key upward from the last JobRunId
--     handled and takes the next runs with something to remove, as many as
--     fit in @BatchSize rows (a run's row plus its batch rows); a run with
--     more batch rows than @BatchSize alone is emptied over several batches
--     (the position stays on it). Phase 0's position is thus the JobRunId, as
--     in version 1;
--   * phase 1 removes at most @BatchSize old heartbeats a batch (a few rows);
--   * phases 2 to 5 walk the table's time index (DeadLetteredUtc, AccessedUtc,
--     SlotUtc, DeadLetteredUtc; migration 0014 adds the first and the third,
--     migration 0027 the last) oldest first; the
--     position is the last time removed, in milliseconds since 1970-01-01
--     (0: from the start). The next batch starts at that time (inclusive:
--     rows of the same millisecond may remain), so no batch reads again over
--     the dead rows or ghost records the earlier ones left.
-- A batch that finds nothing in its phase goes on to the next phase in the same
-- call, so every batch removes something or ends the job (@Done after phase 5).
-- Each DELETE removes at most @BatchSize (<= 4000) rows of one table (phase 5:
-- at most @DeadLetterBatchMax), under
-- SQL Server's lock escalation at 5,000 locks. Rows
-- another session holds locked are skipped (READPAST, beside READCOMMITTEDLOCK: an RCSI database raises error 650
-- for a bare READPAST), left for
-- the next run. @Execute = 'N' only counts what the batch would remove; it
-- writes nothing (a dry batch may count more than @BatchSize rows in one go).
-- Each DELETE runs in its own short transaction (BEGIN / COMMIT here).
--
-- Differences from the PostgreSQL twin, one line each:
--   * Digit checks are binary LIKEs (COLLATE Latin1_General_BIN2: ASCII digits only); the twin: ASCII patterns.
--   * READPAST skips locked rows; the twin picks them with FOR UPDATE SKIP LOCKED.
--   * Its own short transaction; the twin has no transaction control (Job.run_batched commits).
--   * The picks are a table variable; the twin's are arrays.
--   * The dry run skips locked rows (READPAST); the twin's counts them too (MVCC).
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

    DECLARE @PhaseSize bigint = 1000000000000000;  -- 10^15: a phase's positions
    DECLARE @Phases int = 6;  -- 0 to 5
    DECLARE @DeadLetterBatchMax int = 100;  -- upload dead letters a batch: each up to 4,000 rows of JSON
    DECLARE @Epoch datetime2(3) = '1970-01-01T00:00:00';
    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();
    DECLARE @Text nvarchar(400);
    DECLARE @JobRunDays int;
    DECLARE @JobRunBatchDays int;
    DECLARE @HeartbeatDays int;
    DECLARE @DeadLetterDays int;
    DECLARE @CdaAccessLogDays int;
    DECLARE @JobSlotDays int;
    DECLARE @UploadDeadLetterDays int;
    DECLARE @RunCutoffUtc datetime2(3);
    DECLARE @BatchCutoffUtc datetime2(3);
    DECLARE @HeartbeatCutoffUtc datetime2(3);
    DECLARE @DeadLetterCutoffUtc datetime2(3);
    DECLARE @CdaAccessLogCutoffUtc datetime2(3);
    DECLARE @JobSlotCutoffUtc datetime2(3);
    DECLARE @UploadDeadLetterCutoffUtc datetime2(3);
    DECLARE @Phase int;
    DECLARE @PhasePosition bigint;
    DECLARE @NextPosition bigint;
    DECLARE @PhaseBatch int;
    DECLARE @FromId bigint;
    DECLARE @FromUtc datetime2(3);
    DECLARE @LastUtc datetime2(3);
    DECLARE @Found int;
    DECLARE @Picked int;
    DECLARE @LastId bigint;
    DECLARE @FirstId bigint;
    DECLARE @FirstRows int;
    DECLARE @BatchRows int = 0;
    DECLARE @RunRows int = 0;
    DECLARE @PhaseRows int = 0;
    DECLARE @WalkDone bit = 0;
    DECLARE @Runs TABLE (
        JobRunId bigint NOT NULL PRIMARY KEY,
        RunGoes bit NOT NULL,
        BatchRows int NOT NULL,
        Total bigint NOT NULL
    );
    DECLARE @Gone TABLE (AtUtc datetime2(3) NOT NULL);

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
    IF @Position < 0 OR @Position >= @Phases * @PhaseSize
        SET @Errors += N'The value for the parameter @Position is not supported: give the position the last batch returned, or NULL at the start. ';

    -- The job's settings: whole days to keep, per table (JobSlotDays at least 8).
    SELECT @Text = s.Value FROM Ops.Setting AS s WHERE s.JobName = 'ops_retention' AND s.Name = 'JobRunDays';
    IF LEN(@Text) BETWEEN 1 AND 5 AND @Text COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @JobRunDays = TRY_CAST(@Text AS int);
    SET @Text = NULL;
    SELECT @Text = s.Value FROM Ops.Setting AS s WHERE s.JobName = 'ops_retention' AND s.Name = 'JobRunBatchDays';
    IF LEN(@Text) BETWEEN 1 AND 5 AND @Text COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @JobRunBatchDays = TRY_CAST(@Text AS int);
    SET @Text = NULL;
    SELECT @Text = s.Value FROM Ops.Setting AS s WHERE s.JobName = 'ops_retention' AND s.Name = 'HeartbeatDays';
    IF LEN(@Text) BETWEEN 1 AND 5 AND @Text COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @HeartbeatDays = TRY_CAST(@Text AS int);
    SET @Text = NULL;
    SELECT @Text = s.Value FROM Ops.Setting AS s WHERE s.JobName = 'ops_retention' AND s.Name = 'DeadLetterDays';
    IF LEN(@Text) BETWEEN 1 AND 5 AND @Text COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @DeadLetterDays = TRY_CAST(@Text AS int);
    SET @Text = NULL;
    SELECT @Text = s.Value FROM Ops.Setting AS s WHERE s.JobName = 'ops_retention' AND s.Name = 'CdaAccessLogDays';
    IF LEN(@Text) BETWEEN 1 AND 5 AND @Text COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @CdaAccessLogDays = TRY_CAST(@Text AS int);
    SET @Text = NULL;
    SELECT @Text = s.Value FROM Ops.Setting AS s WHERE s.JobName = 'ops_retention' AND s.Name = 'JobSlotDays';
    IF LEN(@Text) BETWEEN 1 AND 5 AND @Text COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @JobSlotDays = TRY_CAST(@Text AS int);
    SET @Text = NULL;
    SELECT @Text = s.Value FROM Ops.Setting AS s WHERE s.JobName = 'ops_retention' AND s.Name = 'UploadDeadLetterDays';
    IF LEN(@Text) BETWEEN 1 AND 5 AND @Text COLLATE Latin1_General_BIN2 NOT LIKE N'%[^0-9]%'
        SET @UploadDeadLetterDays = TRY_CAST(@Text AS int);
    IF @JobRunDays IS NULL OR @JobRunDays < 1 OR @JobRunDays > 36500
        SET @Errors += N'Setting JobRunDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';
    IF @JobRunBatchDays IS NULL OR @JobRunBatchDays < 1 OR @JobRunBatchDays > 36500
        SET @Errors += N'Setting JobRunBatchDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';
    IF @HeartbeatDays IS NULL OR @HeartbeatDays < 1 OR @HeartbeatDays > 36500
        SET @Errors += N'Setting HeartbeatDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';
    IF @DeadLetterDays IS NULL OR @DeadLetterDays < 1 OR @DeadLetterDays > 36500
        SET @Errors += N'Setting DeadLetterDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';
    IF @CdaAccessLogDays IS NULL OR @CdaAccessLogDays < 1 OR @CdaAccessLogDays > 36500
        SET @Errors += N'Setting CdaAccessLogDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';
    IF @JobSlotDays IS NULL OR @JobSlotDays < 8 OR @JobSlotDays > 36500
        SET @Errors += N'Setting JobSlotDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 8 to 36500. ';
    IF @UploadDeadLetterDays IS NULL OR @UploadDeadLetterDays < 1 OR @UploadDeadLetterDays > 36500
        SET @Errors += N'Setting UploadDeadLetterDays (Ops.Setting, job ops_retention) is missing or not a whole number of days from 1 to 36500. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    SET @RunCutoffUtc = DATEADD(DAY, -@JobRunDays, @Now);
    SET @BatchCutoffUtc = DATEADD(DAY, -@JobRunBatchDays, @Now);
    SET @HeartbeatCutoffUtc = DATEADD(DAY, -@HeartbeatDays, @Now);
    SET @DeadLetterCutoffUtc = DATEADD(DAY, -@DeadLetterDays, @Now);
    SET @CdaAccessLogCutoffUtc = DATEADD(DAY, -@CdaAccessLogDays, @Now);
    SET @JobSlotCutoffUtc = DATEADD(DAY, -@JobSlotDays, @Now);
    SET @UploadDeadLetterCutoffUtc = DATEADD(DAY, -@UploadDeadLetterDays, @Now);
    SET @Phase = CAST(COALESCE(@Position, 0) / @PhaseSize AS int);
    SET @PhasePosition = COALESCE(@Position, 0) % @PhaseSize;

    ----------------------------------------------------------------------------
    -- Do the work: the first phase with something old, from @Position on
    ----------------------------------------------------------------------------
    WHILE @Phase < @Phases
    BEGIN
        SET @NextPosition = (@Phase + 1) * @PhaseSize;  -- unless the phase has more
        SET @PhaseBatch = CASE WHEN @Phase = 5 AND @BatchSize > @DeadLetterBatchMax THEN @DeadLetterBatchMax ELSE @BatchSize END;
        -- Milliseconds since 1970 in two steps: DATEADD takes an int.
        SET @FromUtc = DATEADD(
            MILLISECOND, CAST(@PhasePosition % 86400000 AS int), DATEADD(DAY, CAST(@PhasePosition / 86400000 AS int), @Epoch)
        );
        SET @LastUtc = NULL;
        DELETE FROM @Gone;

        IF @Phase = 0
        BEGIN
            -- The runs: the next ones with something to remove (never a running
            -- one), with their batch rows and the running total of rows; those
            -- within @BatchSize are this batch.
            SET @FromId = @PhasePosition;
            SET @BatchRows = 0;
            SET @RunRows = 0;
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
                -- The first run alone has more rows than a batch: its batch rows
                -- go over several batches, the keyset stays on it.
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
            SET @PhaseRows = @BatchRows + @RunRows;
            IF @WalkDone = 0
                SET @NextPosition = COALESCE(@LastId, @FromId);
            SET @Note = CONCAT(
                CASE WHEN @Execute = 'Y' THEN N'deleted ' ELSE N'would delete ' END,
                @RunRows, N' runs, ', @BatchRows, N' batch rows',
                CASE WHEN @Found > 0 THEN CONCAT(N' (runs after ', @FromId, N' to ', COALESCE(@LastId, @FromId), N')') END,
                N'; runs started before ', CONVERT(nvarchar(23), @RunCutoffUtc, 126),
                N', batch rows of runs before ', CONVERT(nvarchar(23), @BatchCutoffUtc, 126)
            );
        END
        ELSE IF @Phase = 1
        BEGIN
            -- The heartbeats of orchestrators gone quiet (a few rows: no keyset).
            IF @Execute = 'Y'
            BEGIN
                BEGIN TRY
                    BEGIN TRANSACTION;

                    -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                    DELETE TOP (@BatchSize) FROM Ops.Heartbeat WITH (ROWLOCK, READCOMMITTEDLOCK, READPAST)
                    WHERE BeatUtc < @HeartbeatCutoffUtc;
                    SET @PhaseRows = @@ROWCOUNT;

                    COMMIT TRANSACTION;
                END TRY
                BEGIN CATCH
                    IF @@TRANCOUNT > 0
                        ROLLBACK TRANSACTION;
                    THROW;
                END CATCH;
                IF @PhaseRows = @BatchSize
                    SET @NextPosition = @Phase * @PhaseSize;  -- more may be old: this phase again
            END
            ELSE
                SELECT @PhaseRows = COUNT(*)
                -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                FROM Ops.Heartbeat AS h WITH (READCOMMITTEDLOCK, READPAST)
                WHERE h.BeatUtc < @HeartbeatCutoffUtc;
            SET @Note = CONCAT(
                CASE WHEN @Execute = 'Y' THEN N'deleted ' ELSE N'would delete ' END, @PhaseRows,
                N' heartbeats; beaten last before ', CONVERT(nvarchar(23), @HeartbeatCutoffUtc, 126)
            );
        END
        ELSE IF @Phase = 2
        BEGIN
            -- Dead letters, oldest first along IX_QueueDeadLetter_DeadLettered.
            IF @Execute = 'Y'
            BEGIN
                BEGIN TRY
                    BEGIN TRANSACTION;

                    WITH d AS (
                        SELECT TOP (@BatchSize) x.DeadLetteredUtc
                        -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                        FROM Ops.QueueDeadLetter AS x WITH (ROWLOCK, READCOMMITTEDLOCK, READPAST)
                        WHERE x.DeadLetteredUtc >= @FromUtc AND x.DeadLetteredUtc < @DeadLetterCutoffUtc
                        ORDER BY x.DeadLetteredUtc
                    )

                    DELETE FROM d
                    OUTPUT deleted.DeadLetteredUtc INTO @Gone (AtUtc);

                    COMMIT TRANSACTION;
                END TRY
                BEGIN CATCH
                    IF @@TRANCOUNT > 0
                        ROLLBACK TRANSACTION;
                    THROW;
                END CATCH;
                SELECT @PhaseRows = COUNT(*), @LastUtc = MAX(g.AtUtc) FROM @Gone AS g;
            END
            ELSE
                SELECT @PhaseRows = COUNT(*)
                -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                FROM Ops.QueueDeadLetter AS x WITH (READCOMMITTEDLOCK, READPAST)
                WHERE x.DeadLetteredUtc >= @FromUtc AND x.DeadLetteredUtc < @DeadLetterCutoffUtc;
            SET @Note = CONCAT(
                CASE WHEN @Execute = 'Y' THEN N'deleted ' ELSE N'would delete ' END, @PhaseRows,
                N' dead letters; dead-lettered before ', CONVERT(nvarchar(23), @DeadLetterCutoffUtc, 126)
            );
        END
        ELSE IF @Phase = 3
        BEGIN
            -- The CDA access log, oldest first along IX_CdaAccessLog_Accessed.
            IF @Execute = 'Y'
            BEGIN
                BEGIN TRY
                    BEGIN TRANSACTION;

                    WITH a AS (
                        SELECT TOP (@BatchSize) x.AccessedUtc
                        -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                        FROM PLSP.CdaAccessLog AS x WITH (ROWLOCK, READCOMMITTEDLOCK, READPAST)
                        WHERE x.AccessedUtc >= @FromUtc AND x.AccessedUtc < @CdaAccessLogCutoffUtc
                        ORDER BY x.AccessedUtc
                    )

                    DELETE FROM a
                    OUTPUT deleted.AccessedUtc INTO @Gone (AtUtc);

                    COMMIT TRANSACTION;
                END TRY
                BEGIN CATCH
                    IF @@TRANCOUNT > 0
                        ROLLBACK TRANSACTION;
                    THROW;
                END CATCH;
                SELECT @PhaseRows = COUNT(*), @LastUtc = MAX(g.AtUtc) FROM @Gone AS g;
            END
            ELSE
                SELECT @PhaseRows = COUNT(*)
                -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                FROM PLSP.CdaAccessLog AS x WITH (READCOMMITTEDLOCK, READPAST)
                WHERE x.AccessedUtc >= @FromUtc AND x.AccessedUtc < @CdaAccessLogCutoffUtc;
            SET @Note = CONCAT(
                CASE WHEN @Execute = 'Y' THEN N'deleted ' ELSE N'would delete ' END, @PhaseRows,
                N' CDA access log rows; logged before ', CONVERT(nvarchar(23), @CdaAccessLogCutoffUtc, 126)
            );
        END
        ELSE IF @Phase = 4
        BEGIN
            -- Job slot claims, oldest first along IX_JobSlot_Slot.
            IF @Execute = 'Y'
            BEGIN
                BEGIN TRY
                    BEGIN TRANSACTION;

                    WITH j AS (
                        SELECT TOP (@BatchSize) x.SlotUtc
                        -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                        FROM Ops.JobSlot AS x WITH (ROWLOCK, READCOMMITTEDLOCK, READPAST)
                        WHERE x.SlotUtc >= @FromUtc AND x.SlotUtc < @JobSlotCutoffUtc
                        ORDER BY x.SlotUtc
                    )

                    DELETE FROM j
                    OUTPUT deleted.SlotUtc INTO @Gone (AtUtc);

                    COMMIT TRANSACTION;
                END TRY
                BEGIN CATCH
                    IF @@TRANCOUNT > 0
                        ROLLBACK TRANSACTION;
                    THROW;
                END CATCH;
                SELECT @PhaseRows = COUNT(*), @LastUtc = MAX(g.AtUtc) FROM @Gone AS g;
            END
            ELSE
                SELECT @PhaseRows = COUNT(*)
                -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                FROM Ops.JobSlot AS x WITH (READCOMMITTEDLOCK, READPAST)
                WHERE x.SlotUtc >= @FromUtc AND x.SlotUtc < @JobSlotCutoffUtc;
            SET @Note = CONCAT(
                CASE WHEN @Execute = 'Y' THEN N'deleted ' ELSE N'would delete ' END, @PhaseRows,
                N' job slot claims; slots before ', CONVERT(nvarchar(23), @JobSlotCutoffUtc, 126)
            );
        END
        ELSE
        BEGIN
            -- Upload dead letters, oldest first along IX_DeadLetterDocument_DeadLettered,
            -- at most @PhaseBatch (@DeadLetterBatchMax) documents.
            IF @Execute = 'Y'
            BEGIN
                BEGIN TRY
                    BEGIN TRANSACTION;

                    WITH u AS (
                        SELECT TOP (@PhaseBatch) x.DeadLetteredUtc
                        -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                        FROM Upload.DeadLetterDocument AS x WITH (ROWLOCK, READCOMMITTEDLOCK, READPAST)
                        WHERE x.DeadLetteredUtc >= @FromUtc AND x.DeadLetteredUtc < @UploadDeadLetterCutoffUtc
                        ORDER BY x.DeadLetteredUtc
                    )

                    DELETE FROM u
                    OUTPUT deleted.DeadLetteredUtc INTO @Gone (AtUtc);

                    COMMIT TRANSACTION;
                END TRY
                BEGIN CATCH
                    IF @@TRANCOUNT > 0
                        ROLLBACK TRANSACTION;
                    THROW;
                END CATCH;
                SELECT @PhaseRows = COUNT(*), @LastUtc = MAX(g.AtUtc) FROM @Gone AS g;
            END
            ELSE
                SELECT @PhaseRows = COUNT(*)
                -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
                FROM Upload.DeadLetterDocument AS x WITH (READCOMMITTEDLOCK, READPAST)
                WHERE x.DeadLetteredUtc >= @FromUtc AND x.DeadLetteredUtc < @UploadDeadLetterCutoffUtc;
            SET @Note = CONCAT(
                CASE WHEN @Execute = 'Y' THEN N'deleted ' ELSE N'would delete ' END, @PhaseRows,
                N' upload dead letters; dead-lettered before ', CONVERT(nvarchar(23), @UploadDeadLetterCutoffUtc, 126)
            );
        END;

        -- A time-ordered table with a full batch: the next batch starts at the
        -- last time removed.
        IF @Phase >= 2 AND @PhaseRows = @PhaseBatch AND @Execute = 'Y'
            SET @NextPosition = @Phase * @PhaseSize + DATEDIFF_BIG(MILLISECOND, @Epoch, @LastUtc);
        -- Something removed (or the runs' walk goes on): this batch is done.
        IF @PhaseRows > 0 OR @NextPosition < (@Phase + 1) * @PhaseSize
            BREAK;
        -- Nothing old here: the next phase, in this same call.
        SET @Phase += 1;
        SET @PhasePosition = 0;
    END;

    ----------------------------------------------------------------------------
    -- Report: where the next batch starts, and whether everything old is gone
    ----------------------------------------------------------------------------
    IF @Phase >= @Phases
    BEGIN
        SET @Rows = 0;
        SET @Position = @Phases * @PhaseSize - 1;
        SET @Done = 1;
        SET @Note = N'nothing old left';
    END
    ELSE
    BEGIN
        SET @Rows = @PhaseRows;
        SET @Done = CASE WHEN @NextPosition >= @Phases * @PhaseSize THEN 1 ELSE 0 END;
        SET @Position = CASE WHEN @NextPosition >= @Phases * @PhaseSize THEN @Phases * @PhaseSize - 1 ELSE @NextPosition END;
        SET @Note = LEFT(CONCAT(N'phase ', @Phase, N': ', @Note), 400);
    END;
END;
