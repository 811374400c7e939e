-- Job.check_inclusion_batch, version 3.
-- One batch of CheckPatientInkluded (Job.check_inclusion runs it through
-- Job.run_batched). The work is in proportion to what changed (known problem 2):
--   1. Job.relevant_changes_mark marks the patients of due Relevant-list
--      changes (a slice of its RelevantChangeMarkSlice setting, not of
--      @BatchSize; large changes wait for the off-hours window); called only
--      when a change is due (one index probe otherwise).
--   2. Up to @BatchSize due patients of the dirty list (PLSP.PatientInkluderetPending,
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
-- @Position counts the patients this run has evaluated: the batch stops the
-- run (done) at the MaxPatientsPerRun setting, the budget of one run; the
-- engine's time limit (TimeLimitSeconds) is the other.
-- @Execute = 'N' counts the due patients (and the patients due changes
-- would mark) and writes nothing.
--
-- Steps 2 to 4 are one short transaction; @BatchSize at most 4,000 patients.
--
-- Differences from the PostgreSQL twin, one line each:
--   * Digit checks are binary LIKEs (COLLATE Latin1_General_BIN2: ASCII digits only); the twin: ASCII patterns.
--   * READPAST with UPDLOCK; the twin: FOR UPDATE SKIP LOCKED.
--   * The claim is a DELETE of a TOP (n) ... ORDER BY common table expression with OUTPUT; the twin: a DELETE by row address.
--   * Table variables; the twin: arrays and temporary tables.
--   * UPDATE, then INSERT ... WHERE NOT EXISTS; the twin: INSERT ... ON CONFLICT.
--   * STRING_AGG over DISTINCT subqueries; the twin: string_agg(DISTINCT ...).
CREATE OR ALTER PROCEDURE Job.check_inclusion_batch
    @BatchSize int,
    @Execute char(1),
    @Position bigint = NULL OUTPUT,
    @Rows int = NULL OUTPUT,
    @Done bit = NULL OUTPUT,
    @Note nvarchar(400) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT, XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET DEADLOCK_PRIORITY LOW;
    SET TRANSACTION ISOLATION LEVEL READ COMMITTED;  -- READPAST needs READ COMMITTED (error 650 otherwise); reverts on return
    IF @@LOCK_TIMEOUT < 0
        SET LOCK_TIMEOUT 1000;  -- called on its own: never wait forever; reverts on return

    DECLARE @Errors nvarchar(2048) = N'';
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();
    DECLARE @Today date = CAST(SYSUTCDATETIME() AS date);
    DECLARE @Text nvarchar(400);
    DECLARE @BudgetText nvarchar(400);
    DECLARE @MaxPerRun int;
    DECLARE @MaxPatients int;
    DECLARE @Take int;
    DECLARE @PendingCount int;
    DECLARE @SweptCount int = 0;
    DECLARE @SweepId bigint;
    DECLARE @SweepNext bigint;
    DECLARE @SweepPatients bigint;
    DECLARE @SweepForced bit;
    DECLARE @SweepLast bigint;
    DECLARE @OffHours bit;
    DECLARE @LocalTime varchar(30);
    DECLARE @Holiday nvarchar(40);
    DECLARE @Changes int;
    DECLARE @Marked int;
    DECLARE @Waiting int;
    DECLARE @Included int = 0;
    DECLARE @Excluded int = 0;
    DECLARE @Reports int = 0;
    DECLARE @Pending TABLE (PatientId bigint NOT NULL PRIMARY KEY);
    DECLARE @Ids TABLE (PatientId bigint NOT NULL PRIMARY KEY);
    DECLARE @Due TABLE (PatientId bigint NOT NULL PRIMARY KEY, DueUtc datetime2(3) NOT NULL);
    DECLARE @Evidence TABLE (
        PatientId bigint NOT NULL,
        ForloebCode varchar(10) NULL,
        Kind varchar(10) NOT NULL,
        Item nvarchar(60) NULL,
        Counts bit NOT NULL,
        DueUtc datetime2(3) NULL,
        AnnualCheckId bigint NULL
    );
    DECLARE @Result TABLE (
        PatientId bigint NOT NULL,
        ForloebCode varchar(10) NOT NULL,
        IsIncluded bit NOT NULL,
        Reason nvarchar(200) NOT NULL,
        Evidence nvarchar(400) NULL,
        WasIncluded bit NULL,
        WasReason nvarchar(200) NULL,
        WasEvidence nvarchar(400) NULL,
        AnnualCheckId bigint NULL,
        LastAnnualCheckId bigint NULL,
        PRIMARY KEY (PatientId, ForloebCode)
    );

    ----------------------------------------------------------------------------
    -- Check requirements
    ----------------------------------------------------------------------------
    IF @@TRANCOUNT <> 0
        SET @Errors += N'Job.check_inclusion_batch must not run inside a transaction: it commits its own short transaction. ';

    ----------------------------------------------------------------------------
    -- Check parameters (and the settings they depend on)
    ----------------------------------------------------------------------------
    IF @BatchSize IS NULL OR @BatchSize < 1 OR @BatchSize > 4000
        SET @Errors += N'The value for the parameter @BatchSize is not supported: give 1 to 4000 patients (under lock escalation at 5,000 locks). ';
    IF @Execute IS NULL OR @Execute NOT IN ('Y', 'N')
        SET @Errors += N'The value for the parameter @Execute is not supported: use Y (evaluate) or N (count only). ';
    IF @Position < 0
        SET @Errors += N'The value for the parameter @Position is not supported: give NULL or the patients evaluated so far in this run. ';
    SELECT
        @BudgetText = MAX(CASE WHEN s.Name = 'MaxPatientsPerRun' THEN s.Value END),
        @Text = MAX(CASE WHEN s.Name = 'RelevantChangeMaxPatients' THEN s.Value END)
    FROM Ops.Setting AS s
    WHERE s.JobName = 'check_inclusion';
    IF LEN(@BudgetText) BETWEEN 1 AND 9 AND @BudgetText NOT LIKE N'%[^0-9]%' COLLATE Latin1_General_BIN2
        SET @MaxPerRun = NULLIF(TRY_CAST(@BudgetText AS int), 0);
    IF @MaxPerRun IS NULL
        SET @Errors += N'Setting MaxPatientsPerRun (Ops.Setting, job check_inclusion) is missing or not a whole number of patients from 1. ';
    IF LEN(@Text) BETWEEN 1 AND 9 AND @Text NOT LIKE N'%[^0-9]%' COLLATE Latin1_General_BIN2
        SET @MaxPatients = TRY_CAST(@Text AS int);
    IF @MaxPatients IS NULL
        SET @Errors += N'Setting RelevantChangeMaxPatients (Ops.Setting, job check_inclusion) is missing or not a whole number of patients. ';

    ----------------------------------------------------------------------------
    -- Raise collected errors
    ----------------------------------------------------------------------------
    IF @Errors <> N''
        THROW 50001, @Errors, 1;

    ----------------------------------------------------------------------------
    -- Do the work
    ----------------------------------------------------------------------------
    SET @Take = CASE
        WHEN @BatchSize < @MaxPerRun - COALESCE(@Position, 0) THEN @BatchSize
        ELSE @MaxPerRun - COALESCE(@Position, 0)
    END;
    IF @Take <= 0
    BEGIN
        SET @Rows = 0;
        SET @Done = 1;
        SET @Note = CONCAT(N'budget of ', @MaxPerRun, N' patients a run reached');
        RETURN;
    END;

    -- 1. Relevant-list changes that fell due (their own short transactions; the common
    --    case, none, costs one index probe).
    IF EXISTS (
        SELECT 1 FROM PLSP.RelevantChange AS c
        WHERE c.AppliedUtc IS NULL AND c.EffectiveUtc <= @Now
    )
        EXEC Job.relevant_changes_mark
            @NowUtc = NULL,
            @Force = 'N',
            @Execute = @Execute,
            @Limit = NULL,
            @Changes = @Changes OUTPUT,
            @Patients = @Marked OUTPUT,
            @Waiting = @Waiting OUTPUT;
    ELSE
        SELECT
            @Changes = 0,
            @Marked = 0,
            @Waiting = 0;

    BEGIN TRY
        IF @Execute = 'Y'
            BEGIN TRANSACTION;

        -- 2. The due patients, and the running sweep's next ones.
        IF @Execute = 'Y'
        BEGIN
            -- Claimed by taking them off the list at once (the queue idiom); step 4 puts
            -- back the ones due later. A writer marking one of them meanwhile waits for
            -- this commit, then marks it again.
            WITH claim AS (
                SELECT TOP (@Take)
                    p.PatientId,
                    p.DueUtc
                -- READPAST needs a locking read: UPDLOCK (RCSI databases raise error 650 otherwise).
                FROM PLSP.PatientInkluderetPending AS p WITH (ROWLOCK, UPDLOCK, READPAST)
                WHERE p.DueUtc <= @Now
                ORDER BY p.DueUtc, p.PatientId
            )

            DELETE FROM claim
            OUTPUT deleted.PatientId INTO @Pending (PatientId);
        END
        ELSE
            INSERT INTO @Pending (PatientId)
            SELECT TOP (@Take) p.PatientId
            -- READPAST needs a locking read: READCOMMITTEDLOCK (RCSI databases raise error 650 otherwise).
            FROM PLSP.PatientInkluderetPending AS p WITH (READCOMMITTEDLOCK, READPAST)
            WHERE p.DueUtc <= @Now
            ORDER BY p.DueUtc, p.PatientId;
        SELECT @PendingCount = COUNT(*) FROM @Pending;
        INSERT INTO @Ids (PatientId) SELECT p.PatientId FROM @Pending AS p;

        IF @PendingCount < @Take
        BEGIN
            SELECT TOP (1)
                @SweepId = w.SweepId,
                @SweepNext = w.NextPatientId,
                @SweepPatients = w.Patients,
                @SweepForced = w.Forced
            FROM PLSP.InclusionSweep AS w WITH (UPDLOCK)
            WHERE w.FinishedUtc IS NULL
            ORDER BY w.SweepId;
            IF @SweepId IS NOT NULL
            BEGIN
                EXEC Job.off_hours_check
                    @NowUtc = @Now,
                    @OffHours = @OffHours OUTPUT,
                    @LocalTime = @LocalTime OUTPUT,
                    @Holiday = @Holiday OUTPUT;
                IF @SweepForced = 1 OR @OffHours = 1 OR @SweepPatients <= @MaxPatients
                BEGIN
                    INSERT INTO @Ids (PatientId)
                    SELECT TOP (@Take - @PendingCount) p.PatientId
                    FROM PLSP.Patient AS p
                    WHERE p.PatientId > @SweepNext AND NOT EXISTS (SELECT 1 FROM @Pending AS x WHERE x.PatientId = p.PatientId)
                    ORDER BY p.PatientId;
                    SET @SweptCount = @@ROWCOUNT;
                    SELECT @SweepLast = MAX(i.PatientId) FROM @Ids AS i WHERE NOT EXISTS (
                        SELECT 1 FROM @Pending AS x WHERE x.PatientId = i.PatientId
                    );
                    IF @Execute = 'Y'
                        UPDATE w
                        SET
                            w.NextPatientId = COALESCE(@SweepLast, w.NextPatientId),
                            w.FinishedUtc = CASE WHEN @SweptCount < @Take - @PendingCount THEN @Now END
                        FROM PLSP.InclusionSweep AS w
                        WHERE w.SweepId = @SweepId;
                END;
            END;
        END;

        IF @Execute = 'N'
        BEGIN
            SET @Rows = @PendingCount + @SweptCount + @Marked;
            SET @Done = CASE WHEN @PendingCount + @SweptCount < @Take THEN 1 ELSE 0 END;
            SET @Position = COALESCE(@Position, 0) + @PendingCount + @SweptCount;
            SET @Note = CONCAT(
                N'would evaluate ', @PendingCount + @SweptCount, N' patients; Relevant changes would mark ', @Marked,
                N', waiting for the off-hours window ', @Waiting
            );
            RETURN;
        END;

        -- 3. One pass over each evidence table for these patients, at @Now: every row
        --    that counts now (Counts) or changes by itself later (DueUtc), with its plan.
        WITH diagnosis_rule AS (
            SELECT DISTINCT
                r.CodeSystem,
                r.Code,
                r.ForloebCode
            FROM PLSP.RelevantDiagnose AS r
            WHERE r.ActiveFromUtc <= @Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > @Now)
        ),

        medication_rule AS (
            SELECT DISTINCT
                r.AtcPrefix,
                r.ForloebCode,
                r.WindowMonths,
                DATEADD(MONTH, -r.WindowMonths, @Today) AS EndedAfter
            FROM PLSP.RelevantMedicinInklusion AS r
            WHERE
                r.Role = 'include'
                AND r.ActiveFromUtc <= @Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > @Now)
        ),

        medication_exclude AS (
            SELECT DISTINCT
                x.AtcPrefix,
                x.ForloebCode
            FROM PLSP.RelevantMedicinInklusion AS x
            WHERE
                x.Role = 'exclude'
                AND x.ActiveFromUtc <= @Now AND (x.ActiveToUtc IS NULL OR x.ActiveToUtc > @Now)
        ),

        value_rule AS (
            SELECT
                r.Code,
                r.ForloebCode,
                r.Threshold,
                r.MinCount,
                r.WindowMonths,
                DATEADD(MONTH, -r.WindowMonths, @Now) AS MeasuredAfter,
                ROW_NUMBER() OVER (PARTITION BY r.Code, r.ForloebCode ORDER BY r.ActiveFromUtc DESC) AS Pick
            FROM PLSP.RelevantVaerdiInklusion AS r
            WHERE r.ActiveFromUtc <= @Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > @Now)
        ),

        property_rule AS (
            SELECT DISTINCT r.Code
            FROM PLSP.RelevantEgenskab AS r
            WHERE r.ActiveFromUtc <= @Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > @Now)
        ),

        annual_rule AS (
            SELECT DISTINCT r.ServiceCode
            FROM PLSP.RelevantYdelseAarskontrol AS r
            WHERE r.ActiveFromUtc <= @Now AND (r.ActiveToUtc IS NULL OR r.ActiveToUtc > @Now)
        ),

        value_hits AS (
            SELECT
                x.PatientId,
                r.ForloebCode,
                r.Code,
                SUM(CASE WHEN x.MeasuredUtc <= @Now THEN 1 ELSE 0 END) AS Hits,
                MAX(r.MinCount) AS MinCount,
                MIN(CASE
                    WHEN x.MeasuredUtc > @Now THEN x.MeasuredUtc
                    WHEN DATEADD(MONTH, r.WindowMonths, x.MeasuredUtc) > DATEADD(DAY, 1, @Now)
                        THEN DATEADD(MONTH, r.WindowMonths, x.MeasuredUtc)
                    ELSE DATEADD(DAY, 1, @Now)
                END) AS DueUtc
            FROM @Ids AS i
            INNER JOIN PLSP.Patientvaerdier AS x ON i.PatientId = x.PatientId
            INNER JOIN value_rule AS r ON x.Code = r.Code AND x.MeasuredUtc > r.MeasuredAfter
            WHERE
                r.Pick = 1 AND x.ConversionStatus = 1
                AND x.ValueNumeric >= r.Threshold AND COALESCE(x.Comparator, '>=') NOT IN ('<', '<=')
            GROUP BY x.PatientId, r.ForloebCode, r.Code
        )

        INSERT INTO @Evidence (PatientId, ForloebCode, Kind, Item, Counts, DueUtc, AnnualCheckId)
        -- Diagnoses under a plan's prefix: count from the diagnosis date until they end.
        SELECT
            d.PatientId,
            r.ForloebCode,
            'diagnosis',
            CAST(d.CodeSystem + ' ' + d.Code AS nvarchar(60)),
            CASE WHEN d.DiagnosedDate <= @Today AND (d.EndedDate IS NULL OR d.EndedDate > @Today) THEN 1 ELSE 0 END,
            CASE
                WHEN d.DiagnosedDate > @Today THEN CAST(d.DiagnosedDate AS datetime2(3))
                WHEN d.EndedDate > @Today THEN CAST(d.EndedDate AS datetime2(3))
            END,
            NULL
        FROM @Ids AS i
        INNER JOIN PLSP.Diagnose AS d ON i.PatientId = d.PatientId
        INNER JOIN diagnosis_rule AS r ON d.CodeSystem = r.CodeSystem AND d.Code LIKE r.Code + '%'
        WHERE d.DiagnosedDate > @Today OR d.EndedDate IS NULL OR d.EndedDate > @Today
        UNION ALL
        -- Medication under an include prefix (and no exclude prefix of the plan): counts
        -- from its start until WindowMonths after it ended.
        SELECT
            m.PatientId,
            r.ForloebCode,
            'medication',
            CAST(m.AtcCode AS nvarchar(60)),
            CASE
                WHEN
                    m.StartDate <= @Today AND (m.EndDate IS NULL OR m.EndDate >= r.EndedAfter)
                    AND NOT EXISTS (
                        SELECT 1 FROM medication_exclude AS x
                        WHERE x.ForloebCode = r.ForloebCode AND m.AtcCode LIKE x.AtcPrefix + '%'
                    )
                    THEN 1
                ELSE 0
            END,
            CASE
                WHEN m.StartDate > @Today THEN CAST(m.StartDate AS datetime2(3))
                -- A month-end window may lapse a few days after this: then again a day later.
                WHEN m.EndDate >= r.EndedAfter AND DATEADD(DAY, 1, DATEADD(MONTH, r.WindowMonths, m.EndDate)) > DATEADD(DAY, 1, @Today)
                    THEN CAST(DATEADD(DAY, 1, DATEADD(MONTH, r.WindowMonths, m.EndDate)) AS datetime2(3))
                WHEN m.EndDate >= r.EndedAfter THEN CAST(DATEADD(DAY, 1, @Today) AS datetime2(3))
            END,
            NULL
        FROM @Ids AS i
        INNER JOIN PLSP.Medicin AS m ON i.PatientId = m.PatientId
        INNER JOIN medication_rule AS r ON m.AtcCode LIKE r.AtcPrefix + '%'
        WHERE m.StartDate > @Today OR m.EndDate IS NULL OR m.EndDate >= r.EndedAfter
        UNION ALL
        -- Converted values at or over the threshold in the window: the rule counts with
        -- MinCount of them; each one leaves the window WindowMonths after it was measured.
        SELECT
            h.PatientId,
            h.ForloebCode,
            'values',
            CAST(CONCAT(h.Code, ' x', h.Hits) AS nvarchar(60)),
            CASE WHEN h.Hits >= h.MinCount THEN 1 ELSE 0 END,
            h.DueUtc,
            NULL
        FROM value_hits AS h
        UNION ALL
        -- Properties that exclude while valid (every plan: ForloebCode NULL).
        SELECT
            e.PatientId,
            NULL,
            'property',
            CAST(e.Code AS nvarchar(60)),
            CASE WHEN e.ValidFromUtc <= @Now AND (e.ValidToUtc IS NULL OR e.ValidToUtc > @Now) THEN 1 ELSE 0 END,
            CASE WHEN e.ValidFromUtc > @Now THEN e.ValidFromUtc WHEN e.ValidToUtc > @Now THEN e.ValidToUtc END,
            NULL
        FROM @Ids AS i
        INNER JOIN PLSP.Egenskaber AS e ON i.PatientId = e.PatientId
        WHERE
            (e.ValidToUtc IS NULL OR e.ValidToUtc > @Now)
            AND e.Code IN (SELECT p.Code FROM property_rule AS p)
        UNION ALL
        -- The newest annual check, once per patient.
        SELECT
            y.PatientId,
            NULL,
            'annual',
            NULL,
            1,
            NULL,
            MAX(y.YdelseId)
        FROM @Ids AS i
        INNER JOIN PLSP.Ydelser AS y ON i.PatientId = y.PatientId
        WHERE
            y.ServiceDate <= @Today
            AND y.ServiceCode IN (SELECT a.ServiceCode FROM annual_rule AS a)
        GROUP BY y.PatientId;

        -- The rules, for these patients and every active care-plan type, from the evidence.
        WITH plans AS (
            SELECT DISTINCT f.ForloebCode
            FROM PLSP.RelevantForloeb AS f
            WHERE f.ActiveFromUtc <= @Now AND (f.ActiveToUtc IS NULL OR f.ActiveToUtc > @Now)
        ),

        found_items AS (
            SELECT DISTINCT
                e.PatientId,
                e.ForloebCode,
                e.Kind,
                e.Item
            FROM @Evidence AS e
            WHERE e.Counts = 1 AND e.ForloebCode IS NOT NULL
        ),

        found AS (
            SELECT
                h.PatientId,
                h.ForloebCode,
                NULLIF(STRING_AGG(CASE WHEN h.Kind = 'diagnosis' THEN h.Item END, N', ')
                WITHIN GROUP (ORDER BY h.Item), N'') AS Diagnosis,
                NULLIF(STRING_AGG(CASE WHEN h.Kind = 'medication' THEN h.Item END, N', ')
                WITHIN GROUP (ORDER BY h.Item), N'') AS Medication,
                NULLIF(STRING_AGG(CASE WHEN h.Kind = 'values' THEN h.Item END, N', ')
                WITHIN GROUP (ORDER BY h.Item), N'') AS Valued
            FROM found_items AS h
            GROUP BY h.PatientId, h.ForloebCode
        ),

        per_patient AS (
            SELECT
                e.PatientId,
                MIN(CASE WHEN e.Kind = 'property' THEN e.Item END) AS Property,
                MAX(e.AnnualCheckId) AS AnnualCheckId
            FROM @Evidence AS e
            WHERE e.Counts = 1 AND e.ForloebCode IS NULL
            GROUP BY e.PatientId
        ),

        judged AS (
            SELECT
                i.PatientId,
                f.ForloebCode,
                q.AnnualCheckId,
                CASE
                    WHEN q.Property IS NULL AND (d.Diagnosis IS NOT NULL OR d.Medication IS NOT NULL OR d.Valued IS NOT NULL)
                        THEN 1
                    ELSE 0
                END AS IsIncluded,
                CASE
                    WHEN q.Property IS NOT NULL THEN N'excluded: property ' + q.Property
                    WHEN d.Diagnosis IS NOT NULL THEN N'included: diagnosis'
                    WHEN d.Medication IS NOT NULL THEN N'included: medication'
                    WHEN d.Valued IS NOT NULL THEN N'included: values'
                    ELSE N'excluded: no evidence'
                END AS Reason,
                NULLIF(LEFT(CONCAT_WS(
                    N'; ', N'diagnosis ' + d.Diagnosis, N'medication ' + d.Medication, N'values ' + d.Valued
                ), 400), N'') AS Evidence
            FROM @Ids AS i
            CROSS JOIN plans AS f
            LEFT JOIN per_patient AS q ON i.PatientId = q.PatientId
            LEFT JOIN found AS d ON i.PatientId = d.PatientId AND f.ForloebCode = d.ForloebCode
        )

        INSERT INTO @Result (
            PatientId, ForloebCode, IsIncluded, Reason, Evidence, WasIncluded, WasReason, WasEvidence,
            AnnualCheckId, LastAnnualCheckId
        )
        SELECT
            j.PatientId,
            j.ForloebCode,
            j.IsIncluded,
            j.Reason,
            j.Evidence,
            c.IsIncluded AS WasIncluded,
            c.Reason AS WasReason,
            c.Evidence AS WasEvidence,
            j.AnnualCheckId,
            c.LastAnnualCheckId
        FROM judged AS j
        LEFT JOIN PLSP.PatientInkluderet AS c ON j.PatientId = c.PatientId AND j.ForloebCode = c.ForloebCode
        -- A patient never included and not included now gets no row.
        WHERE j.IsIncluded = 1 OR c.PatientId IS NOT NULL;

        -- The state: update or insert, only where something changed.
        UPDATE c
        SET
            c.ChangedUtc = CASE
                WHEN c.IsIncluded <> r.IsIncluded OR c.Reason <> r.Reason THEN @Now ELSE c.ChangedUtc
            END,
            c.IsIncluded = r.IsIncluded,
            c.Reason = r.Reason,
            c.Evidence = r.Evidence,
            c.LastAnnualCheckId = CASE WHEN r.IsIncluded = 1 THEN r.AnnualCheckId ELSE c.LastAnnualCheckId END
        FROM PLSP.PatientInkluderet AS c
        INNER JOIN @Result AS r ON c.PatientId = r.PatientId AND c.ForloebCode = r.ForloebCode
        WHERE
            c.IsIncluded <> r.IsIncluded OR c.Reason <> r.Reason
            OR COALESCE(c.Evidence, N'') <> COALESCE(r.Evidence, N'')
            OR (r.IsIncluded = 1 AND r.AnnualCheckId > COALESCE(r.LastAnnualCheckId, 0));

        INSERT INTO PLSP.PatientInkluderet (PatientId, ForloebCode, IsIncluded, Reason, Evidence, ChangedUtc, LastAnnualCheckId)
        SELECT r.PatientId, r.ForloebCode, r.IsIncluded, r.Reason, r.Evidence, @Now, r.AnnualCheckId
        FROM @Result AS r
        WHERE r.WasIncluded IS NULL;

        -- Every inclusion and exclusion (and change of reason), with evidence and time.
        INSERT INTO PLSP.PatientInkluderet_History (PatientId, ForloebCode, IsIncluded, Reason, Evidence, ChangedUtc)
        SELECT r.PatientId, r.ForloebCode, r.IsIncluded, r.Reason, r.Evidence, @Now
        FROM @Result AS r
        WHERE r.WasIncluded IS NULL OR r.WasIncluded <> r.IsIncluded OR r.WasReason <> r.Reason;

        -- A new inclusion needs an open care plan.
        UPDATE f
        SET f.Status = 1, f.UpdatedUtc = @Now
        FROM PLSP.Forloebsplan AS f
        INNER JOIN @Result AS r ON f.PatientId = r.PatientId AND f.ForloebCode = r.ForloebCode
        WHERE r.IsIncluded = 1 AND COALESCE(r.WasIncluded, 0) = 0 AND f.Status <> 1;

        INSERT INTO PLSP.Forloebsplan (PatientId, ForloebCode)
        SELECT r.PatientId, r.ForloebCode
        FROM @Result AS r
        WHERE
            r.IsIncluded = 1 AND COALESCE(r.WasIncluded, 0) = 0
            AND NOT EXISTS (
                SELECT 1
                FROM PLSP.Forloebsplan AS f
                    WITH (UPDLOCK, HOLDLOCK, FORCESEEK (UQ_Forloebsplan_Patient_Forloeb (PatientId, ForloebCode)))
                WHERE f.PatientId = r.PatientId AND f.ForloebCode = r.ForloebCode
            );

        -- AIM: a new inclusion, and an included patient's new annual check.
        INSERT INTO PLSP.FLP_AIM (ForloebsplanId, Status, CreatedUtc)
        SELECT f.ForloebsplanId, 0, @Now
        FROM @Result AS r
        INNER JOIN PLSP.Forloebsplan AS f ON r.PatientId = f.PatientId AND r.ForloebCode = f.ForloebCode
        WHERE
            r.IsIncluded = 1
            AND (COALESCE(r.WasIncluded, 0) = 0 OR r.AnnualCheckId > COALESCE(r.LastAnnualCheckId, 0));
        SET @Reports = @@ROWCOUNT;

        SELECT
            @Included = COALESCE(SUM(CASE WHEN r.IsIncluded = 1 AND COALESCE(r.WasIncluded, 0) = 0 THEN 1 ELSE 0 END), 0),
            @Excluded = COALESCE(SUM(CASE WHEN r.IsIncluded = 0 AND r.WasIncluded = 1 THEN 1 ELSE 0 END), 0)
        FROM @Result AS r;

        -- 4. Back on the dirty list, due when the evidence next changes by itself (the
        --    batch's own rows left it in step 2; a swept patient's row may be there, later).
        INSERT INTO @Due (PatientId, DueUtc)
        SELECT
            e.PatientId,
            MIN(e.DueUtc)
        FROM @Evidence AS e
        WHERE e.DueUtc > @Now
        GROUP BY e.PatientId;

        -- FORCESEEK on the primary key: a probe per patient of @Due, never a scan (or a
        -- DueUtc range) of the whole dirty list, which under HOLDLOCK would range-lock
        -- every row it reads and escalate to a table lock past 5,000.
        UPDATE p SET p.DueUtc = n.DueUtc
        FROM PLSP.PatientInkluderetPending AS p WITH (UPDLOCK, HOLDLOCK, FORCESEEK (PK_PatientInkluderetPending (PatientId)))
        INNER JOIN @Due AS n ON p.PatientId = n.PatientId
        WHERE p.DueUtc > n.DueUtc;

        INSERT INTO PLSP.PatientInkluderetPending (PatientId, QueuedUtc, DueUtc)
        SELECT n.PatientId, @Now, n.DueUtc
        FROM @Due AS n
        WHERE NOT EXISTS (
            SELECT 1 FROM PLSP.PatientInkluderetPending AS p WITH (UPDLOCK, HOLDLOCK, FORCESEEK (PK_PatientInkluderetPending (PatientId)))
            WHERE p.PatientId = n.PatientId
        );

        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        THROW;
    END CATCH;

    SET @Rows = @PendingCount + @SweptCount;
    SET @Done = CASE WHEN @PendingCount + @SweptCount < @Take AND @Marked = 0 THEN 1 ELSE 0 END;
    SET @Position = COALESCE(@Position, 0) + @PendingCount + @SweptCount;
    SET @Note = LEFT(CONCAT(
        N'evaluated ', @PendingCount, N' dirty',
        CASE WHEN @SweptCount > 0 THEN CONCAT(N' and ', @SweptCount, N' swept') END,
        N' patients: included ', @Included, N', excluded ', @Excluded, N', AIM reports ', @Reports,
        N'; Relevant changes marked ', @Marked, N' (finished ', @Changes, N', waiting for off-hours ', @Waiting, N')'
    ), 400);
END;
