-- Migration 0013 on SQL Server (twin of db/schema/postgresql/0013_cda.up.sql): the
-- CDA document versions of each care plan and the access log of HentCDA, Hent
-- værdier i CDA and DDS on-demand retrieves (docs/cda.md).

-- One row per version of a care plan's DK-CPD document. A version is made only
-- when the content hash (SHA-256 of the plan's clinical content, hex) differs
-- from the newest row's; the document's setId is PLSP.Forloebsplan.SetId.
CREATE TABLE PLSP.CdaDocumentVersion (
    ForloebsplanId bigint NOT NULL,
    VersionNumber int NOT NULL,
    DocumentId uniqueidentifier NOT NULL,  -- ClinicalDocument/id of this version
    ContentHash char(64) NOT NULL,
    CreatedUtc datetime2(3) NOT NULL CONSTRAINT DF_CdaDocumentVersion_CreatedUtc DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_CdaDocumentVersion PRIMARY KEY CLUSTERED (ForloebsplanId, VersionNumber),
    CONSTRAINT UQ_CdaDocumentVersion_DocumentId UNIQUE (DocumentId),
    CONSTRAINT FK_CdaDocumentVersion_Forloebsplan FOREIGN KEY (ForloebsplanId)
        REFERENCES PLSP.Forloebsplan (ForloebsplanId),
    CONSTRAINT CK_CdaDocumentVersion_VersionNumber CHECK (VersionNumber >= 1),
    CONSTRAINT CK_CdaDocumentVersion_ContentHash CHECK (
        LEN(ContentHash) = 64 AND ContentHash COLLATE Latin1_General_BIN2 NOT LIKE '%[^0-9a-f]%'
    )
);

-- Every request for a care-plan document or its values. Never a CPR number:
-- the patient is a keyed hash (HMAC-SHA256, key outside the database).
-- Clustered on the ever-increasing id; the daily counts read a day by AccessedUtc.
CREATE TABLE PLSP.CdaAccessLog (
    AccessId bigint IDENTITY (1, 1) NOT NULL,
    AccessedUtc datetime2(3) NOT NULL CONSTRAINT DF_CdaAccessLog_AccessedUtc DEFAULT (SYSUTCDATETIME()),
    RequesterKind varchar(10) NOT NULL,  -- citizen (the Min Læge app) or dds
    Requester nvarchar(100) NOT NULL,    -- the requesting organisation (DDS), 'citizen' for the app
    Purpose varchar(40) NOT NULL,        -- view, values, dds-retrieve, ...
    PatientHash char(64) NULL,           -- NULL when no patient was found
    ForloebCode varchar(10) NULL,
    VersionNumber int NULL,
    HttpStatus smallint NOT NULL,
    LatencyMs int NOT NULL,
    CONSTRAINT PK_CdaAccessLog PRIMARY KEY CLUSTERED (AccessId),
    CONSTRAINT CK_CdaAccessLog_RequesterKind CHECK (RequesterKind IN ('citizen', 'dds')),
    CONSTRAINT CK_CdaAccessLog_PatientHash CHECK (
        LEN(PatientHash) = 64 AND PatientHash COLLATE Latin1_General_BIN2 NOT LIKE '%[^0-9a-f]%'
    )
);
CREATE NONCLUSTERED INDEX IX_CdaAccessLog_Accessed ON PLSP.CdaAccessLog (AccessedUtc)
    INCLUDE (RequesterKind, Requester, Purpose, HttpStatus, LatencyMs);
