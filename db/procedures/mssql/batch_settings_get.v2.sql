-- Job.batch_settings_get, version 2.
-- Reads the settings a batched job obeys from Ops.Setting: the job's own row
-- where it has one, else the '*' row. Called before every batch, so a DBA can
-- slow a running job down with an UPDATE. A missing or malformed setting stops
-- the job with a message naming it.
-- Version 2 adds LockTimeoutMs, DeadlockRetries, TimeEfficiencyMin and
-- BatchMaxMs (Job.run_batched's header says what they do) and caps
-- BatchSizeMax at 4,000.
--
-- Parsing is strict and the same on both engines: a whole number is an
-- optional minus and 1 to 9 digits, a decimal adds an optional point and 1 to
-- 3 digits; nothing else (no spaces, no plus sign, no '.5', no exponent).
-- SQL Server's TRY_CONVERT would take ' 200', '+5' and '.5', so this procedure
-- checks the same pattern (binary collation, no trailing blanks) before it converts.
--
-- BatchSizeMax is at most 4,000: SQL Server tries lock escalation when one
-- statement holds 5,000 locks on one index or table (and again every 1,250
-- locks after), and a batch touches each row in the table and in every index
-- it changes; 4,000 keeps a batch clear of the threshold with room for the
-- page and key locks around the rows. The cap is the same on PostgreSQL (no
-- escalation there) so the two engines run the same batches.
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
    @HealthMaxPauseSeconds int = NULL OUTPUT,
    @LockTimeoutMs int = NULL OUTPUT,
    @DeadlockRetries int = NULL OUTPUT,
    @TimeEfficiencyMin decimal(9, 3) = NULL OUTPUT,
    @BatchMaxMs int = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;

    DECLARE @Errors nvarchar(2048) = N'';

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @JobName IS NULL OR @JobName = '' OR LEN(@JobName) > 100
        THROW 50001, N'The value for the parameter @JobName is not supported: give the job''s name, at most 100 characters. ', 1;

    ----------------------------------------------------------------------------
    -- Read: the job's own value wins over '*'
    ----------------------------------------------------------------------------
    WITH resolved AS (
        SELECT
            s.Name,
            s.Value COLLATE Latin1_General_BIN2 AS Value,
            ROW_NUMBER() OVER (PARTITION BY s.Name ORDER BY CASE WHEN s.JobName = '*' THEN 1 ELSE 0 END) AS pick
        FROM Ops.Setting AS s
        WHERE s.JobName IN (@JobName, '*')
    ),

    unsigned AS (
        SELECT
            r.Name,
            r.Value,
            CASE WHEN r.Value LIKE '-%' THEN SUBSTRING(r.Value, 2, 400) ELSE r.Value END AS Unsigned
        FROM resolved AS r
        WHERE r.pick = 1
    ),

    parts AS (
        SELECT
            u.Name,
            u.Value,
            u.Unsigned,
            CHARINDEX('.', u.Unsigned) AS Dot,
            CASE WHEN CHARINDEX('.', u.Unsigned) = 0 THEN u.Unsigned ELSE LEFT(u.Unsigned, CHARINDEX('.', u.Unsigned) - 1) END AS Whole,
            CASE WHEN CHARINDEX('.', u.Unsigned) = 0 THEN '' ELSE SUBSTRING(u.Unsigned, CHARINDEX('.', u.Unsigned) + 1, 400) END AS Fraction
        FROM unsigned AS u
    ),

    parsed AS (
        -- Strict numbers, as the PostgreSQL twin's patterns ^-?[0-9]{1,9}$ and
        -- ^-?[0-9]{1,6}(\.[0-9]{1,3})?$: the last character must be a digit
        -- (LIKE ignores trailing blanks, RIGHT does not), then the parts are
        -- checked for digits only before anything is converted.
        SELECT
            p.Name,
            CASE
                WHEN RIGHT(p.Value, 1) COLLATE Latin1_General_BIN2 LIKE '[0-9]' AND p.Dot = 0 AND p.Unsigned <> ''
                    AND p.Unsigned COLLATE Latin1_General_BIN2 NOT LIKE '%[^0-9]%' AND LEN(p.Unsigned) <= 9
                    THEN TRY_CONVERT(int, p.Value)  -- TRY_: CASE order is not promised inside a plan
            END AS IntValue,
            CASE
                WHEN RIGHT(p.Value, 1) COLLATE Latin1_General_BIN2 LIKE '[0-9]' AND p.Whole <> ''
                    AND p.Whole COLLATE Latin1_General_BIN2 NOT LIKE '%[^0-9]%' AND LEN(p.Whole) <= 6
                    AND (p.Dot = 0 OR (p.Fraction <> '' AND p.Fraction COLLATE Latin1_General_BIN2 NOT LIKE '%[^0-9]%' AND LEN(p.Fraction) <= 3))
                    THEN TRY_CONVERT(decimal(9, 3), p.Value)
            END AS DecimalValue
        FROM parts AS p
    )

    SELECT
        @BatchTargetMs = MAX(CASE WHEN x.Name = 'BatchTargetMs' THEN x.IntValue END),
        @BatchSizeStart = MAX(CASE WHEN x.Name = 'BatchSizeStart' THEN x.IntValue END),
        @BatchSizeMin = MAX(CASE WHEN x.Name = 'BatchSizeMin' THEN x.IntValue END),
        @BatchSizeMax = MAX(CASE WHEN x.Name = 'BatchSizeMax' THEN x.IntValue END),
        @SleepFactor = MAX(CASE WHEN x.Name = 'SleepFactor' THEN x.DecimalValue END),
        @TimeLimitSeconds = MAX(CASE WHEN x.Name = 'TimeLimitSeconds' THEN x.IntValue END),
        @HealthMaxActive = MAX(CASE WHEN x.Name = 'HealthMaxActive' THEN x.IntValue END),
        @HealthMaxLockWaits = MAX(CASE WHEN x.Name = 'HealthMaxLockWaits' THEN x.IntValue END),
        @HealthHoldSeconds = MAX(CASE WHEN x.Name = 'HealthHoldSeconds' THEN x.IntValue END),
        @HealthMaxPauseSeconds = MAX(CASE WHEN x.Name = 'HealthMaxPauseSeconds' THEN x.IntValue END),
        @LockTimeoutMs = MAX(CASE WHEN x.Name = 'LockTimeoutMs' THEN x.IntValue END),
        @DeadlockRetries = MAX(CASE WHEN x.Name = 'DeadlockRetries' THEN x.IntValue END),
        @TimeEfficiencyMin = MAX(CASE WHEN x.Name = 'TimeEfficiencyMin' THEN x.DecimalValue END),
        @BatchMaxMs = MAX(CASE WHEN x.Name = 'BatchMaxMs' THEN x.IntValue END)
    FROM parsed AS x;

    ----------------------------------------------------------------------------
    -- Check values
    ----------------------------------------------------------------------------
    -- Upper limits keep the engine's millisecond arithmetic inside int.
    IF @BatchTargetMs IS NULL OR @BatchTargetMs <= 0 OR @BatchTargetMs > 60000
        SET @Errors += N'Setting BatchTargetMs (Ops.Setting) must be a whole number of milliseconds from 1 to 60000. ';
    IF @BatchSizeMin IS NULL OR @BatchSizeMin <= 0
        SET @Errors += N'Setting BatchSizeMin (Ops.Setting) is missing or not a positive whole number. ';
    IF @BatchSizeMax IS NULL OR @BatchSizeMax < @BatchSizeMin OR @BatchSizeMax > 4000
        SET @Errors += N'Setting BatchSizeMax (Ops.Setting) must be a whole number from BatchSizeMin to 4000 (clear of lock escalation at 5000). ';
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
    -- At least 1: 0 would mean "no wait" on SQL Server but "wait forever" on PostgreSQL.
    IF @LockTimeoutMs IS NULL OR @LockTimeoutMs < 1 OR @LockTimeoutMs > 60000
        SET @Errors += N'Setting LockTimeoutMs (Ops.Setting) must be a whole number of milliseconds from 1 to 60000. ';
    IF @DeadlockRetries IS NULL OR @DeadlockRetries < 0 OR @DeadlockRetries > 100
        SET @Errors += N'Setting DeadlockRetries (Ops.Setting) must be a whole number from 0 to 100. ';
    IF @TimeEfficiencyMin IS NULL OR @TimeEfficiencyMin < 0 OR @TimeEfficiencyMin > 0.95
        SET @Errors += N'Setting TimeEfficiencyMin (Ops.Setting) must be a number from 0 (off) to 0.95. ';
    -- BatchMaxMs bounds how far time efficiency raises the target, not BatchTargetMs itself.
    IF @BatchMaxMs IS NULL OR @BatchMaxMs < 1 OR @BatchMaxMs > 60000
        SET @Errors += N'Setting BatchMaxMs (Ops.Setting) must be a whole number of milliseconds from 1 to 60000. ';

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
