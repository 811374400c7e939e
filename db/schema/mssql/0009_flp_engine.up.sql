-- Migration 0009 on SQL Server (twin of db/schema/postgresql/0009_flp_engine.up.sql):
-- the FLP engine's rules as data, the conversion's reason codes, the dirty
-- mark (triggers) and the inclusion history's evidence. docs/engine.md says
-- what every table means and which rows are our interpretation.

------------------------------------------------------------------------------
-- Rules as data
------------------------------------------------------------------------------

-- The care-plan types and the RKKP database each reports to.
CREATE TABLE PLSP.RelevantForloeb (
    ForloebCode varchar(10) NOT NULL,
    ActiveFromUtc datetime2(3) NOT NULL,
    ActiveToUtc datetime2(3) NULL,
    RkkpDatabase nvarchar(100) NOT NULL,
    Description nvarchar(200) NOT NULL,
    CONSTRAINT PK_RelevantForloeb PRIMARY KEY CLUSTERED (ForloebCode, ActiveFromUtc)
);

-- Accepted units of an analysis beside its canonical one (RelevantVaerdi.Unit):
-- canonical = (value + AddBefore) * MultiplyBy. Compared without case.
CREATE TABLE PLSP.RelevantVaerdiEnhed (
    Code varchar(20) NOT NULL,
    Unit nvarchar(20) NOT NULL,
    ActiveFromUtc datetime2(3) NOT NULL,
    ActiveToUtc datetime2(3) NULL,
    AddBefore decimal(18, 6) NOT NULL CONSTRAINT DF_RelevantVaerdiEnhed_AddBefore DEFAULT (0),
    MultiplyBy decimal(18, 6) NOT NULL CONSTRAINT DF_RelevantVaerdiEnhed_MultiplyBy DEFAULT (1),
    Description nvarchar(200) NOT NULL,
    CONSTRAINT PK_RelevantVaerdiEnhed PRIMARY KEY CLUSTERED (Code, Unit, ActiveFromUtc)
);

-- Values that include a patient: at least MinCount converted values of Code
-- at or over Threshold (canonical unit) measured in the last WindowMonths.
CREATE TABLE PLSP.RelevantVaerdiInklusion (
    Code varchar(20) NOT NULL,
    ForloebCode varchar(10) NOT NULL,
    ActiveFromUtc datetime2(3) NOT NULL,
    ActiveToUtc datetime2(3) NULL,
    Threshold decimal(18, 4) NOT NULL,
    MinCount int NOT NULL,
    WindowMonths int NOT NULL,
    Description nvarchar(200) NOT NULL,
    CONSTRAINT PK_RelevantVaerdiInklusion PRIMARY KEY CLUSTERED (Code, ForloebCode, ActiveFromUtc),
    CONSTRAINT CK_RelevantVaerdiInklusion_MinCount CHECK (MinCount >= 1),
    CONSTRAINT CK_RelevantVaerdiInklusion_WindowMonths CHECK (WindowMonths >= 1)
);

-- Medication that includes: an ATC prefix with Role 'include' includes into the
-- plan when dispensed in the last WindowMonths; 'exclude' is a narrower prefix
-- that never includes. (PLSP.RelevantMedicin stays the list of accepted codes.)
CREATE TABLE PLSP.RelevantMedicinInklusion (
    AtcPrefix varchar(10) NOT NULL,
    ForloebCode varchar(10) NOT NULL,
    ActiveFromUtc datetime2(3) NOT NULL,
    ActiveToUtc datetime2(3) NULL,
    Role varchar(10) NOT NULL,
    WindowMonths int NOT NULL CONSTRAINT DF_RelevantMedicinInklusion_WindowMonths DEFAULT (12),
    Description nvarchar(200) NOT NULL,
    CONSTRAINT PK_RelevantMedicinInklusion PRIMARY KEY CLUSTERED (AtcPrefix, ForloebCode, ActiveFromUtc),
    CONSTRAINT CK_RelevantMedicinInklusion_Role CHECK (Role IN ('include', 'exclude')),
    CONSTRAINT CK_RelevantMedicinInklusion_WindowMonths CHECK (WindowMonths >= 1)
);

-- Services that are an annual check: an included patient's new one adds an
-- FLP_AIM report. (PLSP.RelevantYdelse stays the list of accepted services.)
CREATE TABLE PLSP.RelevantYdelseAarskontrol (
    ServiceCode char(4) NOT NULL,
    ActiveFromUtc datetime2(3) NOT NULL,
    ActiveToUtc datetime2(3) NULL,
    Description nvarchar(200) NOT NULL,
    CONSTRAINT PK_RelevantYdelseAarskontrol PRIMARY KEY CLUSTERED (ServiceCode, ActiveFromUtc)
);

