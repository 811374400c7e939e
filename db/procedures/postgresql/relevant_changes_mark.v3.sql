-- Job.relevant_changes_mark, version 3.
-- Relevant-list changes mark only the patients they concern (known problem 4).
-- The triggers of migration 0009 record every change of a Relevant row in
-- PLSP.RelevantChange: the instant it takes effect (ActiveFromUtc, and
-- ActiveToUtc when set) and its code. Once a change is due (EffectiveUtc <=
-- p_NowUtc), this procedure
--   * counts the patients with the changed code (diagnosis prefix, ATC prefix,
--     converted values of the analysis, the property, the service; every
--     patient for a care-plan type), once, into RelevantChange.Patients;
--   * marks them dirty (PLSP.PatientInkluderetPending, due now) in PatientId
--     order, at most p_Limit patients a call (RelevantChange.NextPatientId
--     remembers where it stopped), and sets AppliedUtc when all are marked;
--   * but a change touching more patients than the RelevantChangeMaxPatients
--     setting waits for the off-hours window (Job.off_hours_check: 22:00-06:00
--     weekends and Danish public holidays, Danish time, by default) unless p_Force = 'Y' (which also
--     flags the due changes Forced, so later calls go on with them).
-- Job.check_inclusion_batch calls it before every batch (p_NowUtc NULL: the
-- clock); a DBA may call it to force a change through. p_NowUtc lets a test
-- or a DBA judge the window at another time.
-- p_Execute = 'N' counts what it would mark and writes nothing.
-- p_Changes: changes finished by this call; p_Patients: patients marked;
-- p_Waiting: due changes left waiting for the window.
-- Version 3 against version 2: the same patients marked, faster.
--   * p_Limit NULL (the default) takes the RelevantChangeMarkSlice setting
--     (migration 0026, default 2,000; at most 2,000 either way, under SQL
--     Server's 5,000 locks at about 2 a patient), so the slices no longer
--     shrink with the check's batch (400 since migration 0022).
--   * An ATC prefix is a range of the index PLSP.Medicin (AtcCode COLLATE "C",
--     PatientId) of migration 0026 instead of a scan of every medication, and
--     a diagnosis prefix one of PLSP.Diagnose (CodeSystem, Code COLLATE "C",
--     PatientId): a prefix p is code >= p AND code < p with its last character
--     the next one, in byte order (COLLATE "C"); a parameter's LIKE p || '%' is
--     no index condition in a generic plan. LIKE stays beside it, so the
--     patients are those of version 2; a prefix that is empty or holds a LIKE
--     wildcard (%, _ or the escape \) takes the scan of version 2.
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: arrays
-- hold the patients of a step (T-SQL: table variables); no READPAST needed
-- (the job lock serialises the callers); an ATC or diagnosis prefix as an explicit range
-- in byte order (T-SQL: LIKE @Code + '%', which SQL Server seeks as a range
-- under the column's collation, wildcards included).
CREATE PROCEDURE Job.relevant_changes_mark(
    p_NowUtc timestamp(3) DEFAULT NULL,
    p_Force char(1) DEFAULT 'N',
    p_Execute char(1) DEFAULT 'Y',
    p_Limit integer DEFAULT NULL,
    INOUT p_Changes integer DEFAULT NULL,
    INOUT p_Patients integer DEFAULT NULL,
    INOUT p_Waiting integer DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_Clock timestamp(3) := date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC');
    v_Now timestamp(3) := coalesce(p_NowUtc, v_Clock);
    v_OffHours boolean;
    v_LocalTime varchar(30);
    v_Holiday varchar(40);
    v_Text varchar(400);
    v_SliceText varchar(400);
    v_Max integer;
    v_Left integer;
    v_Change record;
    v_Slice integer;
    v_Upper varchar(20);
    v_Ids bigint[];
BEGIN
    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check; no transaction control here.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters
    ----------------------------------------------------------------------------
    IF p_NowUtc IS NOT NULL AND (p_NowUtc < TIMESTAMP '2000-01-01' OR p_NowUtc > TIMESTAMP '9000-01-01') THEN
        v_Errors := v_Errors || 'The value for the parameter p_NowUtc is not supported: give NULL (the clock) or a UTC time after 2000. ';
    END IF;
    IF p_Force IS NULL OR p_Force NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Force is not supported: use Y (mark now, whatever the window) or N. ';
    END IF;
    IF p_Execute IS NULL OR p_Execute NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (mark) or N (count only). ';
    END IF;
    IF p_Limit < 1 OR p_Limit > 2000 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Limit is not supported: give 1 to 2000 patients a call, or NULL (the RelevantChangeMarkSlice setting). ';
    END IF;
    SELECT max(CASE WHEN s.Name = 'RelevantChangeMaxPatients' THEN s.Value END),
        max(CASE WHEN s.Name = 'RelevantChangeMarkSlice' THEN s.Value END)
    INTO v_Text, v_SliceText
    FROM Ops.Setting AS s
    WHERE s.JobName = 'check_inclusion';
    IF v_Text ~ '^[0-9]{1,9}$' THEN
        v_Max := v_Text::integer;
    ELSE
        v_Errors := v_Errors || 'Setting RelevantChangeMaxPatients (Ops.Setting, job check_inclusion) is missing or not a whole number of patients. ';
    END IF;
    IF p_Limit IS NOT NULL THEN
        v_Slice := p_Limit;
    ELSIF v_SliceText ~ '^[0-9]{1,4}$' AND v_SliceText::integer BETWEEN 1 AND 2000 THEN
        v_Slice := v_SliceText::integer;
    ELSE
        v_Errors := v_Errors || 'Setting RelevantChangeMarkSlice (Ops.Setting, job check_inclusion) is missing or not a whole number of patients from 1 to 2000. ';
    END IF;

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF v_Errors <> '' THEN
        RAISE EXCEPTION USING ERRCODE = 'FL001', MESSAGE = v_Errors;
    END IF;

    CALL Job.off_hours_check(
        p_NowUtc => v_Now, p_OffHours => v_OffHours, p_LocalTime => v_LocalTime, p_Holiday => v_Holiday
    );

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    p_Changes := 0;
    p_Patients := 0;
    v_Left := v_Slice;

    IF p_Execute = 'Y' AND p_Force = 'Y' THEN
        UPDATE PLSP.RelevantChange AS c SET Forced = true
        WHERE c.AppliedUtc IS NULL AND c.EffectiveUtc <= v_Now AND NOT c.Forced;
    END IF;

    -- Oldest due change first; each is counted once, then marked a slice at a time.
    FOR v_Change IN
        SELECT c.ChangeId, c.RelevantTable, c.Code, c.CodeSystem, c.Patients, c.NextPatientId,
            (c.Forced OR p_Force = 'Y') AS Forced
        FROM PLSP.RelevantChange AS c
        WHERE c.AppliedUtc IS NULL AND c.EffectiveUtc <= v_Now
        ORDER BY c.ChangeId
        LIMIT 100
    LOOP
        -- An ATC or diagnosis prefix as a range of IX_Medicin_Atc_Patient or IX_Diagnose_Code_Patient
        -- (byte order): the prefix with its last character the next one is the first code past
        -- every code that starts with it.
        -- NULL (the scan): an empty prefix, or one with a LIKE wildcard or the escape.
        v_Upper := CASE
            WHEN v_Change.RelevantTable IN ('relevantmedicininklusion', 'relevantdiagnose') AND v_Change.Code <> ''
                AND strpos(v_Change.Code, '%') = 0 AND strpos(v_Change.Code, '_') = 0
                AND strpos(v_Change.Code, '\') = 0 AND ascii(right(v_Change.Code, 1)) < 1114111
                THEN left(v_Change.Code, -1) || chr(ascii(right(v_Change.Code, 1)) + 1)
        END;

        IF v_Change.Patients IS NULL THEN
            SELECT count(DISTINCT t.PatientId)::integer INTO v_Change.Patients
            FROM (
                SELECT d.PatientId FROM PLSP.Diagnose AS d
                WHERE v_Change.RelevantTable = 'relevantdiagnose' AND v_Upper IS NOT NULL
                    AND d.CodeSystem = v_Change.CodeSystem
                    AND d.Code COLLATE "C" >= v_Change.Code AND d.Code COLLATE "C" < v_Upper
                    AND d.Code LIKE v_Change.Code || '%'
                UNION ALL
                SELECT d.PatientId FROM PLSP.Diagnose AS d
                WHERE v_Change.RelevantTable = 'relevantdiagnose' AND v_Upper IS NULL
                    AND d.CodeSystem = v_Change.CodeSystem AND d.Code LIKE v_Change.Code || '%'
                UNION ALL
                SELECT m.PatientId FROM PLSP.Medicin AS m
                WHERE v_Change.RelevantTable = 'relevantmedicininklusion' AND v_Upper IS NOT NULL
                    AND m.AtcCode COLLATE "C" >= v_Change.Code AND m.AtcCode COLLATE "C" < v_Upper
                    AND m.AtcCode LIKE v_Change.Code || '%'
                UNION ALL
                SELECT m.PatientId FROM PLSP.Medicin AS m
                WHERE v_Change.RelevantTable = 'relevantmedicininklusion' AND v_Upper IS NULL
                    AND m.AtcCode LIKE v_Change.Code || '%'
                UNION ALL
                SELECT v.PatientId FROM PLSP.Patientvaerdier AS v
                WHERE v_Change.RelevantTable = 'relevantvaerdiinklusion' AND v.Code = v_Change.Code
                    AND v.ConversionStatus = 1
                UNION ALL
                SELECT e.PatientId FROM PLSP.Egenskaber AS e
                WHERE v_Change.RelevantTable = 'relevantegenskab' AND e.Code = v_Change.Code
                UNION ALL
                SELECT y.PatientId FROM PLSP.Ydelser AS y
                WHERE v_Change.RelevantTable = 'relevantydelseaarskontrol' AND y.ServiceCode = v_Change.Code
                UNION ALL
                SELECT p.PatientId FROM PLSP.Patient AS p
                WHERE v_Change.RelevantTable = 'relevantforloeb'
            ) AS t;
            IF p_Execute = 'Y' THEN
                UPDATE PLSP.RelevantChange AS c SET Patients = v_Change.Patients WHERE c.ChangeId = v_Change.ChangeId;
            END IF;
        END IF;

        IF v_Change.Patients > v_Max AND NOT v_OffHours AND NOT v_Change.Forced THEN
            CONTINUE;  -- waits for the off-hours window
        END IF;
        IF v_Left = 0 THEN
            EXIT;
        END IF;

        v_Ids := ARRAY(
            SELECT DISTINCT t.PatientId
            FROM (
                SELECT d.PatientId FROM PLSP.Diagnose AS d
                WHERE v_Change.RelevantTable = 'relevantdiagnose' AND v_Upper IS NOT NULL
                    AND d.CodeSystem = v_Change.CodeSystem
                    AND d.Code COLLATE "C" >= v_Change.Code AND d.Code COLLATE "C" < v_Upper
                    AND d.Code LIKE v_Change.Code || '%'
                UNION ALL
                SELECT d.PatientId FROM PLSP.Diagnose AS d
                WHERE v_Change.RelevantTable = 'relevantdiagnose' AND v_Upper IS NULL
                    AND d.CodeSystem = v_Change.CodeSystem AND d.Code LIKE v_Change.Code || '%'
                UNION ALL
                SELECT m.PatientId FROM PLSP.Medicin AS m
                WHERE v_Change.RelevantTable = 'relevantmedicininklusion' AND v_Upper IS NOT NULL
                    AND m.AtcCode COLLATE "C" >= v_Change.Code AND m.AtcCode COLLATE "C" < v_Upper
                    AND m.AtcCode LIKE v_Change.Code || '%'
                UNION ALL
                SELECT m.PatientId FROM PLSP.Medicin AS m
                WHERE v_Change.RelevantTable = 'relevantmedicininklusion' AND v_Upper IS NULL
                    AND m.AtcCode LIKE v_Change.Code || '%'
                UNION ALL
                SELECT v.PatientId FROM PLSP.Patientvaerdier AS v
                WHERE v_Change.RelevantTable = 'relevantvaerdiinklusion' AND v.Code = v_Change.Code
                    AND v.ConversionStatus = 1
                UNION ALL
                SELECT e.PatientId FROM PLSP.Egenskaber AS e
                WHERE v_Change.RelevantTable = 'relevantegenskab' AND e.Code = v_Change.Code
                UNION ALL
                SELECT y.PatientId FROM PLSP.Ydelser AS y
                WHERE v_Change.RelevantTable = 'relevantydelseaarskontrol' AND y.ServiceCode = v_Change.Code
                UNION ALL
                SELECT p.PatientId FROM PLSP.Patient AS p
                WHERE v_Change.RelevantTable = 'relevantforloeb'
            ) AS t
            WHERE t.PatientId > coalesce(v_Change.NextPatientId, 0)
            ORDER BY t.PatientId
            LIMIT v_Left
        );
        p_Patients := p_Patients + cardinality(v_Ids);
        IF p_Execute = 'Y' THEN
            INSERT INTO PLSP.PatientInkluderetPending AS p (PatientId, QueuedUtc, DueUtc)
            SELECT i.PatientId, v_Clock, v_Clock
            FROM unnest(v_Ids) AS i (PatientId)
            ON CONFLICT (PatientId) DO UPDATE SET DueUtc = EXCLUDED.DueUtc
            WHERE p.DueUtc > EXCLUDED.DueUtc;
            UPDATE PLSP.RelevantChange AS c SET
                NextPatientId = coalesce(v_Ids[cardinality(v_Ids)], c.NextPatientId),
                AppliedUtc = CASE WHEN cardinality(v_Ids) < v_Left THEN v_Clock END,
                Forced = v_Change.Forced
            WHERE c.ChangeId = v_Change.ChangeId;
        END IF;
        IF cardinality(v_Ids) < v_Left THEN
            p_Changes := p_Changes + 1;
        END IF;
        v_Left := v_Left - cardinality(v_Ids);
    END LOOP;

    SELECT count(*)::integer INTO p_Waiting
    FROM PLSP.RelevantChange AS c
    WHERE c.AppliedUtc IS NULL AND c.EffectiveUtc <= v_Now AND c.Patients > v_Max
        AND NOT v_OffHours AND NOT (c.Forced OR p_Force = 'Y');
END;
$$;
