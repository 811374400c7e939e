-- Job.fallback_due, version 1.
-- The fallback schedulers' gate (SQL Server Agent, pg_cron: db/agent/). Each
-- of their steps calls it, then runs the job's procedure only when @Due = 'Y':
--   * the job's current slot: for an interval job (@EverySeconds) the
--     multiple of the interval since the epoch in UTC, as the orchestrator
--     counts; for a daily job (@DailyAt, HH:MM Danish time) today's local time,
--     due from that minute for 15 minutes (the schedulers call daily jobs every
--     hour at that minute, so the server's own time zone does not matter; a
--     time inside the spring-forward gap is not run by the fallback that day);
--   * no orchestrator heartbeat younger than @HeartbeatSeconds (NULL: the
--     setting FallbackAfterSeconds, default 300): otherwise @Reason
--     'orchestrator_alive' and nothing happens, not even a row;
--   * the slot not yet taken by anyone (Job.job_slot_claim); a stop request
--     left for the job by a killed orchestrator is cleared first.
-- It never runs the job itself: PostgreSQL cannot COMMIT inside a procedure
-- called dynamically, so the scheduler's step names the job's procedure (here
-- too: no dynamic SQL).
--
-- Differences from the PostgreSQL twin, one line each:
--   * Digit checks are binary LIKEs (COLLATE Latin1_General_BIN2: ASCII digits only); the twin: ASCII patterns.
--   * Danish time through AT TIME ZONE 'Romance Standard Time' (Windows' zone for Copenhagen); the twin: the IANA zone Europe/Copenhagen.
CREATE OR ALTER PROCEDURE Job.fallback_due
    @JobName varchar(101),
    @EverySeconds int = NULL,
    @DailyAt varchar(5) = NULL,
    @Host nvarchar(129) = NULL,
    @HeartbeatSeconds int = NULL,
    @Due char(1) = NULL OUTPUT,
    @Reason varchar(40) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @NowUtc datetime2(3) = SYSUTCDATETIME();
    DECLARE @NowLocal datetime2(3);
    DECLARE @SlotLocal datetime2(3);
    DECLARE @SlotUtc datetime2(3);
    DECLARE @Claim varchar(20);
    DECLARE @Stop varchar(20);
    DECLARE @Fallback nvarchar(129) = COALESCE(@Host, N'fallback');

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @JobName IS NULL OR @JobName = '' OR @JobName COLLATE Latin1_General_BIN2 LIKE '%[^a-z0-9_]%' OR LEN(@JobName) > 100
        SET @Errors += N'The value for the parameter @JobName is not supported: give the job''s name in lower-case letters, digits and _ (up to 100). ';
    ELSE IF OBJECT_ID(N'Job.' + @JobName, N'P') IS NULL
        SET @Errors += CONCAT(N'The value for the parameter @JobName is not supported: there is no job procedure Job.', @JobName, N'. ');
    IF (@EverySeconds IS NULL AND @DailyAt IS NULL) OR (@EverySeconds IS NOT NULL AND @DailyAt IS NOT NULL)
        SET @Errors += N'The value for the parameter @EverySeconds is not supported: give either @EverySeconds or @DailyAt. ';
    IF @EverySeconds <= 0 OR @EverySeconds > 86400 OR 86400 % NULLIF(@EverySeconds, 0) <> 0
        SET @Errors += N'The value for the parameter @EverySeconds is not supported: give 1 to 86400 seconds dividing a day. ';
    IF @DailyAt COLLATE Latin1_General_BIN2 NOT LIKE '[0-2][0-9]:[0-5][0-9]' OR LEFT(@DailyAt, 2) > '23'
        SET @Errors += N'The value for the parameter @DailyAt is not supported: give HH:MM, Danish time. ';
    IF LEN(@Host) > 128
        SET @Errors += N'The value for the parameter @Host is not supported: give at most 128 characters. ';
    IF @HeartbeatSeconds <= 0 OR @HeartbeatSeconds > 86400
        SET @Errors += N'The value for the parameter @HeartbeatSeconds is not supported: give 1 to 86400 seconds, or NULL for the setting. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- The current slot
    ----------------------------------------------------------------------------
    IF @EverySeconds IS NOT NULL
        SET @SlotUtc = DATEADD(
            SECOND,
            CAST(DATEDIFF_BIG(SECOND, '19700101', @NowUtc) / @EverySeconds * @EverySeconds % 86400 AS int),
            DATEADD(DAY, CAST(DATEDIFF_BIG(SECOND, '19700101', @NowUtc) / @EverySeconds * @EverySeconds / 86400 AS int), CAST('19700101' AS datetime2(3)))
        );
    ELSE
    BEGIN
        SET @NowLocal = CAST(@NowUtc AT TIME ZONE 'UTC' AT TIME ZONE 'Romance Standard Time' AS datetime2(3));
        SET @SlotLocal = DATEADD(
            MINUTE, CAST(LEFT(@DailyAt, 2) AS int) * 60 + CAST(RIGHT(@DailyAt, 2) AS int), CAST(CAST(@NowLocal AS date) AS datetime2(3))
        );
        IF @NowLocal < @SlotLocal OR @NowLocal >= DATEADD(MINUTE, 15, @SlotLocal)
        BEGIN
            SET @Due = 'N';
            SET @Reason = 'not_due';
            RETURN;
        END;
        SET @SlotUtc = CAST(@SlotLocal AT TIME ZONE 'Romance Standard Time' AT TIME ZONE 'UTC' AS datetime2(3));
    END;

    ----------------------------------------------------------------------------
    -- Heartbeat and claim
    ----------------------------------------------------------------------------
    EXEC Job.job_slot_claim
        @JobName = @JobName,
        @SlotUtc = @SlotUtc,
        @ClaimedBy = 'agent',
        @Host = @Fallback,
        @Fallback = 'Y',
        @HeartbeatSeconds = @HeartbeatSeconds,
        @Result = @Claim OUTPUT;
    IF @Claim NOT IN ('claimed', 'first')
    BEGIN
        SET @Due = 'N';
        SET @Reason = @Claim;
        RETURN;
    END;
    EXEC Job.job_stop_request @JobName = @JobName, @Action = 'clear', @Result = @Stop OUTPUT;

    SET @Due = 'Y';
    SET @Reason = 'claimed';
END;
