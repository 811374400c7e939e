-- Job.off_hours_check, version 2.
-- Whether p_NowUtc (NULL: the clock) lies in the off-hours window of the
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
-- wait for this window (known problem 4). p_LocalTime is the local time it
-- judged, for notes; p_Holiday names the holiday or closing day of that local
-- date when it counted (NULL otherwise).
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: the time
-- zone is 'Europe/Copenhagen' (T-SQL: 'Romance Standard Time').
CREATE PROCEDURE Job.off_hours_check(
    p_NowUtc timestamp(3) DEFAULT NULL,
    INOUT p_OffHours boolean DEFAULT NULL,
    INOUT p_LocalTime varchar(30) DEFAULT NULL,
    INOUT p_Holiday varchar(40) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_Now timestamp(3) := coalesce(p_NowUtc, date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC'));
    v_Local timestamp(3);
    v_Day date;
    v_Easter date;
    v_Start text;
    v_End text;
    v_Weekends text;
    v_ClosingDays text;
    v_Clock time;
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters (and the settings they depend on)
    ----------------------------------------------------------------------------
    IF p_NowUtc IS NOT NULL AND (p_NowUtc < TIMESTAMP '2000-01-01' OR p_NowUtc > TIMESTAMP '9000-01-01') THEN
        v_Errors := v_Errors || 'The value for the parameter p_NowUtc is not supported: give NULL (the clock) or a UTC time after 2000. ';
    END IF;
    SELECT max(CASE WHEN s.Name = 'OffHoursStart' THEN s.Value END),
        max(CASE WHEN s.Name = 'OffHoursEnd' THEN s.Value END),
        max(CASE WHEN s.Name = 'OffHoursWeekends' THEN s.Value END),
        max(CASE WHEN s.Name = 'OffHoursClosingDays' THEN s.Value END)
    INTO v_Start, v_End, v_Weekends, v_ClosingDays
    FROM Ops.Setting AS s
    WHERE s.JobName = 'check_inclusion';
    IF v_Start IS NULL OR v_Start !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN
        v_Errors := v_Errors || 'Setting OffHoursStart (Ops.Setting, job check_inclusion) is missing or not a local time HH:MM. ';
    END IF;
    IF v_End IS NULL OR v_End !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN
        v_Errors := v_Errors || 'Setting OffHoursEnd (Ops.Setting, job check_inclusion) is missing or not a local time HH:MM. ';
    END IF;
    IF v_Weekends IS NULL OR v_Weekends NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'Setting OffHoursWeekends (Ops.Setting, job check_inclusion) is missing or not Y or N. ';
    END IF;
    IF v_ClosingDays IS NULL OR v_ClosingDays NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'Setting OffHoursClosingDays (Ops.Setting, job check_inclusion) is missing or not Y or N. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    v_Local := (v_Now AT TIME ZONE 'UTC') AT TIME ZONE 'Europe/Copenhagen';
    v_Clock := v_Local::time;
    v_Day := v_Local::date;
    CALL Job.easter_sunday(p_Year => extract(YEAR FROM v_Day)::integer, p_EasterSunday => v_Easter);
    p_LocalTime := to_char(v_Local, 'YYYY-MM-DD HH24:MI Dy');
    -- The holiday or closing day of the local date, if any.
    p_Holiday := CASE
        WHEN extract(MONTH FROM v_Day) = 1 AND extract(DAY FROM v_Day) = 1 THEN 'Nytårsdag'
        WHEN v_Day = v_Easter - 3 THEN 'Skærtorsdag'
        WHEN v_Day = v_Easter - 2 THEN 'Langfredag'
        WHEN v_Day = v_Easter THEN 'Påskedag'
        WHEN v_Day = v_Easter + 1 THEN '2. Påskedag'
        WHEN v_Day = v_Easter + 26 AND extract(YEAR FROM v_Day) <= 2023 THEN 'Store Bededag'
        WHEN v_Day = v_Easter + 39 THEN 'Kristi Himmelfartsdag'
        WHEN v_Day = v_Easter + 49 THEN 'Pinsedag'
        WHEN v_Day = v_Easter + 50 THEN '2. Pinsedag'
        WHEN extract(MONTH FROM v_Day) = 12 AND extract(DAY FROM v_Day) = 25 THEN 'Juledag'
        WHEN extract(MONTH FROM v_Day) = 12 AND extract(DAY FROM v_Day) = 26 THEN '2. Juledag'
        WHEN v_ClosingDays = 'Y' AND extract(MONTH FROM v_Day) = 6 AND extract(DAY FROM v_Day) = 5
            THEN 'Grundlovsdag (closing day)'
        WHEN v_ClosingDays = 'Y' AND extract(MONTH FROM v_Day) = 12 AND extract(DAY FROM v_Day) = 24
            THEN 'Juleaftensdag (closing day)'
        WHEN v_ClosingDays = 'Y' AND extract(MONTH FROM v_Day) = 12 AND extract(DAY FROM v_Day) = 31
            THEN 'Nytårsaftensdag (closing day)'
    END;
    p_OffHours := p_Holiday IS NOT NULL
        OR (v_Weekends = 'Y' AND extract(ISODOW FROM v_Local) IN (6, 7))
        OR CASE
            WHEN v_Start::time <= v_End::time THEN v_Clock >= v_Start::time AND v_Clock < v_End::time
            ELSE v_Clock >= v_Start::time OR v_Clock < v_End::time
        END;
END;
$$;
