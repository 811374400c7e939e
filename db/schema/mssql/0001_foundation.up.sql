-- FLP foundation schema, SQL Server. Twin of db/schema/postgresql/0001_foundation.up.sql.
-- Batches are separated by GO lines; the migration runs them one by one and the
-- offline script keeps the GO lines. Times are UTC in datetime2(3) columns whose
-- names end in Utc. Clustered keys follow the batch jobs: ever-increasing ids,
-- sessions by expiry, the log by month partition.

CREATE SCHEMA PLSP AUTHORIZATION dbo;
GO
CREATE SCHEMA Ops AUTHORIZATION dbo;
GO
CREATE SCHEMA Job AUTHORIZATION dbo;
GO
CREATE SCHEMA Api AUTHORIZATION dbo;
GO
CREATE SCHEMA Upload AUTHORIZATION dbo;
GO

------------------------------------------------------------------------------
-- Care-plan data
------------------------------------------------------------------------------

CREATE TABLE PLSP.Klinik (
    KlinikId int IDENTITY (1, 1) NOT NULL,
    SorCode varchar(20) NOT NULL,
    Ydernummer varchar(10) NOT NULL,
    Name nvarchar(200) NOT NULL,
    CreatedUtc datetime2(3) NOT NULL CONSTRAINT DF_Klinik_CreatedUtc DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_Klinik PRIMARY KEY CLUSTERED (KlinikId),
    CONSTRAINT UQ_Klinik_SorCode UNIQUE (SorCode)
);

CREATE TABLE PLSP.Patient (
    PatientId bigint IDENTITY (1, 1) NOT NULL,
    Cpr char(10) NOT NULL,  -- personal data: never logged in clear
    KlinikId int NOT NULL,
    GivenName nvarchar(100) NOT NULL,
    FamilyName nvarchar(100) NOT NULL,
    BirthDate date NOT NULL,
    Sex char(1) NOT NULL,
    CreatedUtc datetime2(3) NOT NULL CONSTRAINT DF_Patient_CreatedUtc DEFAULT (SYSUTCDATETIME()),
    UpdatedUtc datetime2(3) NOT NULL CONSTRAINT DF_Patient_UpdatedUtc DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_Patient PRIMARY KEY CLUSTERED (PatientId),
    CONSTRAINT UQ_Patient_Cpr UNIQUE (Cpr),
    CONSTRAINT FK_Patient_Klinik FOREIGN KEY (KlinikId) REFERENCES PLSP.Klinik (KlinikId),
    CONSTRAINT CK_Patient_Cpr CHECK (Cpr NOT LIKE '%[^0-9]%' AND LEN(Cpr) = 10),
    CONSTRAINT CK_Patient_Sex CHECK (Sex IN ('M', 'F'))
);

-- One care plan per patient and condition (SKS forløb label).
CREATE TABLE PLSP.Forloebsplan (
    ForloebsplanId bigint IDENTITY (1, 1) NOT NULL,
    PatientId bigint NOT NULL,
    ForloebCode varchar(10) NOT NULL,  -- ALAL22 diabetes 2, ALAL21 KOL, ALAL02 heart
    SetId uniqueidentifier NOT NULL CONSTRAINT DF_Forloebsplan_SetId DEFAULT (NEWID()),  -- CDA setId
    VersionNumber int NOT NULL CONSTRAINT DF_Forloebsplan_VersionNumber DEFAULT (1),     -- CDA versionNumber
    Status tinyint NOT NULL CONSTRAINT DF_Forloebsplan_Status DEFAULT (1),               -- 1 active, 2 closed
    CreatedUtc datetime2(3) NOT NULL CONSTRAINT DF_Forloebsplan_CreatedUtc DEFAULT (SYSUTCDATETIME()),
    UpdatedUtc datetime2(3) NOT NULL CONSTRAINT DF_Forloebsplan_UpdatedUtc DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_Forloebsplan PRIMARY KEY CLUSTERED (ForloebsplanId),
    CONSTRAINT UQ_Forloebsplan_Patient_Forloeb UNIQUE (PatientId, ForloebCode),
    CONSTRAINT FK_Forloebsplan_Patient FOREIGN KEY (PatientId) REFERENCES PLSP.Patient (PatientId),
    CONSTRAINT CK_Forloebsplan_Status CHECK (Status IN (1, 2)),
    CONSTRAINT CK_Forloebsplan_VersionNumber CHECK (VersionNumber >= 1)
);

