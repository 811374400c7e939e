-- Job.easter_sunday, version 1.
-- Easter Sunday of @Year in the Gregorian calendar, by the anonymous
-- Gregorian algorithm (Meeus/Jones/Butcher: integer arithmetic only, no
-- table to fill or to run out). Job.off_hours_check derives the Danish
-- public holidays that move with Easter from it (Skærtorsdag E-3,
-- Langfredag E-2, Påskedag E, 2. Påskedag E+1, Store Bededag E+26 until
-- 2023, Kristi Himmelfartsdag E+39, Pinsedag E+49, 2. Pinsedag E+50).
-- A procedure with an output, not a function, like every routine of schema
-- Job (the runtime reads procedure signatures).
--
-- Differences from the PostgreSQL twin: none in behaviour.
CREATE OR ALTER PROCEDURE Job.easter_sunday
    @Year int,
    @EasterSunday date = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET DEADLOCK_PRIORITY LOW;

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @A int;
    DECLARE @B int;
    DECLARE @C int;
    DECLARE @D int;
    DECLARE @E int;
    DECLARE @F int;
    DECLARE @G int;
    DECLARE @H int;
    DECLARE @I int;
    DECLARE @K int;
    DECLARE @L int;
    DECLARE @M int;
    DECLARE @N int;

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF @Year IS NULL OR @Year < 1583 OR @Year > 9999
        SET @Errors += N'The value for the parameter @Year is not supported: give a year of the Gregorian calendar, 1583 to 9999. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work (integer division throughout)
    ----------------------------------------------------------------------------
    SET @A = @Year % 19;
    SET @B = @Year / 100;
    SET @C = @Year % 100;
    SET @D = @B / 4;
    SET @E = @B % 4;
    SET @F = (@B + 8) / 25;
    SET @G = (@B - @F + 1) / 3;
    SET @H = (19 * @A + @B - @D - @G + 15) % 30;
    SET @I = @C / 4;
    SET @K = @C % 4;
    SET @L = (32 + 2 * @E + 2 * @I - @H - @K) % 7;
    SET @M = (@A + 11 * @H + 22 * @L) / 451;
    SET @N = @H + @L - 7 * @M + 114;
    SET @EasterSunday = DATEFROMPARTS(@Year, @N / 31, @N % 31 + 1);
END;
