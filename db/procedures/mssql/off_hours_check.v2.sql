-- Job.off_hours_check, version 2.
-- Whether @NowUtc (NULL: the clock) lies in the off-hours window of the
-- inclusion check's settings, judged in Europe/Copenhagen local time:
--   * OffHoursStart to OffHoursEnd every day (default 22:00-06:00; a window
--     may wrap midnight);
--   * all of Saturday and Sunday when OffHoursWeekends is Y;
--   * new in version 2: all of a Danish public holiday (helligdag): Nytårsdag
--     1 January, Skærtorsdag, Langfredag, Påskedag, 2. Påskedag, Kristi
--     Himmelfartsdag, Pinsedag, 2. Pinsedag (Easter from Job.easter_sunday),
--     Juledag 25 and 2. Juledag 26 December; Store Bededag (the fourth Friday
--     after Easter) only in years up to 2023 (abolished from 2024);
--   * all of Grundlovsdag 5 June, Juleaftensdag 24 December and
--     Nytårsaftensdag 31 December when OffHoursClosingDays is Y (the default):
--     no public holidays, but most clinics close (our choice, docs/engine.md).
-- A Relevant-list change that touches many patients, and a full recompute,
-- wait for this window (known problem 4). @LocalTime is the local time it
-- judged, for notes; @Holiday names the holiday or closing day of that local
-- date when it counted (NULL otherwise).
--
-- Differences from the PostgreSQL twin, one line each:
--   * Digit checks are binary LIKEs (COLLATE Latin1_General_BIN2: ASCII digits only); the twin: ASCII patterns.
--   * The time zone is 'Romance Standard Time' (Windows' name for Europe/Copenhagen); the twin: the IANA zone.
--   * The weekday is counted from a known Monday, so SET DATEFIRST does not matter; the twin: extract(isodow).
--   * The holiday names spell å and æ as NCHAR(229) and NCHAR(230): sqlcmd reads a UTF-8 file without BOM in the client's code page.
CREATE OR ALTER PROCEDURE Job.off_hours_check
    @NowUtc datetime2(3) = NULL,
    @OffHours bit = NULL OUTPUT,
    @LocalTime varchar(30) = NULL OUTPUT,
    @Holiday nvarchar(40) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET DEADLOCK_PRIORITY LOW;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Now datetime2(3) = COALESCE(@NowUtc, SYSUTCDATETIME());
    DECLARE @Local datetime2(3);
    DECLARE @Day date;
    DECLARE @Easter date;
    DECLARE @Year int;
    DECLARE @Start nvarchar(400);
    DECLARE @End nvarchar(400);
    DECLARE @Weekends nvarchar(400);
    DECLARE @ClosingDays nvarchar(400);
    DECLARE @Clock time(3);
    DECLARE @StartTime time(3);
    DECLARE @EndTime time(3);

    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters (and the settings they depend on)
    ----------------------------------------------------------------------------
    IF @NowUtc IS NOT NULL AND (@NowUtc < '2000-01-01' OR @NowUtc > '9000-01-01')
        SET @Errors += N'The value for the parameter @NowUtc is not supported: give NULL (the clock) or a UTC time after 2000. ';
    SELECT
        @Start = MAX(CASE WHEN s.Name = 'OffHoursStart' THEN s.Value END),
        @End = MAX(CASE WHEN s.Name = 'OffHoursEnd' THEN s.Value END),
        @Weekends = MAX(CASE WHEN s.Name = 'OffHoursWeekends' THEN s.Value END),
        @ClosingDays = MAX(CASE WHEN s.Name = 'OffHoursClosingDays' THEN s.Value END)
    FROM Ops.Setting AS s
    WHERE s.JobName = 'check_inclusion';
    IF @Start COLLATE Latin1_General_BIN2 LIKE N'[0-2][0-9]:[0-5][0-9]' AND LEFT(@Start, 2) <= N'23'
        SET @StartTime = TRY_CAST(@Start AS time(3));
    IF @StartTime IS NULL
        SET @Errors += N'Setting OffHoursStart (Ops.Setting, job check_inclusion) is missing or not a local time HH:MM. ';
    IF @End COLLATE Latin1_General_BIN2 LIKE N'[0-2][0-9]:[0-5][0-9]' AND LEFT(@End, 2) <= N'23'
        SET @EndTime = TRY_CAST(@End AS time(3));
    IF @EndTime IS NULL
        SET @Errors += N'Setting OffHoursEnd (Ops.Setting, job check_inclusion) is missing or not a local time HH:MM. ';
    IF @Weekends IS NULL OR @Weekends NOT IN (N'Y', N'N')
        SET @Errors += N'Setting OffHoursWeekends (Ops.Setting, job check_inclusion) is missing or not Y or N. ';
    IF @ClosingDays IS NULL OR @ClosingDays NOT IN (N'Y', N'N')
        SET @Errors += N'Setting OffHoursClosingDays (Ops.Setting, job check_inclusion) is missing or not Y or N. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    SET @Local = CAST(@Now AT TIME ZONE 'UTC' AT TIME ZONE 'Romance Standard Time' AS datetime2(3));
    SET @Clock = CAST(@Local AS time(3));
    SET @Day = CAST(@Local AS date);
    SET @Year = YEAR(@Day);
    EXEC Job.easter_sunday @Year = @Year, @EasterSunday = @Easter OUTPUT;
    -- The weekday in English, as the twin's to_char(..., 'Dy'), whatever the session's SET LANGUAGE.
    SET @LocalTime = CONVERT(varchar(16), @Local, 120) + ' '
        + SUBSTRING('MonTueWedThuFriSatSun', 3 * (DATEDIFF(DAY, '1900-01-01', @Local) % 7) + 1, 3);
    -- The holiday or closing day of the local date, if any.
    SET @Holiday = CASE
        WHEN MONTH(@Day) = 1 AND DAY(@Day) = 1 THEN N'Nyt' + NCHAR(229) + N'rsdag'
        WHEN @Day = DATEADD(DAY, -3, @Easter) THEN N'Sk' + NCHAR(230) + N'rtorsdag'
        WHEN @Day = DATEADD(DAY, -2, @Easter) THEN N'Langfredag'
        WHEN @Day = @Easter THEN N'P' + NCHAR(229) + N'skedag'
        WHEN @Day = DATEADD(DAY, 1, @Easter) THEN N'2. P' + NCHAR(229) + N'skedag'
        WHEN @Day = DATEADD(DAY, 26, @Easter) AND YEAR(@Day) <= 2023 THEN N'Store Bededag'
        WHEN @Day = DATEADD(DAY, 39, @Easter) THEN N'Kristi Himmelfartsdag'
        WHEN @Day = DATEADD(DAY, 49, @Easter) THEN N'Pinsedag'
        WHEN @Day = DATEADD(DAY, 50, @Easter) THEN N'2. Pinsedag'
        WHEN MONTH(@Day) = 12 AND DAY(@Day) = 25 THEN N'Juledag'
        WHEN MONTH(@Day) = 12 AND DAY(@Day) = 26 THEN N'2. Juledag'
        WHEN @ClosingDays = N'Y' AND MONTH(@Day) = 6 AND DAY(@Day) = 5
            THEN N'Grundlovsdag (closing day)'
        WHEN @ClosingDays = N'Y' AND MONTH(@Day) = 12 AND DAY(@Day) = 24
            THEN N'Juleaftensdag (closing day)'
        WHEN @ClosingDays = N'Y' AND MONTH(@Day) = 12 AND DAY(@Day) = 31
            THEN N'Nyt' + NCHAR(229) + N'rsaftensdag (closing day)'
    END;
    -- 1900-01-01 was a Monday: 5 and 6 are Saturday and Sunday.
    SET @OffHours = CASE
        WHEN @Holiday IS NOT NULL THEN 1
        WHEN @Weekends = N'Y' AND DATEDIFF(DAY, '1900-01-01', @Local) % 7 IN (5, 6) THEN 1
        WHEN @StartTime <= @EndTime AND @Clock >= @StartTime AND @Clock < @EndTime THEN 1
        WHEN @StartTime > @EndTime AND (@Clock >= @StartTime OR @Clock < @EndTime) THEN 1
        ELSE 0
    END;
END;