-- Measurements and lab results as the LPS sent them, beside the converted value.
CREATE TABLE PLSP.Patientvaerdier (
    PatientvaerdiId bigint IDENTITY (1, 1) NOT NULL,
    PatientId bigint NOT NULL,
    Code varchar(20) NOT NULL,           -- NPU27300, DNK05472, MCS88015, ...
    RawValue nvarchar(100) NULL,         -- '7,5', '<5', '53 mmol/mol', ''
    RawTime varchar(40) NULL,            -- '24-08-2018', '20180824121545+0200'
    ValueNumeric decimal(18, 4) NULL,    -- set by ConvertPatientValues
    Comparator varchar(2) NULL,          -- '<', '>', '<=', '>=' when the raw value had one
    Unit nvarchar(20) NULL,
    MeasuredUtc datetime2(3) NULL,       -- set by ConvertPatientValues
    ConversionStatus tinyint NOT NULL CONSTRAINT DF_Patientvaerdier_ConversionStatus DEFAULT (0),
    -- 0 new, 1 converted, 2 invalid (retried), 3 given up
    ConversionAttempts smallint NOT NULL CONSTRAINT DF_Patientvaerdier_ConversionAttempts DEFAULT (0),
    ReceivedUtc datetime2(3) NOT NULL CONSTRAINT DF_Patientvaerdier_ReceivedUtc DEFAULT (SYSUTCDATETIME()),
    ConvertedUtc datetime2(3) NULL,
    CONSTRAINT PK_Patientvaerdier PRIMARY KEY CLUSTERED (PatientvaerdiId),
    CONSTRAINT FK_Patientvaerdier_Patient FOREIGN KEY (PatientId) REFERENCES PLSP.Patient (PatientId),
    CONSTRAINT CK_Patientvaerdier_ConversionStatus CHECK (ConversionStatus IN (0, 1, 2, 3)),
    CONSTRAINT CK_Patientvaerdier_Comparator CHECK (Comparator IN ('<', '>', '<=', '>='))
);
-- The app, CDA and inclusion read a patient's values by code and time.
CREATE NONCLUSTERED INDEX IX_Patientvaerdier_Patient_Code
ON PLSP.Patientvaerdier (PatientId, Code, MeasuredUtc)
INCLUDE (ValueNumeric, Unit, Comparator);
-- The conversion jobs find their work without scanning converted rows.
CREATE NONCLUSTERED INDEX IX_Patientvaerdier_Unconverted
ON PLSP.Patientvaerdier (PatientvaerdiId)
WHERE ConversionStatus IN (0, 2);

CREATE TABLE PLSP.Diagnose (
    DiagnoseId bigint IDENTITY (1, 1) NOT NULL,
    PatientId bigint NOT NULL,
    Code varchar(10) NOT NULL,           -- T90, R95, K74, DE11, DJ44, DI25
    CodeSystem varchar(10) NOT NULL,     -- ICPC2 or SKS
    DiagnosedDate date NOT NULL,
    EndedDate date NULL,
    ReceivedUtc datetime2(3) NOT NULL CONSTRAINT DF_Diagnose_ReceivedUtc DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_Diagnose PRIMARY KEY CLUSTERED (DiagnoseId),
    CONSTRAINT FK_Diagnose_Patient FOREIGN KEY (PatientId) REFERENCES PLSP.Patient (PatientId),
    CONSTRAINT CK_Diagnose_CodeSystem CHECK (CodeSystem IN ('ICPC2', 'SKS'))
);
CREATE NONCLUSTERED INDEX IX_Diagnose_Patient ON PLSP.Diagnose (PatientId);

CREATE TABLE PLSP.Medicin (
    MedicinId bigint IDENTITY (1, 1) NOT NULL,
    PatientId bigint NOT NULL,
    AtcCode varchar(10) NOT NULL,        -- A10BA02, R03AC02, C10AA01, B01AC06
    DrugName nvarchar(200) NULL,
    StartDate date NOT NULL,
    EndDate date NULL,
    ReceivedUtc datetime2(3) NOT NULL CONSTRAINT DF_Medicin_ReceivedUtc DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_Medicin PRIMARY KEY CLUSTERED (MedicinId),
    CONSTRAINT FK_Medicin_Patient FOREIGN KEY (PatientId) REFERENCES PLSP.Patient (PatientId)
);
CREATE NONCLUSTERED INDEX IX_Medicin_Patient ON PLSP.Medicin (PatientId);

