-- Job.easter_sunday, version 1.
-- Easter Sunday of p_Year in the Gregorian calendar, by the anonymous
-- Gregorian algorithm (Meeus/Jones/Butcher: integer arithmetic only, no
-- table to fill or to run out). Job.off_hours_check derives the Danish
-- public holidays that move with Easter from it (Skærtorsdag E-3,
-- Langfredag E-2, Påskedag E, 2. Påskedag E+1, Store Bededag E+26 until
-- 2023, Kristi Himmelfartsdag E+39, Pinsedag E+49, 2. Pinsedag E+50).
-- A procedure with an output, not a function, like every routine of schema
-- Job (the runtime reads procedure signatures).
--
-- PostgreSQL differences from the T-SQL twin: none in behaviour.
CREATE PROCEDURE Job.easter_sunday(
    p_Year integer,
    INOUT p_EasterSunday date DEFAULT NULL
)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_A integer;
    v_B integer;
    v_C integer;
    v_D integer;
    v_E integer;
    v_F integer;
    v_G integer;
    v_H integer;
    v_I integer;
    v_K integer;
    v_L integer;
    v_M integer;
    v_N integer;
BEGIN
    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_Year IS NULL OR p_Year < 1583 OR p_Year > 9999 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Year is not supported: give a year of the Gregorian calendar, 1583 to 9999. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work (integer division throughout)
    ----------------------------------------------------------------------------
    v_A := p_Year % 19;
    v_B := p_Year / 100;
    v_C := p_Year % 100;
    v_D := v_B / 4;
    v_E := v_B % 4;
    v_F := (v_B + 8) / 25;
    v_G := (v_B - v_F + 1) / 3;
    v_H := (19 * v_A + v_B - v_D - v_G + 15) % 30;
    v_I := v_C / 4;
    v_K := v_C % 4;
    v_L := (32 + 2 * v_E + 2 * v_I - v_H - v_K) % 7;
    v_M := (v_A + 11 * v_H + 22 * v_L) / 451;
    v_N := v_H + v_L - 7 * v_M + 114;
    p_EasterSunday := make_date(p_Year, v_N / 31, v_N % 31 + 1);
END;
$$;
