-- Migration 0009 on PostgreSQL (twin of db/schema/mssql/0009_flp_engine.up.sql):
-- the FLP engine's rules as data, the conversion's reason codes, the dirty
-- mark (triggers) and the inclusion history's evidence. docs/engine.md says
-- what every table means and which rows are our interpretation.

------------------------------------------------------------------------------
-- Rules as data
------------------------------------------------------------------------------

-- The care-plan types and the RKKP database each reports to.
CREATE TABLE PLSP.RelevantForloeb (
    ForloebCode varchar(10) NOT NULL,
    ActiveFromUtc timestamp(3) NOT NULL,
    ActiveToUtc timestamp(3) NULL,
    RkkpDatabase varchar(100) NOT NULL,
    Description varchar(200) NOT NULL,
    CONSTRAINT PK_RelevantForloeb PRIMARY KEY (ForloebCode, ActiveFromUtc)
);

-- Accepted units of an analysis beside its canonical one (RelevantVaerdi.Unit):
-- canonical = (value + AddBefore) * MultiplyBy. Compared without case.
CREATE TABLE PLSP.RelevantVaerdiEnhed (
    Code varchar(20) NOT NULL,
    Unit varchar(20) NOT NULL,
    ActiveFromUtc timestamp(3) NOT NULL,
    ActiveToUtc timestamp(3) NULL,
    AddBefore numeric(18, 6) NOT NULL DEFAULT 0,
    MultiplyBy numeric(18, 6) NOT NULL DEFAULT 1,
    Description varchar(200) NOT NULL,
    CONSTRAINT PK_RelevantVaerdiEnhed PRIMARY KEY (Code, Unit, ActiveFromUtc)
);

-- Values that include a patient: at least MinCount converted values of Code
-- at or over Threshold (canonical unit) measured in the last WindowMonths.
CREATE TABLE PLSP.RelevantVaerdiInklusion (
    Code varchar(20) NOT NULL,
    ForloebCode varchar(10) NOT NULL,
    ActiveFromUtc timestamp(3) NOT NULL,
    ActiveToUtc timestamp(3) NULL,
    Threshold numeric(18, 4) NOT NULL,
    MinCount integer NOT NULL,
    WindowMonths integer NOT NULL,
    Description varchar(200) NOT NULL,
    CONSTRAINT PK_RelevantVaerdiInklusion PRIMARY KEY (Code, ForloebCode, ActiveFromUtc),
    CONSTRAINT CK_RelevantVaerdiInklusion_MinCount CHECK (MinCount >= 1),
    CONSTRAINT CK_RelevantVaerdiInklusion_WindowMonths CHECK (WindowMonths >= 1)
);

-- Medication that includes: an ATC prefix with Role 'include' includes into the
-- plan when dispensed in the last WindowMonths; 'exclude' is a narrower prefix
-- that never includes. (PLSP.RelevantMedicin stays the list of accepted codes.)
CREATE TABLE PLSP.RelevantMedicinInklusion (
    AtcPrefix varchar(10) NOT NULL,
    ForloebCode varchar(10) NOT NULL,
    ActiveFromUtc timestamp(3) NOT NULL,
    ActiveToUtc timestamp(3) NULL,
    Role varchar(10) NOT NULL,
    WindowMonths integer NOT NULL DEFAULT 12,
    Description varchar(200) NOT NULL,
    CONSTRAINT PK_RelevantMedicinInklusion PRIMARY KEY (AtcPrefix, ForloebCode, ActiveFromUtc),
    CONSTRAINT CK_RelevantMedicinInklusion_Role CHECK (Role IN ('include', 'exclude')),
    CONSTRAINT CK_RelevantMedicinInklusion_WindowMonths CHECK (WindowMonths >= 1)
);

-- Services that are an annual check: an included patient's new one adds an
-- FLP_AIM report. (PLSP.RelevantYdelse stays the list of accepted services.)
CREATE TABLE PLSP.RelevantYdelseAarskontrol (
    ServiceCode char(4) NOT NULL,
    ActiveFromUtc timestamp(3) NOT NULL,
    ActiveToUtc timestamp(3) NULL,
    Description varchar(200) NOT NULL,
    CONSTRAINT PK_RelevantYdelseAarskontrol PRIMARY KEY (ServiceCode, ActiveFromUtc)
);

-- Properties that exclude a patient from every care plan while valid.
CREATE TABLE PLSP.RelevantEgenskab (
    Code varchar(20) NOT NULL,
    ActiveFromUtc timestamp(3) NOT NULL,
    ActiveToUtc timestamp(3) NULL,
    Description varchar(200) NOT NULL,
    CONSTRAINT PK_RelevantEgenskab PRIMARY KEY (Code, ActiveFromUtc)
);

------------------------------------------------------------------------------
-- Conversion, inclusion state and the dirty list
------------------------------------------------------------------------------

