-- Job.run_batched, version 2.
-- The engine every batched job runs on (archive, purges, clean-ups, Ops
-- retention). It calls the job's batch procedure, Job.<job>_batch (derived from
-- the job's name, so one job's batch never runs under another job's lock and
-- settings), again and again, each call one short transaction, until the
-- procedure says it is done, and in between:
--   * reads the job's settings (Job.batch_settings_get) before every batch;
--   * stops starting batches after the time limit;
--   * pauses while Job.health_check finds the database busy, stays paused for
--     HealthHoldSeconds after the last busy look, and stops cleanly after
--     HealthMaxPauseSeconds in one pause;
--   * bounds every lock wait of the batch to LockTimeoutMs (SET LOCK_TIMEOUT
--     before each call; the batch procedure inherits it): READPAST skips row
--     and page locks but not a table lock (an escalated UPDATE, an offline
--     rebuild), and the time limit is not checked while a batch waits. A batch
--     that hits it (error 1222) is rolled back and its rows are left for the
--     next batch: counted, noted in the batch row and the run message, never a
--     failed run;
--   * runs at DEADLOCK_PRIORITY LOW, so in a deadlock with the application the
--     batch is the victim; a batch chosen as victim (error 1205) is retried up
--     to DeadlockRetries times in a row, then the run stops cleanly (stopped,
--     with a message);
--   * sizes the next batch by time and by time efficiency (below);
--   * sleeps SleepFactor times the batch's duration, leaving room for others;
--   * logs every batch in Ops.JobRunBatch.
-- A cheap probe comes first: with nothing to do a run costs milliseconds.
-- @Execute = 'N' is a dry run: the batch procedure only counts what it would
-- do, and nothing is written, not even the job-run row.
-- SET IMPLICIT_TRANSACTIONS OFF on entry: a caller with it ON (an ODBC or JDBC
-- client with autocommit off, an SSMS option) would otherwise open a
-- transaction at the probe's first read, and every batch would refuse to run.
--
-- Batch size. The next batch aims at a target duration: BatchTargetMs, raised
-- when the fixed cost around each batch (settings, health check, progress row,
-- commits) is a large share of the engine's working time, so that at least
-- TimeEfficiencyMin of it moves rows (GitLab's batched background migrations
-- size batches by the same "time efficiency"), but raised never above BatchMaxMs, the
-- longest transaction a batch may be. The duration and the overhead are
-- smoothed (0.7 old, 0.3 new); a batch grows at most 20% a step, between
-- BatchSizeMin and BatchSizeMax (at most 4,000: see Job.batch_settings_get).
-- A slow machine (larger fixed cost) thus gets larger batches, a fast one keeps
-- short ones: the share of time spent moving rows, not the batch count, holds.
--
-- A batch procedure has this contract:
--   Job.<job>_batch @BatchSize int, @Execute char(1),
--       @Position bigint OUTPUT (keyset position, NULL at the start),
--       @Rows int OUTPUT, @Done bit OUTPUT, @Note nvarchar(400) OUTPUT
-- It must not change LOCK_TIMEOUT itself: it inherits LockTimeoutMs.
--
-- Differences from the PostgreSQL twin, one line each:
--   * One TRY/CATCH around the steps; the twin catches errors in sub-blocks around each step (a PL/pgSQL block that COMMITs cannot catch).
--   * SET DEADLOCK_PRIORITY LOW makes the batch the deadlock victim; the twin has no such setting.
--   * Job.health_check leaves out sessions in WAITFOR; the twin marks its session with application_name 'flp-job:<job>' for it.
CREATE OR ALTER PROCEDURE Job.run_batched
    @JobName varchar(101),
    @Execute char(1) = 'Y',
    @TimeLimitSeconds int = NULL,
    @TriggeredBy varchar(20) = 'manual',
    @Host nvarchar(129) = NULL,
    @JobRunId bigint = NULL OUTPUT,
    @Result varchar(20) = NULL OUTPUT,
    @RowsAffected bigint = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;  -- reverts when the procedure returns, as every SET below
    SET DEADLOCK_PRIORITY LOW;  -- the batch, not the application, is the deadlock victim

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @BatchProcedure nvarchar(256);
    DECLARE @CallerLockTimeout int = @@LOCK_TIMEOUT;
    DECLARE @Parameters nvarchar(4000);
    DECLARE @Message nvarchar(4000);
    DECLARE @StopReason nvarchar(400);
    DECLARE @RunStartedUtc datetime2(3) = SYSUTCDATETIME();
    DECLARE @CycleStartedUtc datetime2(3);
    DECLARE @BatchStartedUtc datetime2(3);
    DECLARE @PauseStartedUtc datetime2(3);
    DECLARE @LastBusyUtc datetime2(3);
    DECLARE @PausedMs int = 0;
    DECLARE @CyclePausedMs int;
    DECLARE @BatchNo int = 0;
    DECLARE @BatchSize int;
    DECLARE @NextBatchSize int;
    DECLARE @BatchRows int;
    DECLARE @BatchMs int;
    DECLARE @CycleMs int;
    DECLARE @SmoothedMs decimal(18, 3);
    DECLARE @SmoothedOverheadMs decimal(18, 3);
    DECLARE @TargetMs decimal(18, 3);
    DECLARE @SleepMs int;
    DECLARE @Delay datetime;
    DECLARE @Position bigint;
    DECLARE @ProbePosition bigint;
    DECLARE @ProbeRows int;
    DECLARE @Done bit = 0;
    DECLARE @Note nvarchar(400);
    DECLARE @Outcome varchar(20);
    DECLARE @LockTimeouts int = 0;
    DECLARE @DeadlocksInARow int = 0;
    DECLARE @DeadlockRetried int = 0;
    DECLARE @Busy bit;
    DECLARE @HealthReason nvarchar(400);
    DECLARE @BatchTargetMs int;
    DECLARE @BatchSizeStart int;
    DECLARE @BatchSizeMin int;
    DECLARE @BatchSizeMax int;
    DECLARE @SleepFactor decimal(9, 3);
    DECLARE @SettingTimeLimitSeconds int;
    DECLARE @HealthMaxActive int;
    DECLARE @HealthMaxLockWaits int;
    DECLARE @HealthHoldSeconds int;
    DECLARE @HealthMaxPauseSeconds int;
    DECLARE @LockTimeoutMs int;
    DECLARE @DeadlockRetries int;
    DECLARE @TimeEfficiencyMin decimal(9, 3);
    DECLARE @BatchMaxMs int;

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += N'Job.run_batched must not run inside a transaction: every batch commits on its own. ';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @JobName IS NULL OR @JobName = '' OR @JobName COLLATE Latin1_General_BIN2 LIKE '%[^a-z0-9_]%' OR LEN(@JobName) > 100
        SET @Errors += N'The value for the parameter @JobName is not supported: give the job''s name (lower-case letters, digits, _; up to 100). ';
    ELSE
    BEGIN
        SET @BatchProcedure = N'Job.' + CAST(@JobName AS nvarchar(100)) + N'_batch';
        IF OBJECT_ID(@BatchProcedure, 'P') IS NULL
            SET @Errors += CONCAT(
                N'The value for the parameter @JobName is not supported: there is no batch procedure ', @BatchProcedure, N'. '
            );
    END;
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (run) or N (dry run). ';
    IF @TimeLimitSeconds <= 0 OR @TimeLimitSeconds > 604800
        SET @Errors += N'The value for the parameter @TimeLimitSeconds is not supported: give 1 to 604800 seconds (7 days), or NULL for the setting. ';
    IF @TriggeredBy IS NULL OR @TriggeredBy NOT IN ('orchestrator', 'agent', 'manual', 'demo', 'test')
        SET @Errors += N'The value for the parameter @TriggeredBy is not supported: use orchestrator, agent, manual, demo or test. ';
    IF LEN(@Host) > 128
        SET @Errors += N'The value for the parameter @Host is not supported: give at most 128 characters. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    -- Outputs start empty: a dry run returns no run id even if one was passed in.
    SET @JobRunId = NULL;
    SET @Result = NULL;
    SET @RowsAffected = 0;
    SET @Parameters = CONCAT(
        N'@Execute = ''', @Execute, N''', @TimeLimitSeconds = ', COALESCE(CAST(@TimeLimitSeconds AS nvarchar(12)), N'NULL')
    );

    ----------------------------------------------------------------------------
    -- Log start (a dry run writes nothing)
    ----------------------------------------------------------------------------
    IF @Execute = 'Y'
    BEGIN
        EXEC Job.job_run_start
            @JobName = @JobName,
            @TriggeredBy = @TriggeredBy,
            @Host = @Host,
            @Parameters = @Parameters,
            @JobRunId = @JobRunId OUTPUT,
            @Result = @Result OUTPUT;
        IF @Result = 'already_running'
            RETURN;
    END;

    BEGIN TRY
        ------------------------------------------------------------------------
        -- Probe: is there anything to do at all?
        ------------------------------------------------------------------------
        EXEC @BatchProcedure
            @BatchSize = 1,
            @Execute = 'N',
            @Position = @ProbePosition OUTPUT,
            @Rows = @ProbeRows OUTPUT,
            @Done = @Done OUTPUT,
            @Note = @Note OUTPUT;
        SET @Done = CASE WHEN @ProbeRows = 0 THEN 1 ELSE 0 END;
        IF @Done = 1
            SET @StopReason = N'nothing to do';

        ------------------------------------------------------------------------
        -- Do the work, batch by batch
        ------------------------------------------------------------------------
        WHILE @Done = 0
        BEGIN
            SET @CycleStartedUtc = SYSUTCDATETIME();
            SET @CyclePausedMs = 0;
            -- Settings are read before every batch (after the run row, so a
            -- malformed one fails a logged run).
            EXEC Job.batch_settings_get
                @JobName = @JobName,
                @BatchTargetMs = @BatchTargetMs OUTPUT,
                @BatchSizeStart = @BatchSizeStart OUTPUT,
                @BatchSizeMin = @BatchSizeMin OUTPUT,
                @BatchSizeMax = @BatchSizeMax OUTPUT,
                @SleepFactor = @SleepFactor OUTPUT,
                @TimeLimitSeconds = @SettingTimeLimitSeconds OUTPUT,
                @HealthMaxActive = @HealthMaxActive OUTPUT,
                @HealthMaxLockWaits = @HealthMaxLockWaits OUTPUT,
                @HealthHoldSeconds = @HealthHoldSeconds OUTPUT,
                @HealthMaxPauseSeconds = @HealthMaxPauseSeconds OUTPUT,
                @LockTimeoutMs = @LockTimeoutMs OUTPUT,
                @DeadlockRetries = @DeadlockRetries OUTPUT,
                @TimeEfficiencyMin = @TimeEfficiencyMin OUTPUT,
                @BatchMaxMs = @BatchMaxMs OUTPUT;
            SET @BatchSize = CASE
                WHEN @BatchSize IS NULL THEN @BatchSizeStart
                WHEN @BatchSize < @BatchSizeMin THEN @BatchSizeMin
                WHEN @BatchSize > @BatchSizeMax THEN @BatchSizeMax
                ELSE @BatchSize
            END;

            -- Time limit: no new batch after it.
            IF DATEDIFF(MILLISECOND, @RunStartedUtc, SYSUTCDATETIME())
                >= 1000 * COALESCE(@TimeLimitSeconds, @SettingTimeLimitSeconds)
            BEGIN
                SET @StopReason = N'time limit reached';
                BREAK;
            END;

            -- Health gate: wait while busy, and for the hold time after the last busy look.
            EXEC Job.health_check
                @MaxActive = @HealthMaxActive,
                @MaxLockWaits = @HealthMaxLockWaits,
                @Busy = @Busy OUTPUT,
                @Reason = @HealthReason OUTPUT;
            SET @PauseStartedUtc = NULL;
            SET @LastBusyUtc = CASE WHEN @Busy = 1 THEN SYSUTCDATETIME() END;
            WHILE @LastBusyUtc IS NOT NULL
                AND (@Busy = 1 OR DATEDIFF(MILLISECOND, @LastBusyUtc, SYSUTCDATETIME()) < 1000 * @HealthHoldSeconds)
            BEGIN
                IF DATEDIFF(MILLISECOND, @RunStartedUtc, SYSUTCDATETIME())
                    >= 1000 * COALESCE(@TimeLimitSeconds, @SettingTimeLimitSeconds)
                BEGIN
                    SET @StopReason = N'time limit reached';
                    BREAK;
                END;
                IF @PauseStartedUtc IS NULL
                BEGIN
                    SET @PauseStartedUtc = SYSUTCDATETIME();
                    RAISERROR (N'%s: paused, database busy: %s', 0, 1, @JobName, @HealthReason) WITH NOWAIT;
                END;
                IF DATEDIFF(MILLISECOND, @PauseStartedUtc, SYSUTCDATETIME()) >= 1000 * @HealthMaxPauseSeconds
                BEGIN
                    SET @StopReason = N'database busy too long: ' + @HealthReason;
                    BREAK;
                END;
                WAITFOR DELAY '00:00:00.250';
                EXEC Job.health_check
                    @MaxActive = @HealthMaxActive,
                    @MaxLockWaits = @HealthMaxLockWaits,
                    @Busy = @Busy OUTPUT,
                    @Reason = @HealthReason OUTPUT;
                IF @Busy = 1
                    SET @LastBusyUtc = SYSUTCDATETIME();
            END;
            IF @PauseStartedUtc IS NOT NULL
            BEGIN
                SET @CyclePausedMs = DATEDIFF(MILLISECOND, @PauseStartedUtc, SYSUTCDATETIME());
                SET @PausedMs += @CyclePausedMs;
            END;
            IF @StopReason IS NOT NULL
                BREAK;

            -- One batch: the batch procedure commits its own short transaction,
            -- its lock waits bounded by LockTimeoutMs.
            SET @BatchNo += 1;
            SET @BatchStartedUtc = SYSUTCDATETIME();
            SET @Outcome = 'done';
            SET LOCK_TIMEOUT @LockTimeoutMs;
            BEGIN TRY
                EXEC @BatchProcedure
                    @BatchSize = @BatchSize,
                    @Execute = @Execute,
                    @Position = @Position OUTPUT,
                    @Rows = @BatchRows OUTPUT,
                    @Done = @Done OUTPUT,
                    @Note = @Note OUTPUT;
            END TRY
            BEGIN CATCH
                IF @@TRANCOUNT > 0
                    ROLLBACK TRANSACTION;
                IF ERROR_NUMBER() = 1222
                    SET @Outcome = 'lock_timeout';
                ELSE IF ERROR_NUMBER() = 1205
                    SET @Outcome = 'deadlock';
                ELSE
                    THROW;
            END CATCH;
            SET LOCK_TIMEOUT @CallerLockTimeout;  -- the engine's own steps keep the caller's
            SET @BatchMs = DATEDIFF(MILLISECOND, @BatchStartedUtc, SYSUTCDATETIME());
            IF @Outcome = 'done'
                SET @DeadlocksInARow = 0;
            ELSE
            BEGIN
                -- Rolled back whole: nothing moved, the position stays, the next batch tries again.
                SET @BatchRows = 0;
                SET @Done = 0;
                IF @Outcome = 'lock_timeout'
                BEGIN
                    SET @LockTimeouts += 1;
                    SET @Note = CONCAT(N'lock wait over ', @LockTimeoutMs, N' ms (LockTimeoutMs): rolled back, left for the next batch');
                END
                ELSE
                BEGIN
                    SET @DeadlocksInARow += 1;
                    IF @DeadlocksInARow <= @DeadlockRetries
                        SET @DeadlockRetried += 1;
                    SET @Note = CONCAT(N'chosen as deadlock victim: rolled back, ', CASE
                        WHEN @DeadlocksInARow > @DeadlockRetries THEN CONCAT(N'no retry left (DeadlockRetries ', @DeadlockRetries, N')')
                        ELSE CONCAT(N'retry ', @DeadlocksInARow, N' of ', @DeadlockRetries)
                    END);
                END;
            END;
            SET @RowsAffected += @BatchRows;

            IF @Execute = 'Y'
                EXEC Job.job_batch_log
                    @JobRunId = @JobRunId,
                    @BatchNo = @BatchNo,
                    @StartedUtc = @BatchStartedUtc,
                    @DurationMs = @BatchMs,
                    @BatchSize = @BatchSize,
                    @RowsAffected = @BatchRows,
                    @Note = @Note;
            ELSE
                RAISERROR (N'%s: dry run batch %d: %d rows', 0, 1, @JobName, @BatchNo, @BatchRows) WITH NOWAIT;
            IF @DeadlocksInARow > @DeadlockRetries
            BEGIN
                SET @StopReason = CONCAT(
                    N'chosen as deadlock victim ', @DeadlocksInARow, N' times in a row (DeadlockRetries ', @DeadlockRetries, N')'
                );
                BREAK;
            END;

            -- Next batch size (a rolled-back batch says nothing about it): aim at
            -- the target time, raised for time efficiency, grow at most 20% a step.
            IF @Outcome = 'done'
            BEGIN
                SET @CycleMs = DATEDIFF(MILLISECOND, @CycleStartedUtc, SYSUTCDATETIME()) - @CyclePausedMs;
                SET @SmoothedMs = CASE
                    WHEN @SmoothedMs IS NULL THEN @BatchMs
                    ELSE 0.7 * @SmoothedMs + 0.3 * @BatchMs
                END;
                SET @SmoothedOverheadMs = CASE
                    WHEN @SmoothedOverheadMs IS NULL THEN IIF(@CycleMs > @BatchMs, @CycleMs - @BatchMs, 0)
                    ELSE 0.7 * @SmoothedOverheadMs + 0.3 * IIF(@CycleMs > @BatchMs, @CycleMs - @BatchMs, 0)
                END;
                -- The duration that keeps the overhead's share at 1 - TimeEfficiencyMin,
                -- at most BatchMaxMs; never below BatchTargetMs.
                SET @TargetMs = @SmoothedOverheadMs * @TimeEfficiencyMin / (1 - @TimeEfficiencyMin);
                IF @TargetMs > @BatchMaxMs
                    SET @TargetMs = @BatchMaxMs;
                IF @TargetMs < @BatchTargetMs
                    SET @TargetMs = @BatchTargetMs;
                SET @NextBatchSize = CAST(@BatchSize * @TargetMs / CASE WHEN @SmoothedMs < 1 THEN 1 ELSE @SmoothedMs END AS int);
                IF @NextBatchSize > @BatchSize * 1.2
                    SET @NextBatchSize = CAST(@BatchSize * 1.2 AS int);
                SET @BatchSize = CASE
                    WHEN @NextBatchSize < @BatchSizeMin THEN @BatchSizeMin
                    WHEN @NextBatchSize > @BatchSizeMax THEN @BatchSizeMax
                    ELSE @NextBatchSize
                END;
            END;

            -- Leave room for other work.
            SET @SleepMs = CAST(CASE WHEN @BatchMs * @SleepFactor > 60000 THEN 60000 ELSE @BatchMs * @SleepFactor END AS int);
            IF @Done = 0 AND @SleepMs > 0
            BEGIN
                SET @Delay = DATEADD(MILLISECOND, @SleepMs, CAST(0 AS datetime));
                WAITFOR DELAY @Delay;
            END;
        END;

        ------------------------------------------------------------------------
        -- Log end
        ------------------------------------------------------------------------
        SET @Result = CASE
            WHEN @Execute = 'N' THEN 'dry_run'
            WHEN @StopReason IS NULL OR @StopReason = N'nothing to do' THEN 'succeeded'
            ELSE 'stopped'
        END;
        SET @Message = CONCAT(
            @BatchNo, N' batches',
            CASE WHEN @PausedMs > 0 THEN CONCAT(N'; paused ', @PausedMs / 1000, N' s for a busy database') END,
            CASE WHEN @LockTimeouts > 0 THEN CONCAT(N'; ', @LockTimeouts, N' left for the next batch after a lock wait over LockTimeoutMs') END,
            CASE WHEN @DeadlockRetried > 0 THEN CONCAT(N'; ', @DeadlockRetried, N' deadlock retries') END,
            N'; ' + @StopReason
        );
        IF @Execute = 'Y'
            EXEC Job.job_run_finish
                @JobRunId = @JobRunId,
                @Status = @Result,
                @RowsAffected = @RowsAffected,
                @Message = @Message;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        SET LOCK_TIMEOUT @CallerLockTimeout;
        IF @Execute = 'Y' AND @JobRunId IS NOT NULL
        BEGIN
            SET @Message = LEFT(CONCAT(
                N'Error ', ERROR_NUMBER(), N' in ', ERROR_PROCEDURE(), N' line ', ERROR_LINE(), N': ', ERROR_MESSAGE()
            ), 4000);
            EXEC Job.job_run_finish
                @JobRunId = @JobRunId,
                @Status = 'failed',
                @RowsAffected = @RowsAffected,
                @Message = @Message;
        END;
        THROW;
    END CATCH;
END;
