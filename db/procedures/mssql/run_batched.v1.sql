-- Job.run_batched, version 1.
-- The engine every batched job runs on (archive, purges, clean-ups). It calls
-- the job's batch procedure again and again, each call one short transaction,
-- until the procedure says it is done, and in between:
--   * reads the job's settings (Job.batch_settings_get) before every batch;
--   * stops starting batches after the time limit;
--   * pauses while Job.health_check finds the database busy, stays paused for
--     HealthHoldSeconds after the last busy look, and stops cleanly after
--     HealthMaxPauseSeconds in one pause;
--   * sizes the next batch so it takes about BatchTargetMs (smoothed, at most
--     20% larger a step, between BatchSizeMin and BatchSizeMax);
--   * sleeps SleepFactor times the batch's duration, leaving room for others;
--   * logs every batch in Ops.JobRunBatch.
-- A cheap probe comes first: with nothing to do a run costs milliseconds.
-- @Execute = 'N' is a dry run: the batch procedure only counts what it would
-- do, and nothing is written, not even the job-run row.
--
-- A batch procedure has this contract:
--   Job.<job>_batch @BatchSize int, @Execute char(1),
--       @Position bigint OUTPUT (keyset position, NULL at the start),
--       @Rows int OUTPUT, @Done bit OUTPUT, @Note nvarchar(400) OUTPUT
CREATE OR ALTER PROCEDURE Job.run_batched
    @JobName varchar(100),
    @BatchProcedure nvarchar(256),
    @Execute char(1) = 'Y',
    @TimeLimitSeconds int = NULL,
    @TriggeredBy varchar(20) = 'manual',
    @Host nvarchar(128) = NULL,
    @JobRunId bigint = NULL OUTPUT,
    @Result varchar(20) = NULL OUTPUT,
    @RowsAffected bigint = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Parameters nvarchar(4000);
    DECLARE @Message nvarchar(4000);
    DECLARE @StopReason nvarchar(400);
    DECLARE @RunStartedUtc datetime2(3) = SYSUTCDATETIME();
    DECLARE @BatchStartedUtc datetime2(3);
    DECLARE @PauseStartedUtc datetime2(3);
    DECLARE @LastBusyUtc datetime2(3);
    DECLARE @PausedMs int = 0;
    DECLARE @BatchNo int = 0;
    DECLARE @BatchSize int;
    DECLARE @NextBatchSize int;
    DECLARE @BatchRows int;
    DECLARE @BatchMs int;
    DECLARE @SmoothedMs decimal(18, 3);
    DECLARE @SleepMs int;
    DECLARE @Delay datetime;
    DECLARE @Position bigint;
    DECLARE @ProbePosition bigint;
    DECLARE @ProbeRows int;
    DECLARE @Done bit = 0;
    DECLARE @Note nvarchar(400);
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

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += N'Job.run_batched must not run inside a transaction: every batch commits on its own. ';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @JobName IS NULL OR @JobName = '' OR @JobName COLLATE Latin1_General_BIN2 LIKE '%[^a-z0-9_]%'
        SET @Errors += N'The value for the parameter @JobName is not supported: give the job''s name in lower-case letters, digits and _. ';
    IF OBJECT_ID(@BatchProcedure, 'P') IS NULL OR OBJECT_SCHEMA_NAME(OBJECT_ID(@BatchProcedure, 'P')) <> 'Job'
        SET @Errors += N'The value for the parameter @BatchProcedure is not supported: name a procedure in schema Job. ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (run) or N (dry run). ';
    IF @TimeLimitSeconds <= 0 OR @TimeLimitSeconds > 604800
        SET @Errors += N'The value for the parameter @TimeLimitSeconds is not supported: give 1 to 604800 seconds (7 days), or NULL for the setting. ';
    IF @TriggeredBy IS NULL OR @TriggeredBy NOT IN ('orchestrator', 'agent', 'manual', 'demo', 'test')
        SET @Errors += N'The value for the parameter @TriggeredBy is not supported: use orchestrator, agent, manual, demo or test. ';

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
                @HealthMaxPauseSeconds = @HealthMaxPauseSeconds OUTPUT;
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
                SET @PausedMs += DATEDIFF(MILLISECOND, @PauseStartedUtc, SYSUTCDATETIME());
            IF @StopReason IS NOT NULL
                BREAK;

            -- One batch: the batch procedure commits its own short transaction.
            SET @BatchNo += 1;
            SET @BatchStartedUtc = SYSUTCDATETIME();
            EXEC @BatchProcedure
                @BatchSize = @BatchSize,
                @Execute = @Execute,
                @Position = @Position OUTPUT,
                @Rows = @BatchRows OUTPUT,
                @Done = @Done OUTPUT,
                @Note = @Note OUTPUT;
            SET @BatchMs = DATEDIFF(MILLISECOND, @BatchStartedUtc, SYSUTCDATETIME());
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

            -- Next batch size: aim at the target time, grow at most 20% a step.
            SET @SmoothedMs = CASE
                WHEN @SmoothedMs IS NULL THEN @BatchMs
                ELSE 0.7 * @SmoothedMs + 0.3 * @BatchMs
            END;
            SET @NextBatchSize = CAST(@BatchSize * @BatchTargetMs / CASE WHEN @SmoothedMs < 1 THEN 1 ELSE @SmoothedMs END AS int);
            IF @NextBatchSize > @BatchSize * 1.2
                SET @NextBatchSize = CAST(@BatchSize * 1.2 AS int);
            SET @BatchSize = CASE
                WHEN @NextBatchSize < @BatchSizeMin THEN @BatchSizeMin
                WHEN @NextBatchSize > @BatchSizeMax THEN @BatchSizeMax
                ELSE @NextBatchSize
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
