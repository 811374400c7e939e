-- Migration 0023 on SQL Server: new raw patient values wait in
-- PLSP.Patientvaerdier_Pending (issue 9, docs/engine.md "ConvertPatientValues").
-- ConvertPatientValues moves a batch out of it (DELETE TOP ... OUTPUT INTO)
-- and INSERTs each row into PLSP.Patientvaerdier already converted (or
-- invalid with its reason), so a converted row is written once, at the end of
-- the clustered index and appended to its other indexes, instead of being
-- updated in place (every such update changes indexed columns).
--
-- The columns are the ones the writers know. PendingId is the arrival order
-- (the conversion takes the oldest first); the value gets its PatientvaerdiId
-- (the IDENTITY of Patientvaerdier) when it is converted: inserting a chosen
-- value into an IDENTITY column needs SET IDENTITY_INSERT, which needs ALTER
-- on the table, which ownership chaining does not give a job that may only
-- execute. A key (PatientId, UploadKey) is unique here as in Patientvaerdier
-- (UX_Patientvaerdier_UploadKey), and Upload.upload_data keeps it in one of
-- the two tables at a time (docs/engine.md).
--
-- Rows of status 0 already in PLSP.Patientvaerdier stay where they are:
-- Job.convert_values_batch v2 converts them in place as v1 did, after the
-- pending table is empty, so the upgrade moves no data and takes only the
-- schema locks of a new, empty table.
CREATE TABLE PLSP.Patientvaerdier_Pending (
    PendingId bigint IDENTITY (1, 1) NOT NULL,
    PatientId bigint NOT NULL,
    Code varchar(20) NOT NULL,
    RawValue nvarchar(100) NULL,
    RawTime varchar(40) NULL,
    Unit nvarchar(20) NULL,
    ReceivedUtc datetime2(3) NOT NULL CONSTRAINT DF_Patientvaerdier_Pending_ReceivedUtc DEFAULT (SYSUTCDATETIME()),
    UploadKey nvarchar(200) NULL,
    ContentHash binary(32) NULL,
    CONSTRAINT PK_Patientvaerdier_Pending PRIMARY KEY CLUSTERED (PendingId),
    CONSTRAINT FK_Patientvaerdier_Pending_Patient FOREIGN KEY (PatientId) REFERENCES PLSP.Patient (PatientId)
);
GO

-- An upload finds a row by its key in either table (one seek each).
CREATE UNIQUE INDEX UX_Patientvaerdier_Pending_UploadKey ON PLSP.Patientvaerdier_Pending (PatientId, UploadKey)
    INCLUDE (ContentHash) WHERE UploadKey IS NOT NULL;
