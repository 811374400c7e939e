-- Job.off_hours_check, version 1.
-- Whether @NowUtc (NULL: the clock) lies in the off-hours window of the
-- inclusion check's settings: OffHoursStart to OffHoursEnd local time in
-- Europe/Copenhagen (default 22:00-06:00; a window may wrap midnight), and all
-- of Saturday and Sunday when OffHoursWeekends is Y. Danish public holidays
-- are not in it (a later version may add them). A Relevant-list change that
-- touches many patients, and a full recompute, wait for this window
-- (known problem 4). @LocalTime is the local time it judged, for notes.
--
-- Differences from the PostgreSQL twin, one line each:
--   * Digit checks are binary LIKEs (COLLATE Latin1_General_BIN2: ASCII digits only); the twin: ASCII patterns.
--   * The time zone is 'Romance Standard Time' (Windows' name for Europe/Copenhagen); the twin: the IANA zone.
--   * The weekday is counted from a known Monday, so SET DATEFIRST does not matter; the twin: extract(isodow).
CREATE OR ALTER PROCEDURE Job.off_hours_check
    @NowUtc datetime2(3) = NULL,
    @OffHours bit = NULL OUTPUT,
    @LocalTime varchar(30) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET DEADLOCK_PRIORITY LOW;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Now datetime2(3) = COALESCE(@NowUtc, SYSUTCDATETIME());
    DECLARE @Local datetime2(3);
    DECLARE @Start nvarchar(400);
    DECLARE @End nvarchar(400);
    DECLARE @Weekends nvarchar(400);
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
        @Weekends = MAX(CASE WHEN s.Name = 'OffHoursWeekends' THEN s.Value END)
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
    SET @LocalTime = CONVERT(varchar(16), @Local, 120) + ' ' + LEFT(DATENAME(WEEKDAY, @Local), 3);
    -- 1900-01-01 was a Monday: 5 and 6 are Saturday and Sunday.
    SET @OffHours = CASE
        WHEN @Weekends = N'Y' AND DATEDIFF(DAY, '1900-01-01', @Local) % 7 IN (5, 6) THEN 1
        WHEN @StartTime <= @EndTime AND @Clock >= @StartTime AND @Clock < @EndTime THEN 1
        WHEN @StartTime > @EndTime AND (@Clock >= @StartTime OR @Clock < @EndTime) THEN 1
        ELSE 0
    END;
END;
