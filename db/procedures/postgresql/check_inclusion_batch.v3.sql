-- Job.check_inclusion_batch, version 3.
-- One batch of CheckPatientInkluded (Job.check_inclusion runs it through
-- Job.run_batched). The work is in proportion to what changed (known problem 2):
--   1. Job.relevant_changes_mark marks the patients of due Relevant-list
--      changes (a slice of its RelevantChangeMarkSlice setting, not of
--      p_BatchSize; large changes wait for the off-hours window); called only
--      when a change is due (one index probe otherwise).
--   2. Up to p_BatchSize due patients of the dirty list (PLSP.PatientInkluderetPending,
--      DueUtc passed; the triggers of migration 0009 mark a patient when a
--      value is converted or a diagnosis, medication, service or property of
--      theirs changes), oldest first, locked and skipped when locked; and,
--      when a full recompute (PLSP.InclusionSweep, Job.inclusion_recompute)
--      is running, the next patients of the sweep in PatientId order.
--   3. One pass over each evidence table (Diagnose, Medicin, Patientvaerdier,
--      Egenskaber, Ydelser) for those patients, each a seek on the covering
--      index (PatientId, code) of migration 0016, into one evidence set that
--      holds both what counts now and when each row next changes by itself.
--      From it, for every active care-plan type, the rules (docs/engine.md):
--      included by diagnosis, by medication or by values; excluded by a
--      property, or when no evidence remains. PLSP.PatientInkluderet gets the
--      state, reason and evidence where they changed; every change of state or
--      reason goes to PatientInkluderet_History with the time. A new
--      inclusion, and an included patient's new annual check (service 0120),
--      add an FLP_AIM row (status 0) for the plan's care plan (created, or
--      opened again, when needed).
--   4. The batch's dirty-list rows get the moment the patient's evidence next
--      changes on its own (a value leaving its window, a diagnosis or a
--      medication ending, a property starting or ending) as DueUtc, from the
--      same evidence set, or leave the list when there is none.
-- Version 2 against version 1: the same rules and results; each evidence
-- table is read once per batch instead of twice (evaluation, then the next
-- due moment), through covering indexes (no heap or key lookups); the annual
-- check is looked up once per patient, not per plan; no join of the values to
-- the batch's patient list (it grew with the square of the batch); the dirty
-- list is updated in place instead of deleted and inserted again.
-- Version 3 against version 2: the same rules and results; step 1 marks a slice
-- of Job.relevant_changes_mark version 3's own setting (RelevantChangeMarkSlice,
-- default 2,000 patients) instead of one batch (400 since migration 0022), so
-- a change of many patients is marked in a fifth of the calls.
-- Its session temporary tables are inclusion_evidence_v3 and inclusion_result_v3
-- (same columns as version 2's): a session kept from before the migration
-- never reuses the tables of another version.
-- p_Position counts the patients this run has evaluated: the batch stops the
-- run (done) at the MaxPatientsPerRun setting, the budget of one run; the
-- engine's time limit (TimeLimitSeconds) is the other.
-- p_Execute = 'N' counts the due patients (and the patients due changes
-- would mark) and writes nothing.
--
-- PostgreSQL differences from the T-SQL twin, forced by the engine, one line each:
--   * FOR UPDATE SKIP LOCKED and a DELETE by row address (ctid) claim the rows (T-SQL: READPAST, UPDLOCK and a DELETE of a TOP (n) common table expression).
--   * Arrays hold the batch's patients; two session temporary tables (ON COMMIT DELETE ROWS, made once per session so the statements filling them keep their plans) hold the evidence and results (T-SQL: table variables; its procedure plans are cached anyway).
--   * INSERT ... ON CONFLICT instead of UPDATE then INSERT ... WHERE NOT EXISTS; string_agg(DISTINCT ...) FILTER instead of STRING_AGG over DISTINCT subqueries.
--   * No transaction control (Job.run_batched commits).
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
    v_Holiday varchar(40);
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

    -- 1. Relevant-list changes that fell due (the common case, none, costs one index probe).
    IF EXISTS (
        SELECT 1 FROM PLSP.RelevantChange AS c
        WHERE c.AppliedUtc IS NULL AND c.EffectiveUtc <= v_Now
    ) THEN
        CALL Job.relevant_changes_mark(
            p_NowUtc => NULL, p_Force => 'N', p_Execute => p_Execute, p_Limit => NULL,
            p_Changes => v_Changes, p_Patients => v_Marked, p_Waiting => v_Waiting
        );
    ELSE
        v_Changes := 0;
        v_Marked := 0;
        v_Waiting := 0;
    END IF;

    -- 2. The due patients, and the running sweep's next ones.
    IF p_Execute = 'Y' THEN
        -- Claimed by taking them off the list at once (the queue idiom: the locked rows
        -- by address, no index probe per patient); step 4 puts back the ones due later.
        -- A writer marking one of them meanwhile waits for this commit, then marks it again.
        WITH claimed AS (
            DELETE FROM PLSP.PatientInkluderetPending AS p
            WHERE p.ctid IN (
                SELECT q.ctid
                FROM PLSP.PatientInkluderetPending AS q
                WHERE q.DueUtc <= v_Now
                ORDER BY q.DueUtc, q.PatientId
                LIMIT v_Take
                FOR UPDATE SKIP LOCKED
            )
            RETURNING p.PatientId, p.DueUtc
        )

        SELECT coalesce(array_agg(c.PatientId ORDER BY c.DueUtc, c.PatientId), '{}') INTO v_Pending
        FROM claimed AS c;
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
            CALL Job.off_hours_check(
                p_NowUtc => v_Now, p_OffHours => v_OffHours, p_LocalTime => v_LocalTime, p_Holiday => v_Holiday
            );
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

    -- 3. One pass over each evidence table for these patients, at v_Now: every row
    --    that counts now (Counts) or changes by itself later (DueUtc), with its plan.
    -- Temporary tables made once per session and emptied by every commit (and here, for a
    -- second call in one transaction): the statements that fill them keep their plans
    -- from batch to batch instead of being planned again for a new table each time.
    IF to_regclass('pg_temp.inclusion_evidence_v3') IS NULL THEN
        CREATE TEMP TABLE inclusion_evidence_v3 (
            PatientId bigint NOT NULL,
            ForloebCode varchar(10) NULL,
            Kind varchar(10) NOT NULL,
            Item varchar(60) NULL,
            Counts boolean NOT NULL,
            DueUtc timestamp(3) NULL,
            AnnualCheckId bigint NULL
        ) ON COMMIT DELETE ROWS;
        CREATE TEMP TABLE inclusion_result_v3 (
            PatientId bigint NOT NULL,
            ForloebCode varchar(10) NOT NULL,
            IsIncluded boolean NOT NULL,
            Reason varchar(200) NOT NULL,
            Evidence varchar(400) NULL,
            WasIncluded boolean NULL,
            WasReason varchar(200) NULL,
            WasEvidence varchar(400) NULL,
            AnnualCheckId bigint NULL,
            LastAnnualCheckId bigint NULL
        ) ON COMMIT DELETE ROWS;
    END IF;
    DELETE FROM pg_temp.inclusion_evidence_v3;
    DELETE FROM pg_temp.inclusion_result_v3;

    INSERT INTO pg_temp.inclusion_evidence_v3 (PatientId, ForloebCode, Kind, Item, Counts, DueUtc, AnnualCheckId)
    WITH diagnosis_rule AS (
        SELECT DISTINCT r.CodeSystem, r.Code, r.ForloebCode
        FROM PLSP.RelevantDiagnose AS r
        WHERE r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
    ),
    medication_rule AS (
        SELECT DISTINCT r.AtcPrefix, r.ForloebCode, r.WindowMonths,
            (v_Today - make_interval(months => r.WindowMonths))::date AS EndedAfter
        FROM PLSP.RelevantMedicinInklusion AS r
        WHERE r.Role = 'include' AND r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
    ),
    medication_exclude AS (
        SELECT DISTINCT x.AtcPrefix, x.ForloebCode
        FROM PLSP.RelevantMedicinInklusion AS x
        WHERE x.Role = 'exclude' AND x.ActiveFromUtc <= v_Now AND (x.ActiveToUtc IS NULL OR x.ActiveToUtc > v_Now)
    ),
    value_rule AS (
        SELECT DISTINCT ON (r.Code, r.ForloebCode) r.Code, r.ForloebCode, r.Threshold, r.MinCount, r.WindowMonths,
            v_Now - make_interval(months => r.WindowMonths) AS MeasuredAfter
        FROM PLSP.RelevantVaerdiInklusion AS r
        WHERE r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
        ORDER BY r.Code, r.ForloebCode, r.ActiveFromUtc DESC
    ),
    property_rule AS (
        SELECT DISTINCT r.Code
        FROM PLSP.RelevantEgenskab AS r
        WHERE r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
    ),
    annual_rule AS (
        SELECT DISTINCT r.ServiceCode
        FROM PLSP.RelevantYdelseAarskontrol AS r
        WHERE r.ActiveFromUtc <= v_Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > v_Now)
    ),
    evidence AS (
        -- Diagnoses under a plan's prefix: count from the diagnosis date until they end.
        SELECT d.PatientId, r.ForloebCode, 'diagnosis'::varchar(10) AS Kind,
            (d.CodeSystem || ' ' || d.Code)::varchar(60) AS Item,
            (d.DiagnosedDate <= v_Today AND (d.EndedDate IS NULL OR d.EndedDate > v_Today)) AS Counts,
            CASE
                WHEN d.DiagnosedDate > v_Today THEN d.DiagnosedDate::timestamp(3)
                WHEN d.EndedDate > v_Today THEN d.EndedDate::timestamp(3)
            END AS DueUtc,
            NULL::bigint AS AnnualCheckId
        FROM PLSP.Diagnose AS d
        INNER JOIN diagnosis_rule AS r ON r.CodeSystem = d.CodeSystem AND d.Code LIKE r.Code || '%'
        WHERE d.PatientId = ANY (v_Ids) AND (d.DiagnosedDate > v_Today OR d.EndedDate IS NULL OR d.EndedDate > v_Today)
        UNION ALL
        -- Medication under an include prefix (and no exclude prefix of the plan): counts
        -- from its start until WindowMonths after it ended.
        SELECT m.PatientId, r.ForloebCode, 'medication', m.AtcCode::varchar(60),
            (m.StartDate <= v_Today AND (m.EndDate IS NULL OR m.EndDate >= r.EndedAfter)
                AND NOT EXISTS (
                    SELECT 1 FROM medication_exclude AS x
                    WHERE x.ForloebCode = r.ForloebCode AND m.AtcCode LIKE x.AtcPrefix || '%'
                )),
            CASE
                WHEN m.StartDate > v_Today THEN m.StartDate::timestamp(3)
                -- A month-end window may lapse a few days after this: then again a day later.
                WHEN m.EndDate >= r.EndedAfter
                    THEN greatest(m.EndDate + make_interval(months => r.WindowMonths, days => 1), v_Today + 1)::timestamp(3)
            END,
            NULL::bigint
        FROM PLSP.Medicin AS m
        INNER JOIN medication_rule AS r ON m.AtcCode LIKE r.AtcPrefix || '%'
        WHERE m.PatientId = ANY (v_Ids) AND (m.StartDate > v_Today OR m.EndDate IS NULL OR m.EndDate >= r.EndedAfter)
        UNION ALL
        -- Converted values at or over the threshold in the window: the rule counts with
        -- MinCount of them; each one leaves the window WindowMonths after it was measured.
        SELECT x.PatientId, r.ForloebCode, 'values',
            (r.Code || ' x' || count(*) FILTER (WHERE x.MeasuredUtc <= v_Now))::varchar(60),
            count(*) FILTER (WHERE x.MeasuredUtc <= v_Now) >= r.MinCount,
            min(CASE
                WHEN x.MeasuredUtc > v_Now THEN x.MeasuredUtc
                ELSE greatest(x.MeasuredUtc + make_interval(months => r.WindowMonths), v_Now + INTERVAL '1 day')
            END)::timestamp(3),
            NULL::bigint
        FROM value_rule AS r
        INNER JOIN PLSP.Patientvaerdier AS x
            ON x.PatientId = ANY (v_Ids) AND x.Code = r.Code AND x.MeasuredUtc > r.MeasuredAfter
        WHERE x.ConversionStatus = 1
            AND x.ValueNumeric >= r.Threshold AND coalesce(x.Comparator, '>=') NOT IN ('<', '<=')
        GROUP BY x.PatientId, r.ForloebCode, r.Code, r.MinCount
        UNION ALL
        -- Properties that exclude while valid (every plan: ForloebCode NULL).
        SELECT e.PatientId, NULL, 'property', e.Code::varchar(60),
            (e.ValidFromUtc <= v_Now AND (e.ValidToUtc IS NULL OR e.ValidToUtc > v_Now)),
            CASE WHEN e.ValidFromUtc > v_Now THEN e.ValidFromUtc WHEN e.ValidToUtc > v_Now THEN e.ValidToUtc END,
            NULL::bigint
        FROM PLSP.Egenskaber AS e
        WHERE e.PatientId = ANY (v_Ids) AND (e.ValidToUtc IS NULL OR e.ValidToUtc > v_Now)
            AND e.Code IN (SELECT p.Code FROM property_rule AS p)
        UNION ALL
        -- The newest annual check, once per patient.
        SELECT y.PatientId, NULL, 'annual', NULL, true, NULL, max(y.YdelseId)
        FROM PLSP.Ydelser AS y
        WHERE y.PatientId = ANY (v_Ids) AND y.ServiceDate <= v_Today
            AND y.ServiceCode IN (SELECT a.ServiceCode FROM annual_rule AS a)
        GROUP BY y.PatientId
    )

    SELECT e.PatientId, e.ForloebCode, e.Kind, e.Item, e.Counts, e.DueUtc, e.AnnualCheckId
    FROM evidence AS e;

    -- The rules, for these patients and every active care-plan type, from the evidence.
    INSERT INTO pg_temp.inclusion_result_v3 (PatientId, ForloebCode, IsIncluded, Reason, Evidence, WasIncluded,
        WasReason, WasEvidence, AnnualCheckId, LastAnnualCheckId)
    WITH patient AS (
        SELECT DISTINCT i.PatientId FROM unnest(v_Ids) AS i (PatientId)
    ),
    plan AS (
        SELECT DISTINCT f.ForloebCode
        FROM PLSP.RelevantForloeb AS f
        WHERE f.ActiveFromUtc <= v_Now AND (f.ActiveToUtc IS NULL OR f.ActiveToUtc > v_Now)
    ),
    found AS (
        SELECT e.PatientId, e.ForloebCode,
            string_agg(DISTINCT e.Item, ', ' ORDER BY e.Item) FILTER (WHERE e.Kind = 'diagnosis') AS Diagnosis,
            string_agg(DISTINCT e.Item, ', ' ORDER BY e.Item) FILTER (WHERE e.Kind = 'medication') AS Medication,
            string_agg(DISTINCT e.Item, ', ' ORDER BY e.Item) FILTER (WHERE e.Kind = 'values') AS Valued
        FROM pg_temp.inclusion_evidence_v3 AS e
        WHERE e.Counts AND e.ForloebCode IS NOT NULL
        GROUP BY e.PatientId, e.ForloebCode
    ),
    per_patient AS (
        SELECT e.PatientId,
            min(e.Item) FILTER (WHERE e.Kind = 'property') AS Property,
            max(e.AnnualCheckId) AS AnnualCheckId
        FROM pg_temp.inclusion_evidence_v3 AS e
        WHERE e.Counts AND e.ForloebCode IS NULL
        GROUP BY e.PatientId
    ),
    judged AS (
        SELECT p.PatientId, f.ForloebCode, q.AnnualCheckId,
            (q.Property IS NULL AND (d.Diagnosis IS NOT NULL OR d.Medication IS NOT NULL OR d.Valued IS NOT NULL))
                AS IsIncluded,
            CASE
                WHEN q.Property IS NOT NULL THEN 'excluded: property ' || q.Property
                WHEN d.Diagnosis IS NOT NULL THEN 'included: diagnosis'
                WHEN d.Medication IS NOT NULL THEN 'included: medication'
                WHEN d.Valued IS NOT NULL THEN 'included: values'
                ELSE 'excluded: no evidence'
            END AS Reason,
            left(concat_ws('; ', 'diagnosis ' || d.Diagnosis, 'medication ' || d.Medication, 'values ' || d.Valued),
                400) AS Evidence
        FROM patient AS p
        CROSS JOIN plan AS f
        LEFT JOIN per_patient AS q ON q.PatientId = p.PatientId
        LEFT JOIN found AS d ON d.PatientId = p.PatientId AND d.ForloebCode = f.ForloebCode
    )

    SELECT j.PatientId, j.ForloebCode, j.IsIncluded, j.Reason, nullif(j.Evidence, '') AS Evidence,
        i.IsIncluded AS WasIncluded, i.Reason AS WasReason, i.Evidence AS WasEvidence,
        j.AnnualCheckId, i.LastAnnualCheckId
    FROM judged AS j
    LEFT JOIN PLSP.PatientInkluderet AS i ON i.PatientId = j.PatientId AND i.ForloebCode = j.ForloebCode
    -- A patient never included and not included now gets no row.
    WHERE j.IsIncluded OR i.PatientId IS NOT NULL;

    -- The state: insert or update, only where something changed.
    INSERT INTO PLSP.PatientInkluderet AS i (PatientId, ForloebCode, IsIncluded, Reason, Evidence, ChangedUtc,
        LastAnnualCheckId)
    SELECT r.PatientId, r.ForloebCode, r.IsIncluded, r.Reason, r.Evidence, v_Now,
        CASE WHEN r.IsIncluded THEN r.AnnualCheckId END
    FROM pg_temp.inclusion_result_v3 AS r
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
    FROM pg_temp.inclusion_result_v3 AS r
    WHERE r.WasIncluded IS DISTINCT FROM r.IsIncluded OR r.WasReason IS DISTINCT FROM r.Reason;

    -- A new inclusion needs an open care plan.
    INSERT INTO PLSP.Forloebsplan AS f (PatientId, ForloebCode)
    SELECT r.PatientId, r.ForloebCode
    FROM pg_temp.inclusion_result_v3 AS r
    WHERE r.IsIncluded AND NOT coalesce(r.WasIncluded, false)
    ON CONFLICT (PatientId, ForloebCode) DO UPDATE SET Status = 1, UpdatedUtc = v_Now
    WHERE f.Status <> 1;

    -- AIM: a new inclusion, and an included patient's new annual check.
    INSERT INTO PLSP.FLP_AIM (ForloebsplanId, Status, CreatedUtc)
    SELECT f.ForloebsplanId, 0, v_Now
    FROM pg_temp.inclusion_result_v3 AS r
    INNER JOIN PLSP.Forloebsplan AS f ON f.PatientId = r.PatientId AND f.ForloebCode = r.ForloebCode
    WHERE r.IsIncluded
        AND (NOT coalesce(r.WasIncluded, false) OR r.AnnualCheckId > coalesce(r.LastAnnualCheckId, 0));
    GET DIAGNOSTICS v_Reports = ROW_COUNT;

    SELECT count(*) FILTER (WHERE r.IsIncluded AND NOT coalesce(r.WasIncluded, false)),
        count(*) FILTER (WHERE NOT r.IsIncluded AND r.WasIncluded)
    INTO v_Included, v_Excluded
    FROM pg_temp.inclusion_result_v3 AS r;

    -- 4. Back on the dirty list, due when the evidence next changes by itself (the
    --    batch's own rows left it in step 2; a swept patient's row may be there, later).
    INSERT INTO PLSP.PatientInkluderetPending AS p (PatientId, QueuedUtc, DueUtc)
    SELECT e.PatientId, v_Now, min(e.DueUtc)
    FROM pg_temp.inclusion_evidence_v3 AS e
    WHERE e.DueUtc > v_Now
    GROUP BY e.PatientId
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