-- Services billed under the GP agreement.
CREATE TABLE PLSP.Ydelser (
    YdelseId bigint IDENTITY (1, 1) NOT NULL,
    PatientId bigint NOT NULL,
    KlinikId int NOT NULL,
    ServiceCode char(4) NOT NULL,        -- 0120 annual check, 0101 consultation, ...
    ServiceDate date NOT NULL,
    ReceivedUtc datetime2(3) NOT NULL CONSTRAINT DF_Ydelser_ReceivedUtc DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_Ydelser PRIMARY KEY CLUSTERED (YdelseId),
    CONSTRAINT FK_Ydelser_Patient FOREIGN KEY (PatientId) REFERENCES PLSP.Patient (PatientId),
    CONSTRAINT FK_Ydelser_Klinik FOREIGN KEY (KlinikId) REFERENCES PLSP.Klinik (KlinikId)
);
CREATE NONCLUSTERED INDEX IX_Ydelser_Patient_Date ON PLSP.Ydelser (PatientId, ServiceDate);

-- Patient properties such as opted out or deceased.
CREATE TABLE PLSP.Egenskaber (
    EgenskabId bigint IDENTITY (1, 1) NOT NULL,
    PatientId bigint NOT NULL,
    Code varchar(20) NOT NULL,           -- FRAVALGT (opted out), DOED (deceased), ...
    Value nvarchar(100) NULL,
    ValidFromUtc datetime2(3) NOT NULL,
    ValidToUtc datetime2(3) NULL,
    CONSTRAINT PK_Egenskaber PRIMARY KEY CLUSTERED (EgenskabId),
    CONSTRAINT FK_Egenskaber_Patient FOREIGN KEY (PatientId) REFERENCES PLSP.Patient (PatientId)
);
CREATE NONCLUSTERED INDEX IX_Egenskaber_Patient ON PLSP.Egenskaber (PatientId);

-- Current inclusion state, one row per patient and care-plan population.
CREATE TABLE PLSP.PatientInkluderet (
    PatientId bigint NOT NULL,
    ForloebCode varchar(10) NOT NULL,
    IsIncluded bit NOT NULL,
    Reason nvarchar(200) NOT NULL,
    ChangedUtc datetime2(3) NOT NULL CONSTRAINT DF_PatientInkluderet_ChangedUtc DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_PatientInkluderet PRIMARY KEY CLUSTERED (PatientId, ForloebCode),
    CONSTRAINT FK_PatientInkluderet_Patient FOREIGN KEY (PatientId) REFERENCES PLSP.Patient (PatientId)
);

-- Every inclusion change, append-only.
CREATE TABLE PLSP.PatientInkluderet_History (
    HistoryId bigint IDENTITY (1, 1) NOT NULL,
    PatientId bigint NOT NULL,
    ForloebCode varchar(10) NOT NULL,
    IsIncluded bit NOT NULL,
    Reason nvarchar(200) NOT NULL,
    ChangedUtc datetime2(3) NOT NULL,
    CONSTRAINT PK_PatientInkluderet_History PRIMARY KEY CLUSTERED (HistoryId)
);
CREATE NONCLUSTERED INDEX IX_PatientInkluderet_History_Patient ON PLSP.PatientInkluderet_History (PatientId);

-- Patients whose data changed since the inclusion check last looked: the check
-- works on these only, never on the whole population.
CREATE TABLE PLSP.PatientInkluderetPending (
    PatientId bigint NOT NULL,
    QueuedUtc datetime2(3) NOT NULL CONSTRAINT DF_PatientInkluderetPending_QueuedUtc DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_PatientInkluderetPending PRIMARY KEY CLUSTERED (PatientId)
);

------------------------------------------------------------------------------
-- Relevant (reference) tables. A change is staged with a future ActiveFromUtc,
-- so new codes take effect at night, not in GPs' working hours.
------------------------------------------------------------------------------

CREATE TABLE PLSP.RelevantVaerdi (
    Code varchar(20) NOT NULL,
    ActiveFromUtc datetime2(3) NOT NULL,
    ActiveToUtc datetime2(3) NULL,
    ForloebCode varchar(10) NULL,        -- NULL: relevant for every care plan
    Unit nvarchar(20) NULL,
    DataType varchar(10) NOT NULL,       -- numeric or text
    MinValue decimal(18, 4) NULL,
    MaxValue decimal(18, 4) NULL,
    Description nvarchar(200) NOT NULL,
    CONSTRAINT PK_RelevantVaerdi PRIMARY KEY CLUSTERED (Code, ActiveFromUtc),
    CONSTRAINT CK_RelevantVaerdi_DataType CHECK (DataType IN ('numeric', 'text'))
);

