-- Migration 0011 on SQL Server: validated LPS uploads (issue 11, docs/http.md).
-- Every uploaded row carries its key within the patient and a content hash,
-- so an unchanged row in a resync is found by one index seek and causes no
-- write (and so no dirty mark for the inclusion engine). Adding NULL columns
-- is a metadata-only change.
ALTER TABLE PLSP.Patientvaerdier ADD UploadKey nvarchar(200) NULL, ContentHash binary(32) NULL;
ALTER TABLE PLSP.Diagnose ADD UploadKey nvarchar(200) NULL, ContentHash binary(32) NULL;
ALTER TABLE PLSP.Medicin ADD UploadKey nvarchar(200) NULL, ContentHash binary(32) NULL;
ALTER TABLE PLSP.Ydelser ADD UploadKey nvarchar(200) NULL, ContentHash binary(32) NULL;
ALTER TABLE PLSP.Egenskaber ADD UploadKey nvarchar(200) NULL, ContentHash binary(32) NULL;
-- The hash of the patient's last accepted document: a resync of the same
-- document is recognised before it is read row by row.
ALTER TABLE PLSP.Patient ADD UploadDocumentHash binary(32) NULL;
GO

CREATE UNIQUE INDEX UX_Patientvaerdier_UploadKey ON PLSP.Patientvaerdier (PatientId, UploadKey)
    INCLUDE (ContentHash) WHERE UploadKey IS NOT NULL;
CREATE UNIQUE INDEX UX_Diagnose_UploadKey ON PLSP.Diagnose (PatientId, UploadKey)
    INCLUDE (ContentHash) WHERE UploadKey IS NOT NULL;
CREATE UNIQUE INDEX UX_Medicin_UploadKey ON PLSP.Medicin (PatientId, UploadKey)
    INCLUDE (ContentHash) WHERE UploadKey IS NOT NULL;
CREATE UNIQUE INDEX UX_Ydelser_UploadKey ON PLSP.Ydelser (PatientId, UploadKey)
    INCLUDE (ContentHash) WHERE UploadKey IS NOT NULL;
CREATE UNIQUE INDEX UX_Egenskaber_UploadKey ON PLSP.Egenskaber (PatientId, UploadKey)
    INCLUDE (ContentHash) WHERE UploadKey IS NOT NULL;
GO

-- One row per upload call: the outcome, and for a queued bulk upload its
-- document until it has been applied.
CREATE TABLE PLSP.Upload (
    UploadId bigint IDENTITY (1, 1) NOT NULL,
    SorCode varchar(20) NOT NULL,
    Ydernummer varchar(10) NOT NULL,
    ReceivedUtc datetime2(3) NOT NULL CONSTRAINT DF_Upload_ReceivedUtc DEFAULT (SYSUTCDATETIME()),
    FinishedUtc datetime2(3) NULL,
    Status varchar(10) NOT NULL,         -- done, queued, failed
    Documents int NOT NULL CONSTRAINT DF_Upload_Documents DEFAULT (0),
    RejectedDocuments int NOT NULL CONSTRAINT DF_Upload_RejectedDocuments DEFAULT (0),
    RowsInserted int NOT NULL CONSTRAINT DF_Upload_RowsInserted DEFAULT (0),
    RowsUpdated int NOT NULL CONSTRAINT DF_Upload_RowsUpdated DEFAULT (0),
    RowsUnchanged int NOT NULL CONSTRAINT DF_Upload_RowsUnchanged DEFAULT (0),
    RowsRejected int NOT NULL CONSTRAINT DF_Upload_RowsRejected DEFAULT (0),
    Errors nvarchar(MAX) NULL,           -- JSON array: document, field, row, reason (never a CPR number)
    Document nvarchar(MAX) NULL,         -- queued bulk uploads only; cleared once applied
    CONSTRAINT PK_Upload PRIMARY KEY CLUSTERED (UploadId),
    CONSTRAINT CK_Upload_Status CHECK (Status IN ('done', 'queued', 'failed'))
);
CREATE INDEX IX_Upload_Queued ON PLSP.Upload (UploadId) WHERE Status = 'queued';
CREATE INDEX IX_Upload_Sor ON PLSP.Upload (SorCode, UploadId);
GO

-- Statistics per LPS (SOR code) and UTC day, for flp status and the daily e-mail.
CREATE TABLE Ops.UploadStatistic (
    SorCode varchar(20) NOT NULL,
    DayUtc date NOT NULL,
    Uploads int NOT NULL CONSTRAINT DF_UploadStatistic_Uploads DEFAULT (0),
    Documents int NOT NULL CONSTRAINT DF_UploadStatistic_Documents DEFAULT (0),
    RejectedDocuments int NOT NULL CONSTRAINT DF_UploadStatistic_RejectedDocuments DEFAULT (0),
    RowsInserted bigint NOT NULL CONSTRAINT DF_UploadStatistic_RowsInserted DEFAULT (0),
    RowsUpdated bigint NOT NULL CONSTRAINT DF_UploadStatistic_RowsUpdated DEFAULT (0),
    RowsUnchanged bigint NOT NULL CONSTRAINT DF_UploadStatistic_RowsUnchanged DEFAULT (0),
    RowsRejected bigint NOT NULL CONSTRAINT DF_UploadStatistic_RowsRejected DEFAULT (0),
    Throttled int NOT NULL CONSTRAINT DF_UploadStatistic_Throttled DEFAULT (0),
    CONSTRAINT PK_UploadStatistic PRIMARY KEY CLUSTERED (SorCode, DayUtc)
);

CREATE TABLE Ops.UploadRejection (
    SorCode varchar(20) NOT NULL,
    DayUtc date NOT NULL,
    Reason varchar(30) NOT NULL,
    RowsRejected bigint NOT NULL CONSTRAINT DF_UploadRejection_RowsRejected DEFAULT (0),
    CONSTRAINT PK_UploadRejection PRIMARY KEY CLUSTERED (SorCode, DayUtc, Reason)
);
GO
