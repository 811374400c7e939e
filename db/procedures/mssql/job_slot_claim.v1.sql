-- Job.job_slot_claim, version 1.
-- Takes one slot of a job's timetable for the caller: exactly one scheduler
-- (of two orchestrators, SQL Server Agent or pg_cron) gets @Result = 'claimed'
-- for a job and slot, by the primary key of Ops.JobSlot, even when the first
-- run has ended before another scheduler looks (the job lock only stops two
-- runs at the same time). The others get 'taken' and start nothing.
-- With @Fallback = 'Y' (the fallback schedulers) the slot is only taken when
-- no orchestrator's heartbeat is younger than @HeartbeatSeconds (NULL: the
-- setting FallbackAfterSeconds); otherwise @Result = 'orchestrator_alive'.
-- Claims older than seven days of the same job are removed on the way.
-- @Result = 'first' is a claim too: the job had no claim at all (a new
-- database, a new job, or one whose claims are all older than seven days), so
-- a slot missed before it is not recorded as missed.
--
-- Differences from the PostgreSQL twin, one line each:
--   * Digit checks are binary LIKEs (COLLATE Latin1_General_BIN2: ASCII digits only); the twin: ASCII patterns.
--   * INSERT ... WHERE NOT EXISTS under UPDLOCK, HOLDLOCK in one transaction; the twin: INSERT ... ON CONFLICT DO NOTHING.
CREATE OR ALTER PROCEDURE Job.job_slot_claim
    @JobName varchar(101),
    @SlotUtc datetime2(3),
    @ClaimedBy varchar(20) = 'orchestrator',
    @Host nvarchar(129) = NULL,
    @Fallback char(1) = 'N',
    @HeartbeatSeconds int = NULL,
    @Result varchar(20) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @NowUtc datetime2(3) = SYSUTCDATETIME();
    DECLARE @Setting nvarchar(400);
    DECLARE @Threshold int = @HeartbeatSeconds;
    DECLARE @Rows int;
    DECLARE @First bit;

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @JobName IS NULL OR @JobName = '' OR @JobName COLLATE Latin1_General_BIN2 LIKE '%[^a-z0-9_]%' OR LEN(@JobName) > 100
        SET @Errors += N'The value for the parameter @JobName is not supported: give the job''s name in lower-case letters, digits and _ (up to 100). ';
    IF @SlotUtc IS NULL
        SET @Errors += N'The value for the parameter @SlotUtc is not supported: give the slot''s time in UTC. ';
    IF @ClaimedBy IS NULL OR @ClaimedBy NOT IN ('orchestrator', 'agent', 'manual', 'demo', 'test')
        SET @Errors += N'The value for the parameter @ClaimedBy is not supported: use orchestrator, agent, manual, demo or test. ';
    IF LEN(@Host) > 128
        SET @Errors += N'The value for the parameter @Host is not supported: give at most 128 characters. ';
    IF @Fallback IS NULL OR @Fallback NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Fallback is not supported: use Y (a fallback scheduler) or N. ';
    IF @HeartbeatSeconds <= 0 OR @HeartbeatSeconds > 86400
        SET @Errors += N'The value for the parameter @HeartbeatSeconds is not supported: give 1 to 86400 seconds, or NULL for the setting. ';
    IF @Fallback = 'Y' AND @HeartbeatSeconds IS NULL
    BEGIN
        SELECT TOP (1) @Setting = s.Value
        FROM Ops.Setting AS s
        WHERE s.Name = 'FallbackAfterSeconds' AND s.JobName IN (@JobName, '*')
        ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END;
        IF @Setting IS NULL OR @Setting = N'' OR @Setting COLLATE Latin1_General_BIN2 LIKE N'%[^0-9]%' OR LEN(@Setting) > 5
            OR TRY_CAST(@Setting AS int) NOT BETWEEN 1 AND 86400
            SET @Errors += N'Setting FallbackAfterSeconds (Ops.Setting) must be a whole number of seconds from 1 to 86400. ';
        ELSE
            SET @Threshold = CAST(@Setting AS int);
    END;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- A fallback scheduler stands down while an orchestrator beats
    ----------------------------------------------------------------------------
    IF @Fallback = 'Y' AND EXISTS (
        SELECT 1 FROM Ops.Heartbeat AS h
        WHERE h.BeatUtc > DATEADD(SECOND, -@Threshold, @NowUtc)
    )
    BEGIN
        SET @Result = 'orchestrator_alive';
        RETURN;
    END;

    ----------------------------------------------------------------------------
    -- Take the slot (old claims of this job go first)
    ----------------------------------------------------------------------------
    BEGIN TRY
        BEGIN TRANSACTION;
        DELETE FROM Ops.JobSlot
        WHERE JobName = @JobName AND SlotUtc < DATEADD(DAY, -7, @NowUtc);

        SET @First = CASE
            WHEN EXISTS (SELECT 1 FROM Ops.JobSlot WITH (UPDLOCK, HOLDLOCK) WHERE JobName = @JobName) THEN 0
            ELSE 1
        END;
        INSERT INTO Ops.JobSlot (JobName, SlotUtc, ClaimedBy, Host, ClaimedUtc)
        SELECT @JobName, @SlotUtc, @ClaimedBy, COALESCE(@Host, N'unknown'), @NowUtc
        WHERE NOT EXISTS (
            SELECT 1 FROM Ops.JobSlot WITH (UPDLOCK, HOLDLOCK)
            WHERE JobName = @JobName AND SlotUtc = @SlotUtc
        );
        SET @Rows = @@ROWCOUNT;
        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;

    SET @Result = CASE WHEN @Rows = 0 THEN 'taken' WHEN @First = 1 THEN 'first' ELSE 'claimed' END;
END;