CREATE TABLE PLSP.RelevantDiagnose (
    CodeSystem varchar(10) NOT NULL,
    Code varchar(10) NOT NULL,
    ActiveFromUtc datetime2(3) NOT NULL,
    ActiveToUtc datetime2(3) NULL,
    ForloebCode varchar(10) NOT NULL,    -- the population this diagnosis includes into
    Description nvarchar(200) NOT NULL,
    CONSTRAINT PK_RelevantDiagnose PRIMARY KEY CLUSTERED (CodeSystem, Code, ActiveFromUtc)
);

CREATE TABLE PLSP.RelevantMedicin (
    AtcPrefix varchar(10) NOT NULL,      -- A10 matches A10BA02
    ActiveFromUtc datetime2(3) NOT NULL,
    ActiveToUtc datetime2(3) NULL,
    ForloebCode varchar(10) NOT NULL,
    Description nvarchar(200) NOT NULL,
    CONSTRAINT PK_RelevantMedicin PRIMARY KEY CLUSTERED (AtcPrefix, ActiveFromUtc)
);

CREATE TABLE PLSP.RelevantYdelse (
    ServiceCode char(4) NOT NULL,
    ActiveFromUtc datetime2(3) NOT NULL,
    ActiveToUtc datetime2(3) NULL,
    Description nvarchar(200) NOT NULL,
    CONSTRAINT PK_RelevantYdelse PRIMARY KEY CLUSTERED (ServiceCode, ActiveFromUtc)
);

------------------------------------------------------------------------------
-- AIM reporting (names from the seed). A row is in exactly one of the two tables.
------------------------------------------------------------------------------

CREATE TABLE PLSP.FLP_AIM (
    Id bigint IDENTITY (1, 1) NOT NULL,
    ForloebsplanId bigint NOT NULL,
    Status tinyint NOT NULL CONSTRAINT DF_FLP_AIM_Status DEFAULT (0),  -- 0 pending, 1 queued, 2 delivered
    CreatedUtc datetime2(3) NOT NULL CONSTRAINT DF_FLP_AIM_CreatedUtc DEFAULT (SYSUTCDATETIME()),
    QueuedUtc datetime2(3) NULL,
    DeliveredUtc datetime2(3) NULL,
    CONSTRAINT PK_FLP_AIM PRIMARY KEY CLUSTERED (Id),
    CONSTRAINT CK_FLP_AIM_Status CHECK (Status IN (0, 1, 2))
);
-- FlpAimImport takes pending rows in Id order without reading delivered ones.
CREATE NONCLUSTERED INDEX IX_FLP_AIM_Pending ON PLSP.FLP_AIM (Id) WHERE Status = 0;

CREATE TABLE PLSP.FLP_AIM_History (
    Id bigint NOT NULL,
    ForloebsplanId bigint NOT NULL,
    Status tinyint NOT NULL,
    CreatedUtc datetime2(3) NOT NULL,
    QueuedUtc datetime2(3) NULL,
    DeliveredUtc datetime2(3) NULL,
    ArchivedUtc datetime2(3) NOT NULL CONSTRAINT DF_FLP_AIM_History_ArchivedUtc DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_FLP_AIM_History PRIMARY KEY CLUSTERED (Id)
);

------------------------------------------------------------------------------
-- Sessions (purged every 10 minutes) and the PLSP log table (cleaned monthly)
------------------------------------------------------------------------------

-- Clustered by expiry: the purge removes a range at the start of the table while
-- new sessions arrive at its end.
CREATE TABLE PLSP.Session (
    SessionId uniqueidentifier NOT NULL,
    KlinikId int NULL,
    UserRef nvarchar(100) NOT NULL,      -- pseudonymous user reference, never a CPR
    CreatedUtc datetime2(3) NOT NULL CONSTRAINT DF_Session_CreatedUtc DEFAULT (SYSUTCDATETIME()),
    ExpiresUtc datetime2(3) NOT NULL,
    CONSTRAINT PK_Session PRIMARY KEY NONCLUSTERED (SessionId)
);
CREATE UNIQUE CLUSTERED INDEX IX_Session_Expires ON PLSP.Session (ExpiresUtc, SessionId);
GO