-- Why a value is invalid (2) or given up (3); NULL when converted.
ALTER TABLE PLSP.Patientvaerdier ADD COLUMN ReasonCode varchar(20) NULL;
ALTER TABLE PLSP.Patientvaerdier ADD CONSTRAINT CK_Patientvaerdier_ReasonCode CHECK (
    ReasonCode IN ('empty', 'not_a_number', 'unknown_unit', 'out_of_range', 'ambiguous', 'unknown_analysis', 'bad_time')
);

-- flp status counts the given-up values without reading the converted ones.
CREATE INDEX IX_Patientvaerdier_Rejected ON PLSP.Patientvaerdier (PatientvaerdiId) WHERE ConversionStatus = 3;

ALTER TABLE PLSP.PatientInkluderet ADD COLUMN Evidence varchar(400) NULL;
-- The newest annual check (Ydelser id) already reported to AIM for this plan.
ALTER TABLE PLSP.PatientInkluderet ADD COLUMN LastAnnualCheckId bigint NULL;
ALTER TABLE PLSP.PatientInkluderet_History ADD COLUMN Evidence varchar(400) NULL;

-- A patient is due when DueUtc has passed: now for a change, later for the
-- moment the patient's evidence next changes on its own (a value leaving its
-- window, a diagnosis ending, a property starting).
ALTER TABLE PLSP.PatientInkluderetPending ADD COLUMN DueUtc timestamp(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC');
CREATE INDEX IX_PatientInkluderetPending_Due ON PLSP.PatientInkluderetPending (DueUtc, PatientId);

-- Changes to the Relevant lists, written by triggers: the inclusion check marks
-- the patients with the changed code once the change is effective (and, when
-- it touches many patients, in the off-hours window).
CREATE TABLE PLSP.RelevantChange (
    ChangeId bigint GENERATED BY DEFAULT AS IDENTITY,
    RelevantTable varchar(30) NOT NULL,
    Code varchar(20) NOT NULL,
    CodeSystem varchar(10) NULL,
    EffectiveUtc timestamp(3) NOT NULL,
    RecordedUtc timestamp(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    AppliedUtc timestamp(3) NULL,
    Patients integer NULL,               -- patients with the code, counted when the change fell due
    NextPatientId bigint NULL,           -- marking goes in PatientId order, a batch at a time
    Forced boolean NOT NULL DEFAULT false,
    CONSTRAINT PK_RelevantChange PRIMARY KEY (ChangeId)
);
CREATE INDEX IX_RelevantChange_Unapplied ON PLSP.RelevantChange (EffectiveUtc, ChangeId) WHERE AppliedUtc IS NULL;

-- A full recompute walks every patient in PatientId order beside the dirty list.
CREATE TABLE PLSP.InclusionSweep (
    SweepId bigint GENERATED BY DEFAULT AS IDENTITY,
    RequestedUtc timestamp(3) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    NextPatientId bigint NOT NULL DEFAULT 0,
    Patients bigint NOT NULL DEFAULT 0,  -- the population when requested: decides the window rule
    FinishedUtc timestamp(3) NULL,
    Forced boolean NOT NULL DEFAULT false,
    CONSTRAINT PK_InclusionSweep PRIMARY KEY (SweepId)
);

------------------------------------------------------------------------------
-- The dirty mark: statement-level triggers (one set-based insert per
-- statement, whoever writes). docs/engine.md says why triggers.
------------------------------------------------------------------------------

CREATE FUNCTION PLSP.mark_dirty() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Now timestamp(3) := date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC');
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO PLSP.PatientInkluderetPending AS p (PatientId, QueuedUtc, DueUtc)
        SELECT DISTINCT n.PatientId, v_Now, v_Now
        FROM new_rows AS n
        ON CONFLICT (PatientId) DO UPDATE SET DueUtc = EXCLUDED.DueUtc
        WHERE p.DueUtc > EXCLUDED.DueUtc;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO PLSP.PatientInkluderetPending AS p (PatientId, QueuedUtc, DueUtc)
        SELECT DISTINCT o.PatientId, v_Now, v_Now
        FROM old_rows AS o
        ON CONFLICT (PatientId) DO UPDATE SET DueUtc = EXCLUDED.DueUtc
        WHERE p.DueUtc > EXCLUDED.DueUtc;
    END IF;
    RETURN NULL;
END;
$$;

-- Patient values count once converted (status 1): a raw upload or a value
-- found invalid changes no inclusion, so it marks nobody.
CREATE FUNCTION PLSP.mark_dirty_values() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_Now timestamp(3) := date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC');
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO PLSP.PatientInkluderetPending AS p (PatientId, QueuedUtc, DueUtc)
        SELECT DISTINCT n.PatientId, v_Now, v_Now
        FROM new_rows AS n
        WHERE n.ConversionStatus = 1
        ON CONFLICT (PatientId) DO UPDATE SET DueUtc = EXCLUDED.DueUtc
        WHERE p.DueUtc > EXCLUDED.DueUtc;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO PLSP.PatientInkluderetPending AS p (PatientId, QueuedUtc, DueUtc)
        SELECT DISTINCT o.PatientId, v_Now, v_Now
        FROM old_rows AS o
        WHERE o.ConversionStatus = 1
        ON CONFLICT (PatientId) DO UPDATE SET DueUtc = EXCLUDED.DueUtc
        WHERE p.DueUtc > EXCLUDED.DueUtc;
    END IF;
    RETURN NULL;
END;
$$;

DO $$
DECLARE
    v_Table text;
BEGIN
    FOREACH v_Table IN ARRAY ARRAY['Patientvaerdier', 'Diagnose', 'Medicin', 'Ydelser', 'Egenskaber'] LOOP
        EXECUTE format(
            'CREATE TRIGGER TR_%1$s_Dirty_Insert AFTER INSERT ON PLSP.%1$s REFERENCING NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION PLSP.%2$s()', v_Table,
            CASE v_Table WHEN 'Patientvaerdier' THEN 'mark_dirty_values' ELSE 'mark_dirty' END);
        EXECUTE format(
            'CREATE TRIGGER TR_%1$s_Dirty_Update AFTER UPDATE ON PLSP.%1$s '
            'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION PLSP.%2$s()', v_Table,
            CASE v_Table WHEN 'Patientvaerdier' THEN 'mark_dirty_values' ELSE 'mark_dirty' END);
        EXECUTE format(
            'CREATE TRIGGER TR_%1$s_Dirty_Delete AFTER DELETE ON PLSP.%1$s REFERENCING OLD TABLE AS old_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION PLSP.%2$s()', v_Table,
            CASE v_Table WHEN 'Patientvaerdier' THEN 'mark_dirty_values' ELSE 'mark_dirty' END);
    END LOOP;
END
$$;

-- A Relevant row takes effect at ActiveFromUtc and ends at ActiveToUtc: each
-- is one change, recorded for the old and the new version of a row.
CREATE FUNCTION PLSP.record_relevant_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO PLSP.RelevantChange (RelevantTable, Code, CodeSystem, EffectiveUtc)
        SELECT DISTINCT TG_TABLE_NAME, r.Code, r.CodeSystem, r.EffectiveUtc
        FROM (
            SELECT coalesce(j ->> 'code', j ->> 'atcprefix', j ->> 'servicecode', j ->> 'forloebcode') AS Code,
                j ->> 'codesystem' AS CodeSystem,
                t.EffectiveUtc
            FROM new_rows AS n
            CROSS JOIN LATERAL (SELECT to_jsonb(n) AS j) AS x
            CROSS JOIN LATERAL (
                VALUES ((j ->> 'activefromutc')::timestamp(3)), ((j ->> 'activetoutc')::timestamp(3))
            ) AS t (EffectiveUtc)
            WHERE t.EffectiveUtc IS NOT NULL
        ) AS r;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO PLSP.RelevantChange (RelevantTable, Code, CodeSystem, EffectiveUtc)
        SELECT DISTINCT TG_TABLE_NAME, r.Code, r.CodeSystem,
            greatest(r.EffectiveUtc, date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC'))
        FROM (
            SELECT coalesce(j ->> 'code', j ->> 'atcprefix', j ->> 'servicecode', j ->> 'forloebcode') AS Code,
                j ->> 'codesystem' AS CodeSystem,
                t.EffectiveUtc
            FROM old_rows AS o
            CROSS JOIN LATERAL (SELECT to_jsonb(o) AS j) AS x
            CROSS JOIN LATERAL (
                VALUES ((j ->> 'activefromutc')::timestamp(3)), ((j ->> 'activetoutc')::timestamp(3))
            ) AS t (EffectiveUtc)
            WHERE t.EffectiveUtc IS NOT NULL
        ) AS r;
    END IF;
    RETURN NULL;
END;
$$;

DO $$
DECLARE
    v_Table text;
BEGIN
    FOREACH v_Table IN ARRAY ARRAY[
        'RelevantDiagnose', 'RelevantMedicinInklusion', 'RelevantVaerdiInklusion', 'RelevantEgenskab',
        'RelevantYdelseAarskontrol', 'RelevantForloeb'
    ] LOOP
        EXECUTE format(
            'CREATE TRIGGER TR_%1$s_Change_Insert AFTER INSERT ON PLSP.%1$s REFERENCING NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION PLSP.record_relevant_change()', v_Table);
        EXECUTE format(
            'CREATE TRIGGER TR_%1$s_Change_Update AFTER UPDATE ON PLSP.%1$s '
            'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION PLSP.record_relevant_change()', v_Table);
        EXECUTE format(
            'CREATE TRIGGER TR_%1$s_Change_Delete AFTER DELETE ON PLSP.%1$s REFERENCING OLD TABLE AS old_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION PLSP.record_relevant_change()', v_Table);
    END LOOP;
END
$$;

-- Trigger functions are for the triggers only: PostgreSQL checks EXECUTE when a
-- trigger is created, not when it fires, so no role needs it (and PUBLIC's
-- default grant would let any login call them).
REVOKE ALL ON FUNCTION PLSP.mark_dirty() FROM PUBLIC;
REVOKE ALL ON FUNCTION PLSP.mark_dirty_values() FROM PUBLIC;
REVOKE ALL ON FUNCTION PLSP.record_relevant_change() FROM PUBLIC;
