-- Job.check_inclusion_batch, version 1.
-- One batch of CheckPatientInkluded (Job.check_inclusion runs it through
-- Job.run_batched). The work is in proportion to what changed (known problem 2):
--   1. Job.relevant_changes_mark marks the patients of due Relevant-list
--      changes (at most p_BatchSize; large changes wait for the off-hours window).
--   2. Up to p_BatchSize due patients of the dirty list (PLSP.PatientInkluderetPending,
--      DueUtc passed; the triggers of migration 0009 mark a patient when a
--      value is converted or a diagnosis, medication, service or property of
--      theirs changes), oldest first, locked and skipped when locked; and,
--      when a full recompute (PLSP.InclusionSweep, Job.inclusion_recompute)
--      is running, the next patients of the sweep in PatientId order.
--   3. For those patients and every active care-plan type, one set-based
--      evaluation of the rules (docs/engine.md): included by diagnosis, by
--      medication or by values; excluded by a property, or when no evidence
--      remains. PLSP.PatientInkluderet gets the state, reason and evidence;
--      every change of state or reason goes to PatientInkluderet_History with
--      the time. A new inclusion, and an included patient's new annual check
--      (service 0120), add an FLP_AIM row (status 0) for the plan's care plan
--      (created, or opened again, when needed).
--   4. The patients leave the dirty list; a patient whose evidence changes
--      on its own later (a value leaving its window, a diagnosis or a
--      medication ending, a property starting or ending) goes back on it
--      with that moment as DueUtc.
-- p_Position counts the patients this run has evaluated: the batch stops the
-- run (done) at the MaxPatientsPerRun setting, the budget of one run; the
-- engine's time limit (TimeLimitSeconds) is the other.
-- p_Execute = 'N' counts the due patients (and the patients due changes
-- would mark) and writes nothing.
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine: FOR
-- UPDATE SKIP LOCKED instead of READPAST; arrays and a temporary table hold
-- the batch's patients and results (T-SQL: table variables); no transaction
-- control (Job.run_batched commits).
CREATE PROCEDURE Job.check_inclusion_batch(
    p_BatchSize integer,
    p_Execute char(1),
    INOUT p_Position bigint DEFAULT NULL,
    INOUT p_Rows integer DEFAULT NULL,
    INOUT p_Done boolean DEFAULT NULL,
    INOUT p_Note varchar(400) DEFAULT NULL
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Errors text := '';
    v_Now timestamp(3) := date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC');
    v_Today date;
    v_Text varchar(400);
    v_MaxPerRun integer;
    v_MaxPatients integer;
    v_Take integer;
    v_Pending bigint[];
    v_Swept bigint[];
    v_Ids bigint[];
    v_Sweep record;
    v_OffHours boolean;
    v_LocalTime varchar(30);
    v_Changes integer;
    v_Marked integer;
    v_Waiting integer;
    v_Included integer := 0;
    v_Excluded integer := 0;
    v_Reports integer := 0;
BEGIN
    -- PostgreSQL has no READPAST, IMPLICIT_TRANSACTIONS or DEADLOCK_PRIORITY: nothing to set.
    v_Today := v_Now::date;

    ----------------------------------------------------------------------------
    -- Check requirements: nothing to check; no transaction control here.
    ----------------------------------------------------------------------------

    ----------------------------------------------------------------------------
    -- Check parameters (and the settings they depend on)
    ----------------------------------------------------------------------------
    IF p_BatchSize IS NULL OR p_BatchSize < 1 OR p_BatchSize > 4000 THEN
        v_Errors := v_Errors || 'The value for the parameter p_BatchSize is not supported: give 1 to 4000 patients (under SQL Server''s lock escalation at 5,000 locks). ';
    END IF;
    IF p_Execute IS NULL OR p_Execute NOT IN ('Y', 'N') THEN
        v_Errors := v_Errors || 'The value for the parameter p_Execute is not supported: use Y (evaluate) or N (count only). ';
    END IF;
    IF p_Position < 0 THEN
        v_Errors := v_Errors || 'The value for the parameter p_Position is not supported: give NULL or the patients evaluated so far in this run. ';
    END IF;
    SELECT max(CASE WHEN s.Name = 'MaxPatientsPerRun' THEN s.Value END),
        max(CASE WHEN s.Name = 'RelevantChangeMaxPatients' THEN s.Value END)
    INTO v_Text, v_LocalTime
    FROM Ops.Setting AS s
    WHERE s.JobName = 'check_inclusion';
    IF v_Text ~ '^[0-9]{1,9}$' AND v_Text::integer >= 1 THEN
        v_MaxPerRun := v_Text::integer;
    ELSE
        v_Errors := v_Errors || 'Setting MaxPatientsPerRun (Ops.Setting, job check_inclusion) is missing or not a whole number of patients from 1. ';
    END IF;
    IF v_LocalTime ~ '^[0-9]{1,9}$' THEN
        v_MaxPatients := v_LocalTime::integer;
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
    -- Do the work
    ----------------------------------------------------------------------------
    v_Take := least(p_BatchSize, v_MaxPerRun - coalesce(p_Position, 0)::integer);
    IF v_Take <= 0 THEN
        p_Rows := 0;
        p_Done := true;
        p_Note := concat('budget of ', v_MaxPerRun, ' patients a run reached');
        RETURN;
    END IF;

    -- 1. Relevant-list changes that fell due.
    CALL Job.relevant_changes_mark(
        p_NowUtc => NULL, p_Force => 'N', p_Execute => p_Execute, p_Limit => v_Take,
        p_Changes => v_Changes, p_Patients => v_Marked, p_Waiting => v_Waiting
    );

    -- 2. The due patients, and the running sweep's next ones.
    IF p_Execute = 'Y' THEN
        v_Pending := ARRAY(
            SELECT p.PatientId
            FROM PLSP.PatientInkluderetPending AS p
            WHERE p.DueUtc <= v_Now
            ORDER BY p.DueUtc, p.PatientId
            LIMIT v_Take
            FOR UPDATE SKIP LOCKED
        );
    ELSE
        v_Pending := ARRAY(
            SELECT p.PatientId
            FROM PLSP.PatientInkluderetPending AS p
            WHERE p.DueUtc <= v_Now
            ORDER BY p.DueUtc, p.PatientId
            LIMIT v_Take
        );
    END IF;
    v_Swept := '{}';
    IF cardinality(v_Pending) < v_Take THEN
        SELECT w.SweepId, w.NextPatientId, w.Patients, w.Forced INTO v_Sweep
        FROM PLSP.InclusionSweep AS w
        WHERE w.FinishedUtc IS NULL
        ORDER BY w.SweepId
        LIMIT 1;
        IF v_Sweep.SweepId IS NOT NULL THEN
            CALL Job.off_hours_check(p_NowUtc => v_Now, p_OffHours => v_OffHours, p_LocalTime => v_LocalTime);
            IF v_Sweep.Forced OR v_OffHours OR v_Sweep.Patients <= v_MaxPatients THEN
                v_Swept := ARRAY(
                    SELECT p.PatientId
                    FROM PLSP.Patient AS p
                    WHERE p.PatientId > v_Sweep.NextPatientId AND p.PatientId <> ALL (v_Pending)
                    ORDER BY p.PatientId
                    LIMIT v_Take - cardinality(v_Pending)
                );
                IF p_Execute = 'Y' THEN
                    UPDATE PLSP.InclusionSweep AS w SET
                        NextPatientId = coalesce(v_Swept[cardinality(v_Swept)], w.NextPatientId),
                        FinishedUtc = CASE WHEN cardinality(v_Swept) < v_Take - cardinality(v_Pending) THEN v_Now END
                    WHERE w.SweepId = v_Sweep.SweepId;
                END IF;
            END IF;
        END IF;
    END IF;
    v_Ids := v_Pending || v_Swept;

    IF p_Execute = 'N' THEN
        p_Rows := cardinality(v_Ids) + v_Marked;
        p_Done := cardinality(v_Ids) < v_Take;
        p_Position := coalesce(p_Position, 0) + cardinality(v_Ids);
        p_Note := concat('would evaluate ', cardinality(v_Ids), ' patients; Relevant changes would mark ', v_Marked,
            ', waiting for the off-hours window ', v_Waiting);
        RETURN;
    END IF;

    -- 3. The rules, for these patients and every active care-plan type, at v_Now.
    DROP TABLE IF EXISTS pg_temp.inclusion_result;
    CREATE TEMP TABLE inclusion_result ON COMMIT DROP AS
    WITH patient AS (
        SELECT DISTINCT i.PatientId FROM unnest(v_Ids) AS i (PatientId)
    ),
    plan AS (
        SELECT DISTINCT f.ForloebCode
        FROM PLSP.RelevantForloeb AS f
        WHERE f.ActiveFromUtc <= v_Now AND (f.ActiveToUtc IS NULL OR f.ActiveToUtc > v_Now)
    ),
    diagnosis AS (
        SELECT d.PatientId, r.ForloebCode,
            string_agg(DISTINCT d.CodeSystem || ' ' || d.Code, ', ' ORDER BY d.CodeSystem || ' ' || d.Code) AS Evidence
        FROM PLSP.Diagnose AS d
        INNER JOIN PLSP.RelevantDiagnose AS r
            ON r.CodeSystem = d.CodeSystem AND d.Code LIKE r.Code || '%'
            AND r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
        WHERE d.PatientId = ANY (v_Ids)
            AND d.DiagnosedDate <= v_Today AND (d.EndedDate IS NULL OR d.EndedDate > v_Today)
        GROUP BY d.PatientId, r.ForloebCode
    ),
    medication AS (
        SELECT m.PatientId, r.ForloebCode,
            string_agg(DISTINCT m.AtcCode, ', ' ORDER BY m.AtcCode) AS Evidence
        FROM PLSP.Medicin AS m
        INNER JOIN PLSP.RelevantMedicinInklusion AS r
            ON m.AtcCode LIKE r.AtcPrefix || '%' AND r.Role = 'include'
            AND r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
        WHERE m.PatientId = ANY (v_Ids)
            AND m.StartDate <= v_Today
            AND (m.EndDate IS NULL OR m.EndDate >= (v_Today - make_interval(months => r.WindowMonths))::date)
            AND NOT EXISTS (
                SELECT 1 FROM PLSP.RelevantMedicinInklusion AS x
                WHERE x.Role = 'exclude' AND x.ForloebCode = r.ForloebCode AND m.AtcCode LIKE x.AtcPrefix || '%'
                    AND x.ActiveFromUtc <= v_Now AND (x.ActiveToUtc IS NULL OR x.ActiveToUtc > v_Now)
            )
        GROUP BY m.PatientId, r.ForloebCode
    ),
    value_rule AS (
        SELECT DISTINCT ON (r.Code, r.ForloebCode) r.Code, r.ForloebCode, r.Threshold, r.MinCount, r.WindowMonths
        FROM PLSP.RelevantVaerdiInklusion AS r
        WHERE r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
        ORDER BY r.Code, r.ForloebCode, r.ActiveFromUtc DESC
    ),
    valued AS (
        SELECT v.PatientId, r.ForloebCode,
            string_agg(DISTINCT r.Code || ' x' || c.Hits, ', ') AS Evidence
        FROM value_rule AS r
        CROSS JOIN LATERAL (
            SELECT x.PatientId, count(*) AS Hits
            FROM PLSP.Patientvaerdier AS x
            WHERE x.PatientId = ANY (v_Ids) AND x.Code = r.Code AND x.ConversionStatus = 1
                AND x.MeasuredUtc <= v_Now AND x.MeasuredUtc > v_Now - make_interval(months => r.WindowMonths)
                AND x.ValueNumeric >= r.Threshold AND coalesce(x.Comparator, '>=') NOT IN ('<', '<=')
            GROUP BY x.PatientId
            HAVING count(*) >= r.MinCount
        ) AS c
        INNER JOIN patient AS v ON v.PatientId = c.PatientId
        GROUP BY v.PatientId, r.ForloebCode
    ),
    property AS (
        SELECT e.PatientId, min(e.Code) AS Code
        FROM PLSP.Egenskaber AS e
        WHERE e.PatientId = ANY (v_Ids)
            AND e.ValidFromUtc <= v_Now AND (e.ValidToUtc IS NULL OR e.ValidToUtc > v_Now)
            AND EXISTS (
                SELECT 1 FROM PLSP.RelevantEgenskab AS r
                WHERE r.Code = e.Code AND r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
            )
        GROUP BY e.PatientId
    ),
    judged AS (
        SELECT p.PatientId, f.ForloebCode,
            (e.Code IS NULL AND (d.Evidence IS NOT NULL OR m.Evidence IS NOT NULL OR v.Evidence IS NOT NULL))
                AS IsIncluded,
            CASE
                WHEN e.Code IS NOT NULL THEN 'excluded: property ' || e.Code
                WHEN d.Evidence IS NOT NULL THEN 'included: diagnosis'
                WHEN m.Evidence IS NOT NULL THEN 'included: medication'
                WHEN v.Evidence IS NOT NULL THEN 'included: values'
                ELSE 'excluded: no evidence'
            END AS Reason,
            left(concat_ws('; ', 'diagnosis ' || d.Evidence, 'medication ' || m.Evidence, 'values ' || v.Evidence),
                400) AS Evidence
        FROM patient AS p
        CROSS JOIN plan AS f
        LEFT JOIN property AS e ON e.PatientId = p.PatientId
        LEFT JOIN diagnosis AS d ON d.PatientId = p.PatientId AND d.ForloebCode = f.ForloebCode
        LEFT JOIN medication AS m ON m.PatientId = p.PatientId AND m.ForloebCode = f.ForloebCode
        LEFT JOIN valued AS v ON v.PatientId = p.PatientId AND v.ForloebCode = f.ForloebCode
    )

    SELECT j.PatientId, j.ForloebCode, j.IsIncluded, j.Reason, nullif(j.Evidence, '') AS Evidence,
        i.IsIncluded AS WasIncluded, i.Reason AS WasReason, i.Evidence AS WasEvidence,
        (
            SELECT max(y.YdelseId)
            FROM PLSP.Ydelser AS y
            WHERE y.PatientId = j.PatientId AND y.ServiceDate <= v_Today
                AND EXISTS (
                    SELECT 1 FROM PLSP.RelevantYdelseAarskontrol AS r
                    WHERE r.ServiceCode = y.ServiceCode
                        AND r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
                )
        ) AS AnnualCheckId,
        i.LastAnnualCheckId
    FROM judged AS j
    LEFT JOIN PLSP.PatientInkluderet AS i ON i.PatientId = j.PatientId AND i.ForloebCode = j.ForloebCode
    -- A patient never included and not included now gets no row.
    WHERE j.IsIncluded OR i.PatientId IS NOT NULL;

    -- The state: insert or update, only where something changed.
    INSERT INTO PLSP.PatientInkluderet AS i (PatientId, ForloebCode, IsIncluded, Reason, Evidence, ChangedUtc,
        LastAnnualCheckId)
    SELECT r.PatientId, r.ForloebCode, r.IsIncluded, r.Reason, r.Evidence, v_Now,
        CASE WHEN r.IsIncluded THEN r.AnnualCheckId END
    FROM pg_temp.inclusion_result AS r
    WHERE r.WasIncluded IS NULL
        OR r.WasIncluded IS DISTINCT FROM r.IsIncluded OR r.WasReason IS DISTINCT FROM r.Reason
        OR r.WasEvidence IS DISTINCT FROM r.Evidence
        OR (r.IsIncluded AND r.AnnualCheckId > coalesce(r.LastAnnualCheckId, 0))
    ON CONFLICT (PatientId, ForloebCode) DO UPDATE SET
        IsIncluded = EXCLUDED.IsIncluded,
        Reason = EXCLUDED.Reason,
        Evidence = EXCLUDED.Evidence,
        ChangedUtc = CASE
            WHEN i.IsIncluded IS DISTINCT FROM EXCLUDED.IsIncluded OR i.Reason IS DISTINCT FROM EXCLUDED.Reason
                THEN EXCLUDED.ChangedUtc
            ELSE i.ChangedUtc
        END,
        LastAnnualCheckId = CASE
            WHEN NOT EXCLUDED.IsIncluded THEN i.LastAnnualCheckId
            ELSE EXCLUDED.LastAnnualCheckId
        END;

    -- Every inclusion and exclusion (and change of reason), with evidence and time.
    INSERT INTO PLSP.PatientInkluderet_History (PatientId, ForloebCode, IsIncluded, Reason, Evidence, ChangedUtc)
    SELECT r.PatientId, r.ForloebCode, r.IsIncluded, r.Reason, r.Evidence, v_Now
    FROM pg_temp.inclusion_result AS r
    WHERE r.WasIncluded IS DISTINCT FROM r.IsIncluded OR r.WasReason IS DISTINCT FROM r.Reason;

    -- A new inclusion needs an open care plan.
    INSERT INTO PLSP.Forloebsplan AS f (PatientId, ForloebCode)
    SELECT r.PatientId, r.ForloebCode
    FROM pg_temp.inclusion_result AS r
    WHERE r.IsIncluded AND NOT coalesce(r.WasIncluded, false)
    ON CONFLICT (PatientId, ForloebCode) DO UPDATE SET Status = 1, UpdatedUtc = v_Now
    WHERE f.Status <> 1;

    -- AIM: a new inclusion, and an included patient's new annual check.
    INSERT INTO PLSP.FLP_AIM (ForloebsplanId, Status, CreatedUtc)
    SELECT f.ForloebsplanId, 0, v_Now
    FROM pg_temp.inclusion_result AS r
    INNER JOIN PLSP.Forloebsplan AS f ON f.PatientId = r.PatientId AND f.ForloebCode = r.ForloebCode
    WHERE r.IsIncluded
        AND (NOT coalesce(r.WasIncluded, false) OR r.AnnualCheckId > coalesce(r.LastAnnualCheckId, 0));
    GET DIAGNOSTICS v_Reports = ROW_COUNT;

    SELECT count(*) FILTER (WHERE r.IsIncluded AND NOT coalesce(r.WasIncluded, false)),
        count(*) FILTER (WHERE NOT r.IsIncluded AND r.WasIncluded)
    INTO v_Included, v_Excluded
    FROM pg_temp.inclusion_result AS r;

    -- 4. Off the dirty list; back on it when the evidence next changes by itself.
    DELETE FROM PLSP.PatientInkluderetPending AS p
    WHERE p.PatientId = ANY (v_Pending);

    INSERT INTO PLSP.PatientInkluderetPending AS p (PatientId, QueuedUtc, DueUtc)
    SELECT n.PatientId, v_Now, min(n.DueUtc)
    FROM (
        SELECT d.PatientId,
            CASE WHEN d.DiagnosedDate > v_Today THEN d.DiagnosedDate::timestamp ELSE d.EndedDate::timestamp END
                AS DueUtc
        FROM PLSP.Diagnose AS d
        WHERE d.PatientId = ANY (v_Ids) AND (d.DiagnosedDate > v_Today OR d.EndedDate > v_Today)
            AND EXISTS (
                SELECT 1 FROM PLSP.RelevantDiagnose AS r
                WHERE r.CodeSystem = d.CodeSystem AND d.Code LIKE r.Code || '%'
                    AND r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
            )
        UNION ALL
        SELECT m.PatientId,
            CASE
                WHEN m.StartDate > v_Today THEN m.StartDate::timestamp
                -- A month-end window may lapse a few days after this: then again a day later.
                ELSE greatest(m.EndDate + make_interval(months => r.WindowMonths, days => 1), v_Today + 1)
            END
        FROM PLSP.Medicin AS m
        INNER JOIN PLSP.RelevantMedicinInklusion AS r
            ON m.AtcCode LIKE r.AtcPrefix || '%' AND r.Role = 'include'
            AND r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
        WHERE m.PatientId = ANY (v_Ids)
            AND (m.StartDate > v_Today
                OR m.EndDate >= (v_Today - make_interval(months => r.WindowMonths))::date)
        UNION ALL
        SELECT x.PatientId,
            CASE
                WHEN x.MeasuredUtc > v_Now THEN x.MeasuredUtc
                ELSE greatest(x.MeasuredUtc + make_interval(months => r.WindowMonths), v_Now + INTERVAL '1 day')
            END
        FROM (
            SELECT DISTINCT ON (v.Code, v.ForloebCode) v.Code, v.Threshold, v.WindowMonths
            FROM PLSP.RelevantVaerdiInklusion AS v
            WHERE v.ActiveFromUtc <= v_Now AND (v.ActiveToUtc IS NULL OR v.ActiveToUtc > v_Now)
            ORDER BY v.Code, v.ForloebCode, v.ActiveFromUtc DESC
        ) AS r
        INNER JOIN PLSP.Patientvaerdier AS x ON x.Code = r.Code
        WHERE x.PatientId = ANY (v_Ids) AND x.ConversionStatus = 1
            AND x.MeasuredUtc > v_Now - make_interval(months => r.WindowMonths)
            AND x.ValueNumeric >= r.Threshold AND coalesce(x.Comparator, '>=') NOT IN ('<', '<=')
        UNION ALL
        SELECT e.PatientId, CASE WHEN e.ValidFromUtc > v_Now THEN e.ValidFromUtc ELSE e.ValidToUtc END
        FROM PLSP.Egenskaber AS e
        WHERE e.PatientId = ANY (v_Ids) AND (e.ValidFromUtc > v_Now OR e.ValidToUtc > v_Now)
            AND EXISTS (
                SELECT 1 FROM PLSP.RelevantEgenskab AS r
                WHERE r.Code = e.Code AND r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
            )
    ) AS n
    WHERE n.DueUtc > v_Now
    GROUP BY n.PatientId
    ON CONFLICT (PatientId) DO UPDATE SET DueUtc = EXCLUDED.DueUtc
    WHERE p.DueUtc > EXCLUDED.DueUtc;

    p_Rows := cardinality(v_Ids);
    p_Done := cardinality(v_Ids) < v_Take AND v_Marked = 0;
    p_Position := coalesce(p_Position, 0) + cardinality(v_Ids);
    p_Note := left(concat(
        'evaluated ', cardinality(v_Pending), ' dirty',
        CASE WHEN cardinality(v_Swept) > 0 THEN concat(' and ', cardinality(v_Swept), ' swept') END,
        ' patients: included ', v_Included, ', excluded ', v_Excluded, ', AIM reports ', v_Reports,
        '; Relevant changes marked ', v_Marked, ' (finished ', v_Changes, ', waiting for off-hours ', v_Waiting, ')'
    ), 400);
END;
$$;