-- Partitioned by month so the clean-up switches whole months out: its cost does
-- not grow with the rows removed and writers are never blocked by row deletes.
-- Boundaries 2024-01 to 2031-01 exist from the start; RANGE RIGHT keeps a first
-- and last partition for anything outside, so a log writer never fails.
CREATE PARTITION FUNCTION PF_Log_Month (datetime2(3))
AS RANGE RIGHT FOR VALUES (
    '2024-01-01', '2024-02-01', '2024-03-01', '2024-04-01', '2024-05-01', '2024-06-01',
    '2024-07-01', '2024-08-01', '2024-09-01', '2024-10-01', '2024-11-01', '2024-12-01',
    '2025-01-01', '2025-02-01', '2025-03-01', '2025-04-01', '2025-05-01', '2025-06-01',
    '2025-07-01', '2025-08-01', '2025-09-01', '2025-10-01', '2025-11-01', '2025-12-01',
    '2026-01-01', '2026-02-01', '2026-03-01', '2026-04-01', '2026-05-01', '2026-06-01',
    '2026-07-01', '2026-08-01', '2026-09-01', '2026-10-01', '2026-11-01', '2026-12-01',
    '2027-01-01', '2027-02-01', '2027-03-01', '2027-04-01', '2027-05-01', '2027-06-01',
    '2027-07-01', '2027-08-01', '2027-09-01', '2027-10-01', '2027-11-01', '2027-12-01',
    '2028-01-01', '2028-02-01', '2028-03-01', '2028-04-01', '2028-05-01', '2028-06-01',
    '2028-07-01', '2028-08-01', '2028-09-01', '2028-10-01', '2028-11-01', '2028-12-01',
    '2029-01-01', '2029-02-01', '2029-03-01', '2029-04-01', '2029-05-01', '2029-06-01',
    '2029-07-01', '2029-08-01', '2029-09-01', '2029-10-01', '2029-11-01', '2029-12-01',
    '2030-01-01', '2030-02-01', '2030-03-01', '2030-04-01', '2030-05-01', '2030-06-01',
    '2030-07-01', '2030-08-01', '2030-09-01', '2030-10-01', '2030-11-01', '2030-12-01',
    '2031-01-01'
);
GO
CREATE PARTITION SCHEME PS_Log_Month AS PARTITION PF_Log_Month ALL TO ([PRIMARY]);
GO

CREATE TABLE PLSP.Log (
    LogId bigint IDENTITY (1, 1) NOT NULL,
    LoggedUtc datetime2(3) NOT NULL CONSTRAINT DF_Log_LoggedUtc DEFAULT (SYSUTCDATETIME()),
    Level varchar(10) NOT NULL,
    Source nvarchar(100) NOT NULL,
    Message nvarchar(2000) NOT NULL,
    CorrelationId uniqueidentifier NULL,
    CONSTRAINT PK_Log PRIMARY KEY CLUSTERED (LoggedUtc, LogId) ON PS_Log_Month (LoggedUtc)
) ON PS_Log_Month (LoggedUtc);

------------------------------------------------------------------------------
-- Operations
------------------------------------------------------------------------------

-- One row per run of a job, whoever started it.
CREATE TABLE Ops.JobRun (
    JobRunId bigint IDENTITY (1, 1) NOT NULL,
    JobName varchar(100) NOT NULL,
    TriggeredBy varchar(20) NOT NULL,    -- orchestrator, agent (SQL Agent / pg_cron), manual, demo, test
    Host nvarchar(128) NOT NULL,
    StartedUtc datetime2(3) NOT NULL CONSTRAINT DF_JobRun_StartedUtc DEFAULT (SYSUTCDATETIME()),
    EndedUtc datetime2(3) NULL,
    Status varchar(20) NOT NULL,         -- running, succeeded, stopped, failed, abandoned, skipped
    RowsAffected bigint NOT NULL CONSTRAINT DF_JobRun_RowsAffected DEFAULT (0),
    Parameters nvarchar(4000) NULL,
    Message nvarchar(4000) NULL,
    CONSTRAINT PK_JobRun PRIMARY KEY CLUSTERED (JobRunId),
    CONSTRAINT CK_JobRun_TriggeredBy CHECK (TriggeredBy IN ('orchestrator', 'agent', 'manual', 'demo', 'test')),
    CONSTRAINT CK_JobRun_Status CHECK (
        Status IN ('running', 'succeeded', 'stopped', 'failed', 'abandoned', 'skipped')
    )
);
CREATE NONCLUSTERED INDEX IX_JobRun_JobName_Started ON Ops.JobRun (JobName, StartedUtc) INCLUDE (Status);

