-- Job.batch_settings_get, version 1.
-- Reads the settings a batched job obeys from Ops.Setting: the job's own row
-- where it has one, else the '*' row. Called before every batch, so a DBA can
-- slow a running job down with an UPDATE. A missing or malformed setting stops
-- the job with a message naming it.
CREATE OR ALTER PROCEDURE Job.batch_settings_get
    @JobName varchar(100),
    @BatchTargetMs int = NULL OUTPUT,
    @BatchSizeStart int = NULL OUTPUT,
    @BatchSizeMin int = NULL OUTPUT,
    @BatchSizeMax int = NULL OUTPUT,
    @SleepFactor decimal(9, 3) = NULL OUTPUT,
    @TimeLimitSeconds int = NULL OUTPUT,
    @HealthMaxActive int = NULL OUTPUT,
    @HealthMaxLockWaits int = NULL OUTPUT,
    @HealthHoldSeconds int = NULL OUTPUT,
    @HealthMaxPauseSeconds int = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;

    DECLARE @Errors nvarchar(2048) = N'';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @JobName IS NULL OR @JobName = ''
        THROW 50001, N'The value for the parameter @JobName is not supported: give the job''s name. ', 1;

    ----------------------------------------------------------------------------
    -- Read: the job's own value wins over '*'
    ----------------------------------------------------------------------------
    WITH resolved AS (
        SELECT
            s.Name,
            s.Value,
            ROW_NUMBER() OVER (PARTITION BY s.Name ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END) AS pick
        FROM Ops.Setting AS s
        WHERE s.JobName IN (@JobName, '*')
    )

    SELECT
        @BatchTargetMs = MAX(CASE WHEN r.Name = 'BatchTargetMs' THEN TRY_CONVERT(int, r.Value) END),
        @BatchSizeStart = MAX(CASE WHEN r.Name = 'BatchSizeStart' THEN TRY_CONVERT(int, r.Value) END),
        @BatchSizeMin = MAX(CASE WHEN r.Name = 'BatchSizeMin' THEN TRY_CONVERT(int, r.Value) END),
        @BatchSizeMax = MAX(CASE WHEN r.Name = 'BatchSizeMax' THEN TRY_CONVERT(int, r.Value) END),
        @SleepFactor = MAX(CASE WHEN r.Name = 'SleepFactor' THEN TRY_CONVERT(decimal(9, 3), r.Value) END),
        @TimeLimitSeconds = MAX(CASE WHEN r.Name = 'TimeLimitSeconds' THEN TRY_CONVERT(int, r.Value) END),
        @HealthMaxActive = MAX(CASE WHEN r.Name = 'HealthMaxActive' THEN TRY_CONVERT(int, r.Value) END),
        @HealthMaxLockWaits = MAX(CASE WHEN r.Name = 'HealthMaxLockWaits' THEN TRY_CONVERT(int, r.Value) END),
        @HealthHoldSeconds = MAX(CASE WHEN r.Name = 'HealthHoldSeconds' THEN TRY_CONVERT(int, r.Value) END),
        @HealthMaxPauseSeconds = MAX(CASE WHEN r.Name = 'HealthMaxPauseSeconds' THEN TRY_CONVERT(int, r.Value) END)
    FROM resolved AS r
    WHERE r.pick = 1;

    ----------------------------------------------------------------------------
    -- Check values
    ----------------------------------------------------------------------------
    -- Upper limits keep the engine's millisecond arithmetic inside int.
    IF @BatchTargetMs IS NULL OR @BatchTargetMs <= 0 OR @BatchTargetMs > 60000
        SET @Errors += N'Setting BatchTargetMs (Ops.Setting) must be a whole number of milliseconds from 1 to 60000. ';
    IF @BatchSizeMin IS NULL OR @BatchSizeMin <= 0
        SET @Errors += N'Setting BatchSizeMin (Ops.Setting) is missing or not a positive whole number. ';
    IF @BatchSizeMax IS NULL OR @BatchSizeMax < @BatchSizeMin OR @BatchSizeMax >= 5000
        SET @Errors += N'Setting BatchSizeMax (Ops.Setting) must be a whole number from BatchSizeMin to 4999 (lock escalation starts at 5000). ';
    IF @BatchSizeStart IS NULL OR @BatchSizeStart <= 0
        SET @Errors += N'Setting BatchSizeStart (Ops.Setting) is missing or not a positive whole number. ';
    IF @SleepFactor IS NULL OR @SleepFactor < 0 OR @SleepFactor > 10
        SET @Errors += N'Setting SleepFactor (Ops.Setting) must be a number from 0 to 10. ';
    IF @TimeLimitSeconds IS NULL OR @TimeLimitSeconds <= 0 OR @TimeLimitSeconds > 604800
        SET @Errors += N'Setting TimeLimitSeconds (Ops.Setting) must be a whole number of seconds from 1 to 604800 (7 days). ';
    IF @HealthMaxActive IS NULL OR @HealthMaxActive < 0
        SET @Errors += N'Setting HealthMaxActive (Ops.Setting) is missing or negative. ';
    IF @HealthMaxLockWaits IS NULL OR @HealthMaxLockWaits < 0
        SET @Errors += N'Setting HealthMaxLockWaits (Ops.Setting) is missing or negative. ';
    IF @HealthHoldSeconds IS NULL OR @HealthHoldSeconds < 0 OR @HealthHoldSeconds > 86400
        SET @Errors += N'Setting HealthHoldSeconds (Ops.Setting) must be a whole number of seconds from 0 to 86400. ';
    IF @HealthMaxPauseSeconds IS NULL OR @HealthMaxPauseSeconds <= 0 OR @HealthMaxPauseSeconds > 86400
        SET @Errors += N'Setting HealthMaxPauseSeconds (Ops.Setting) must be a whole number of seconds from 1 to 86400. ';

    -- BatchSizeStart is clamped, not refused: lowering BatchSizeMax to slow a
    -- running job down must not fail it.
    IF @Errors = N''
        SET @BatchSizeStart = CASE
            WHEN @BatchSizeStart < @BatchSizeMin THEN @BatchSizeMin
            WHEN @BatchSizeStart > @BatchSizeMax THEN @BatchSizeMax
            ELSE @BatchSizeStart
        END;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
    BEGIN
        SET @Errors = N'Job ' + @JobName + N': ' + @Errors;
        THROW 50002, @Errors, 1;
    END;
END;