-- Properties that exclude a patient from every care plan while valid.
CREATE TABLE PLSP.RelevantEgenskab (
    Code varchar(20) NOT NULL,
    ActiveFromUtc datetime2(3) NOT NULL,
    ActiveToUtc datetime2(3) NULL,
    Description nvarchar(200) NOT NULL,
    CONSTRAINT PK_RelevantEgenskab PRIMARY KEY CLUSTERED (Code, ActiveFromUtc)
);

------------------------------------------------------------------------------
-- Conversion, inclusion state and the dirty list
------------------------------------------------------------------------------

-- Why a value is invalid (2) or given up (3); NULL when converted.
ALTER TABLE PLSP.Patientvaerdier ADD ReasonCode varchar(20) NULL;
GO
ALTER TABLE PLSP.Patientvaerdier ADD CONSTRAINT CK_Patientvaerdier_ReasonCode CHECK (
    ReasonCode IN ('empty', 'not_a_number', 'unknown_unit', 'out_of_range', 'ambiguous', 'unknown_analysis', 'bad_time')
);

-- flp status counts the given-up values without reading the converted ones.
CREATE NONCLUSTERED INDEX IX_Patientvaerdier_Rejected ON PLSP.Patientvaerdier (PatientvaerdiId)
WHERE ConversionStatus = 3;

ALTER TABLE PLSP.PatientInkluderet ADD
Evidence nvarchar(400) NULL,
LastAnnualCheckId bigint NULL;  -- the newest annual check (Ydelser id) already reported to AIM
ALTER TABLE PLSP.PatientInkluderet_History ADD Evidence nvarchar(400) NULL;

-- A patient is due when DueUtc has passed: now for a change, later for the
-- moment the patient's evidence next changes on its own (a value leaving its
-- window, a diagnosis ending, a property starting).
ALTER TABLE PLSP.PatientInkluderetPending ADD
DueUtc datetime2(3) NOT NULL CONSTRAINT DF_PatientInkluderetPending_DueUtc DEFAULT (SYSUTCDATETIME());
GO
CREATE NONCLUSTERED INDEX IX_PatientInkluderetPending_Due ON PLSP.PatientInkluderetPending (DueUtc, PatientId);

-- Changes to the Relevant lists, written by triggers: the inclusion check marks
-- the patients with the changed code once the change is effective (and, when
-- it touches many patients, in the off-hours window).
CREATE TABLE PLSP.RelevantChange (
    ChangeId bigint IDENTITY (1, 1) NOT NULL,
    RelevantTable varchar(30) NOT NULL,
    Code varchar(20) NOT NULL,
    CodeSystem varchar(10) NULL,
    EffectiveUtc datetime2(3) NOT NULL,
    RecordedUtc datetime2(3) NOT NULL CONSTRAINT DF_RelevantChange_RecordedUtc DEFAULT (SYSUTCDATETIME()),
    AppliedUtc datetime2(3) NULL,
    Patients int NULL,                   -- patients with the code, counted when the change fell due
    NextPatientId bigint NULL,           -- marking goes in PatientId order, a batch at a time
    Forced bit NOT NULL CONSTRAINT DF_RelevantChange_Forced DEFAULT (0),
    CONSTRAINT PK_RelevantChange PRIMARY KEY CLUSTERED (ChangeId)
);
CREATE NONCLUSTERED INDEX IX_RelevantChange_Unapplied ON PLSP.RelevantChange (EffectiveUtc, ChangeId)
WHERE AppliedUtc IS NULL;

-- A full recompute walks every patient in PatientId order beside the dirty list.
CREATE TABLE PLSP.InclusionSweep (
    SweepId bigint IDENTITY (1, 1) NOT NULL,
    RequestedUtc datetime2(3) NOT NULL CONSTRAINT DF_InclusionSweep_RequestedUtc DEFAULT (SYSUTCDATETIME()),
    NextPatientId bigint NOT NULL CONSTRAINT DF_InclusionSweep_NextPatientId DEFAULT (0),
    Patients bigint NOT NULL CONSTRAINT DF_InclusionSweep_Patients DEFAULT (0),  -- the population when requested
    FinishedUtc datetime2(3) NULL,
    Forced bit NOT NULL CONSTRAINT DF_InclusionSweep_Forced DEFAULT (0),
    CONSTRAINT PK_InclusionSweep PRIMARY KEY CLUSTERED (SweepId)
);
GO

