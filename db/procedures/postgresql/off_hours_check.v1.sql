-- Job.off_hours_check, version 1.
-- Whether p_NowUtc (NULL: the clock) lies in the off-hours window of the
-- inclusion check's settings: OffHoursStart to OffHoursEnd local time in
-- Europe/Copenhagen (default 22:00-06:00; a window may wrap midnight), and all
-- of Saturday and Sunday when OffHoursWeekends is Y. Danish public holidays
-- are not in it (a later version may add them). A Relevant-list change that
-- touches many patients, and a full recompute, wait for this window
-- (known problem 4). p_LocalTime is the local time it judged, for notes.
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: the time
-- zone is 'Europe/Copenhagen' (T-SQL: 'Romance Standard Time').
CREATE PROCEDURE Job.off_hours_check(
    p_NowUtc timestamp(3) DEFAULT NULL,
    INOUT p_OffHours boolean DEFAULT NULL,
    INOUT p_LocalTime varchar(30) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_Now timestamp(3) := coalesce(p_NowUtc, date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC'));
    v_Local timestamp(3);
    v_Start text;
    v_End text;
    v_Weekends text;
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
        max(CASE WHEN s.Name = 'OffHoursWeekends' THEN s.Value END)
    INTO v_Start, v_End, v_Weekends
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
    p_LocalTime := to_char(v_Local, 'YYYY-MM-DD HH24:MI Dy');
    p_OffHours := (v_Weekends = 'Y' AND extract(ISODOW FROM v_Local) IN (6, 7))
        OR CASE
            WHEN v_Start::time <= v_End::time THEN v_Clock >= v_Start::time AND v_Clock < v_End::time
            ELSE v_Clock >= v_Start::time OR v_Clock < v_End::time
        END;
END;
$$;
