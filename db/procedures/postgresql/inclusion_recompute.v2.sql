-- Job.inclusion_recompute, version 2.
-- The full recompute, for when the rules change wholesale: requests a sweep
-- (PLSP.InclusionSweep) that Job.check_inclusion_batch walks beside the dirty
-- list, every patient once in PatientId order, a batch at a time, so it never
-- holds a long transaction. It obeys the window rule of Relevant-list changes:
-- when the population is larger than RelevantChangeMaxPatients the sweep only
-- advances in the off-hours window (Job.off_hours_check), unless p_Force = 'Y'.
-- A sweep already running is not requested twice (p_Force = 'Y' then forces it).
-- p_Result: 'requested' (runs now), 'waiting' (runs in the off-hours window),
-- 'running' (a sweep was there already), 'dry_run'. p_Patients: the population.
-- p_Execute = 'N' reports what it would do and writes nothing. p_NowUtc: the
-- time the window is judged at (NULL: the clock).
-- Version 2 against version 1: the off-hours window includes the Danish public
-- holidays and, by the OffHoursClosingDays setting, the days most clinics close
-- (Job.off_hours_check version 2); nothing else changed.
--
-- PostgreSQL differences from the T-SQL twin: none in behaviour.
CREATE PROCEDURE Job.inclusion_recompute(
    p_NowUtc timestamp(3) DEFAULT NULL,
    p_Force char(1) DEFAULT 'N',
    p_Execute char(1) DEFAULT 'Y',
    INOUT p_Patients bigint DEFAULT NULL,
    INOUT p_Result varchar(20) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_Now timestamp(3) := coalesce(p_NowUtc, date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC'));
    v_Text varchar(400);
    v_Max integer;
    v_OffHours boolean;
    v_LocalTime varchar(30);
    v_Holiday varchar(40);
    v_Running bigint;
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_NowUtc IS NOT NULL AND (p_NowUtc < TIMESTAMP '2000-01-01' OR p_NowUtc > TIMESTAMP '9000-01-01') THEN
        v_Errors := v_Errors || 'The value for the parameter p_NowUtc is not supported: give NULL (the clock) or a UTC time after 2000. ';
    END IF;
    IF p_Force IS NULL OR p_Force NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Force is not supported: use Y (run now, whatever the window) or N. ';
    END IF;
    IF p_Execute IS NULL OR p_Execute NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (request) or N (report only). ';
    END IF;
    SELECT s.Value INTO v_Text
    FROM Ops.Setting AS s
    WHERE s.JobName = 'check_inclusion' AND s.Name = 'RelevantChangeMaxPatients';
    IF v_Text ~ '^[0-9]{1,9}$' THEN
        v_Max := v_Text::integer;
    ELSE
        v_Errors := v_Errors || 'Setting RelevantChangeMaxPatients (Ops.Setting, job check_inclusion) is missing or not a whole number of patients. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    ----------------------------------------------------------------------------
    -- Log start: the request is the PLSP.InclusionSweep row itself.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    CALL Job.off_hours_check(
        p_NowUtc => v_Now, p_OffHours => v_OffHours, p_LocalTime => v_LocalTime, p_Holiday => v_Holiday
    );
    SELECT count(*) INTO p_Patients FROM PLSP.Patient;
    SELECT min(w.SweepId) INTO v_Running FROM PLSP.InclusionSweep AS w WHERE w.FinishedUtc IS NULL;

    IF p_Execute = 'N' THEN
        p_Result := 'dry_run';
    ELSIF v_Running IS NOT NULL THEN
        IF p_Force = 'Y' THEN
            UPDATE PLSP.InclusionSweep AS w SET Forced = true WHERE w.SweepId = v_Running;
        END IF;
        p_Result := 'running';
    ELSE
        INSERT INTO PLSP.InclusionSweep (RequestedUtc, NextPatientId, Patients, Forced)
        VALUES (date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC'), 0, p_Patients, p_Force = 'Y');
        p_Result := CASE WHEN p_Force = 'Y' OR v_OffHours OR p_Patients <= v_Max THEN 'requested' ELSE 'waiting' END;
    END IF;

    ----------------------------------------------------------------------------
    -- Log end: Job.check_inclusion's runs note the swept patients per batch.
    ----------------------------------------------------------------------------
END;
$$;