------------------------------------------------------------------------------
-- The dirty mark: one AFTER trigger per table (one set-based upsert per
-- statement, whoever writes). docs/engine.md says why triggers.
------------------------------------------------------------------------------

CREATE TRIGGER PLSP.TR_Patientvaerdier_Dirty ON PLSP.Patientvaerdier
AFTER INSERT, UPDATE, DELETE
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();
    DECLARE @Changed TABLE (PatientId bigint NOT NULL PRIMARY KEY);

    INSERT INTO @Changed (PatientId)
    SELECT x.PatientId
    FROM (
        SELECT i.PatientId, i.ConversionStatus FROM inserted AS i
        UNION ALL
        SELECT d.PatientId, d.ConversionStatus FROM deleted AS d
    ) AS x
    WHERE x.ConversionStatus = 1  -- a value counts once converted
        GROUP BY x.PatientId;

    UPDATE p SET p.DueUtc = @Now
    FROM PLSP.PatientInkluderetPending AS p WITH (UPDLOCK, HOLDLOCK)
    INNER JOIN @Changed AS c ON p.PatientId = c.PatientId
    WHERE p.DueUtc > @Now;

    INSERT INTO PLSP.PatientInkluderetPending (PatientId, QueuedUtc, DueUtc)
    SELECT c.PatientId, @Now, @Now
    FROM @Changed AS c
    WHERE NOT EXISTS (
        SELECT 1 FROM PLSP.PatientInkluderetPending AS p WITH (UPDLOCK, HOLDLOCK) WHERE p.PatientId = c.PatientId
    );
END;
GO

CREATE TRIGGER PLSP.TR_Diagnose_Dirty ON PLSP.Diagnose
AFTER INSERT, UPDATE, DELETE
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();
    DECLARE @Changed TABLE (PatientId bigint NOT NULL PRIMARY KEY);

    INSERT INTO @Changed (PatientId)
    SELECT i.PatientId FROM inserted AS i
    UNION
    SELECT d.PatientId FROM deleted AS d;

    UPDATE p SET p.DueUtc = @Now
    FROM PLSP.PatientInkluderetPending AS p WITH (UPDLOCK, HOLDLOCK)
    INNER JOIN @Changed AS c ON p.PatientId = c.PatientId
    WHERE p.DueUtc > @Now;

    INSERT INTO PLSP.PatientInkluderetPending (PatientId, QueuedUtc, DueUtc)
    SELECT c.PatientId, @Now, @Now
    FROM @Changed AS c
    WHERE NOT EXISTS (
        SELECT 1 FROM PLSP.PatientInkluderetPending AS p WITH (UPDLOCK, HOLDLOCK) WHERE p.PatientId = c.PatientId
    );
END;
GO

CREATE TRIGGER PLSP.TR_Medicin_Dirty ON PLSP.Medicin
AFTER INSERT, UPDATE, DELETE
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();
    DECLARE @Changed TABLE (PatientId bigint NOT NULL PRIMARY KEY);

    INSERT INTO @Changed (PatientId)
    SELECT i.PatientId FROM inserted AS i
    UNION
    SELECT d.PatientId FROM deleted AS d;

    UPDATE p SET p.DueUtc = @Now
    FROM PLSP.PatientInkluderetPending AS p WITH (UPDLOCK, HOLDLOCK)
    INNER JOIN @Changed AS c ON p.PatientId = c.PatientId
    WHERE p.DueUtc > @Now;

    INSERT INTO PLSP.PatientInkluderetPending (PatientId, QueuedUtc, DueUtc)
    SELECT c.PatientId, @Now, @Now
    FROM @Changed AS c
    WHERE NOT EXISTS (
        SELECT 1 FROM PLSP.PatientInkluderetPending AS p WITH (UPDLOCK, HOLDLOCK) WHERE p.PatientId = c.PatientId
    );
END;
GO