-- One row per batch of a batched job: what the job did, in how long.
CREATE TABLE Ops.JobRunBatch (
    JobRunId bigint NOT NULL,
    BatchNo int NOT NULL,
    StartedUtc datetime2(3) NOT NULL,
    DurationMs int NOT NULL,
    BatchSize int NOT NULL,
    RowsAffected int NOT NULL,
    Note nvarchar(400) NULL,
    CONSTRAINT PK_JobRunBatch PRIMARY KEY CLUSTERED (JobRunId, BatchNo),
    CONSTRAINT FK_JobRunBatch_JobRun FOREIGN KEY (JobRunId) REFERENCES Ops.JobRun (JobRunId)
);

-- Settings jobs read at run time ('*' applies to every job unless a job has its own).
CREATE TABLE Ops.Setting (
    JobName varchar(100) NOT NULL,
    Name varchar(100) NOT NULL,
    Value nvarchar(400) NOT NULL,
    Description nvarchar(400) NOT NULL,
    UpdatedUtc datetime2(3) NOT NULL CONSTRAINT DF_Setting_UpdatedUtc DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_Setting PRIMARY KEY CLUSTERED (JobName, Name)
);

-- Liveness of orchestrators: one row per process, updated while it runs.
CREATE TABLE Ops.Heartbeat (
    Component varchar(200) NOT NULL,     -- e.g. orchestrator@host:pid
    Host nvarchar(128) NOT NULL,
    ProcessId int NOT NULL,
    StartedUtc datetime2(3) NOT NULL,
    BeatUtc datetime2(3) NOT NULL,
    CONSTRAINT PK_Heartbeat PRIMARY KEY CLUSTERED (Component)
);

-- The embedded message queue (RabbitMQ replaces it in production). A fetched
-- message becomes visible again after its visibility timeout unless acknowledged.
CREATE TABLE Ops.QueueMessage (
    MessageId bigint IDENTITY (1, 1) NOT NULL,
    QueueName varchar(100) NOT NULL,
    Body nvarchar(MAX) NOT NULL,
    EnqueuedUtc datetime2(3) NOT NULL CONSTRAINT DF_QueueMessage_EnqueuedUtc DEFAULT (SYSUTCDATETIME()),
    VisibleAfterUtc datetime2(3) NOT NULL CONSTRAINT DF_QueueMessage_VisibleAfterUtc DEFAULT (SYSUTCDATETIME()),
    DeliveryCount int NOT NULL CONSTRAINT DF_QueueMessage_DeliveryCount DEFAULT (0),
    CONSTRAINT PK_QueueMessage PRIMARY KEY CLUSTERED (MessageId)
);
CREATE NONCLUSTERED INDEX IX_QueueMessage_Queue_Visible ON Ops.QueueMessage (QueueName, VisibleAfterUtc, MessageId);

------------------------------------------------------------------------------
-- Settings every batched job reads ('*' = default for all jobs)
------------------------------------------------------------------------------

INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
('*', 'BatchTargetMs', '200', 'target duration of one batch, milliseconds'),
('*', 'BatchSizeStart', '1000', 'rows in the first batch'),
('*', 'BatchSizeMin', '100', 'smallest batch, rows'),
('*', 'BatchSizeMax', '4000', 'largest batch, rows (under the 5,000-lock escalation threshold)'),
('*', 'SleepFactor', '0.5', 'pause after a batch as a multiple of its duration'),
('*', 'TimeLimitSeconds', '3600', 'no new batch starts after this many seconds'),
('*', 'HealthMaxActive', '20', 'pause while more other sessions than this are active'),
('*', 'HealthMaxLockWaits', '2', 'pause while more sessions than this wait for a lock'),
('*', 'HealthHoldSeconds', '5', 'once paused, stay paused at least this long'),
('*', 'HealthMaxPauseSeconds', '300', 'stop cleanly after pausing this long in one run');
GO

------------------------------------------------------------------------------
-- Roles. Logins are added as members by the DBA. Nobody gets table rights:
-- ownership chaining (everything owned by dbo) lets the procedures of a schema
-- reach the tables for the role that may execute them.
------------------------------------------------------------------------------

CREATE ROLE flp_orchestrator AUTHORIZATION dbo;
GO
CREATE ROLE flp_reader AUTHORIZATION dbo;
GO
CREATE ROLE flp_lps AUTHORIZATION dbo;
GO
GRANT EXECUTE ON SCHEMA::Job TO flp_orchestrator;
GRANT EXECUTE ON SCHEMA::Api TO flp_reader;
GRANT EXECUTE ON SCHEMA::Upload TO flp_lps;