CREATE TRIGGER PLSP.TR_Ydelser_Dirty ON PLSP.Ydelser
AFTER INSERT, UPDATE, DELETE
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();
    DECLARE @Changed TABLE (PatientId bigint NOT NULL PRIMARY KEY);

    INSERT INTO @Changed (PatientId)
    SELECT i.PatientId FROM inserted AS i
    UNION
    SELECT d.PatientId FROM deleted AS d;

    UPDATE p SET p.DueUtc = @Now
    FROM PLSP.PatientInkluderetPending AS p WITH (UPDLOCK, HOLDLOCK)
    INNER JOIN @Changed AS c ON p.PatientId = c.PatientId
    WHERE p.DueUtc > @Now;

    INSERT INTO PLSP.PatientInkluderetPending (PatientId, QueuedUtc, DueUtc)
    SELECT c.PatientId, @Now, @Now
    FROM @Changed AS c
    WHERE NOT EXISTS (
        SELECT 1 FROM PLSP.PatientInkluderetPending AS p WITH (UPDLOCK, HOLDLOCK) WHERE p.PatientId = c.PatientId
    );
END;
GO

CREATE TRIGGER PLSP.TR_Egenskaber_Dirty ON PLSP.Egenskaber
AFTER INSERT, UPDATE, DELETE
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();
    DECLARE @Changed TABLE (PatientId bigint NOT NULL PRIMARY KEY);

    INSERT INTO @Changed (PatientId)
    SELECT i.PatientId FROM inserted AS i
    UNION
    SELECT d.PatientId FROM deleted AS d;

    UPDATE p SET p.DueUtc = @Now
    FROM PLSP.PatientInkluderetPending AS p WITH (UPDLOCK, HOLDLOCK)
    INNER JOIN @Changed AS c ON p.PatientId = c.PatientId
    WHERE p.DueUtc > @Now;

    INSERT INTO PLSP.PatientInkluderetPending (PatientId, QueuedUtc, DueUtc)
    SELECT c.PatientId, @Now, @Now
    FROM @Changed AS c
    WHERE NOT EXISTS (
        SELECT 1 FROM PLSP.PatientInkluderetPending AS p WITH (UPDLOCK, HOLDLOCK) WHERE p.PatientId = c.PatientId
    );
END;
GO

------------------------------------------------------------------------------
-- A Relevant row takes effect at ActiveFromUtc and ends at ActiveToUtc: each
-- is one change, recorded for the old and the new version of a row (an old
-- version's instant in the past takes effect now).
------------------------------------------------------------------------------

CREATE TRIGGER PLSP.TR_RelevantDiagnose_Change ON PLSP.RelevantDiagnose
AFTER INSERT, UPDATE, DELETE
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();

    INSERT INTO PLSP.RelevantChange (RelevantTable, Code, CodeSystem, EffectiveUtc)
    SELECT DISTINCT 'relevantdiagnose', x.Code, x.CodeSystem, x.EffectiveUtc
    FROM (
        SELECT i.Code, i.CodeSystem, t.EffectiveUtc
        FROM inserted AS i
        CROSS APPLY (VALUES (i.ActiveFromUtc), (i.ActiveToUtc)) AS t (EffectiveUtc)
        UNION ALL
        SELECT d.Code, d.CodeSystem, CASE WHEN t.EffectiveUtc < @Now THEN @Now ELSE t.EffectiveUtc END
        FROM deleted AS d
        CROSS APPLY (VALUES (d.ActiveFromUtc), (d.ActiveToUtc)) AS t (EffectiveUtc)
    ) AS x
    WHERE x.EffectiveUtc IS NOT NULL;
END;
GO

CREATE TRIGGER PLSP.TR_RelevantMedicinInklusion_Change ON PLSP.RelevantMedicinInklusion
AFTER INSERT, UPDATE, DELETE
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();

    INSERT INTO PLSP.RelevantChange (RelevantTable, Code, CodeSystem, EffectiveUtc)
    SELECT DISTINCT 'relevantmedicininklusion', x.Code, x.CodeSystem, x.EffectiveUtc
    FROM (
        SELECT i.AtcPrefix AS Code, NULL AS CodeSystem, t.EffectiveUtc
        FROM inserted AS i
        CROSS APPLY (VALUES (i.ActiveFromUtc), (i.ActiveToUtc)) AS t (EffectiveUtc)
        UNION ALL
        SELECT d.AtcPrefix, NULL, CASE WHEN t.EffectiveUtc < @Now THEN @Now ELSE t.EffectiveUtc END
        FROM deleted AS d
        CROSS APPLY (VALUES (d.ActiveFromUtc), (d.ActiveToUtc)) AS t (EffectiveUtc)
    ) AS x
    WHERE x.EffectiveUtc IS NOT NULL;
END;
GO

CREATE TRIGGER PLSP.TR_RelevantVaerdiInklusion_Change ON PLSP.RelevantVaerdiInklusion
AFTER INSERT, UPDATE, DELETE
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();

    INSERT INTO PLSP.RelevantChange (RelevantTable, Code, CodeSystem, EffectiveUtc)
    SELECT DISTINCT 'relevantvaerdiinklusion', x.Code, x.CodeSystem, x.EffectiveUtc
    FROM (
        SELECT i.Code, NULL AS CodeSystem, t.EffectiveUtc
        FROM inserted AS i
        CROSS APPLY (VALUES (i.ActiveFromUtc), (i.ActiveToUtc)) AS t (EffectiveUtc)
        UNION ALL
        SELECT d.Code, NULL, CASE WHEN t.EffectiveUtc < @Now THEN @Now ELSE t.EffectiveUtc END
        FROM deleted AS d
        CROSS APPLY (VALUES (d.ActiveFromUtc), (d.ActiveToUtc)) AS t (EffectiveUtc)
    ) AS x
    WHERE x.EffectiveUtc IS NOT NULL;
END;
GO

CREATE TRIGGER PLSP.TR_RelevantEgenskab_Change ON PLSP.RelevantEgenskab
AFTER INSERT, UPDATE, DELETE
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();

    INSERT INTO PLSP.RelevantChange (RelevantTable, Code, CodeSystem, EffectiveUtc)
    SELECT DISTINCT 'relevantegenskab', x.Code, x.CodeSystem, x.EffectiveUtc
    FROM (
        SELECT i.Code, NULL AS CodeSystem, t.EffectiveUtc
        FROM inserted AS i
        CROSS APPLY (VALUES (i.ActiveFromUtc), (i.ActiveToUtc)) AS t (EffectiveUtc)
        UNION ALL
        SELECT d.Code, NULL, CASE WHEN t.EffectiveUtc < @Now THEN @Now ELSE t.EffectiveUtc END
        FROM deleted AS d
        CROSS APPLY (VALUES (d.ActiveFromUtc), (d.ActiveToUtc)) AS t (EffectiveUtc)
    ) AS x
    WHERE x.EffectiveUtc IS NOT NULL;
END;
GO

CREATE TRIGGER PLSP.TR_RelevantYdelseAarskontrol_Change ON PLSP.RelevantYdelseAarskontrol
AFTER INSERT, UPDATE, DELETE
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();

    INSERT INTO PLSP.RelevantChange (RelevantTable, Code, CodeSystem, EffectiveUtc)
    SELECT DISTINCT 'relevantydelseaarskontrol', x.Code, x.CodeSystem, x.EffectiveUtc
    FROM (
        SELECT i.ServiceCode AS Code, NULL AS CodeSystem, t.EffectiveUtc
        FROM inserted AS i
        CROSS APPLY (VALUES (i.ActiveFromUtc), (i.ActiveToUtc)) AS t (EffectiveUtc)
        UNION ALL
        SELECT d.ServiceCode, NULL, CASE WHEN t.EffectiveUtc < @Now THEN @Now ELSE t.EffectiveUtc END
        FROM deleted AS d
        CROSS APPLY (VALUES (d.ActiveFromUtc), (d.ActiveToUtc)) AS t (EffectiveUtc)
    ) AS x
    WHERE x.EffectiveUtc IS NOT NULL;
END;
GO

CREATE TRIGGER PLSP.TR_RelevantForloeb_Change ON PLSP.RelevantForloeb
AFTER INSERT, UPDATE, DELETE
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @Now datetime2(3) = SYSUTCDATETIME();

    INSERT INTO PLSP.RelevantChange (RelevantTable, Code, CodeSystem, EffectiveUtc)
    SELECT DISTINCT 'relevantforloeb', x.Code, x.CodeSystem, x.EffectiveUtc
    FROM (
        SELECT i.ForloebCode AS Code, NULL AS CodeSystem, t.EffectiveUtc
        FROM inserted AS i
        CROSS APPLY (VALUES (i.ActiveFromUtc), (i.ActiveToUtc)) AS t (EffectiveUtc)
        UNION ALL
        SELECT d.ForloebCode, NULL, CASE WHEN t.EffectiveUtc < @Now THEN @Now ELSE t.EffectiveUtc END
        FROM deleted AS d
        CROSS APPLY (VALUES (d.ActiveFromUtc), (d.ActiveToUtc)) AS t (EffectiveUtc)
    ) AS x
    WHERE x.EffectiveUtc IS NOT NULL;
END;
GO
