-- Migration 0018 on SQL Server: asynchronous bulk uploads (issue 11,
-- docs/http.md). A bulk upload is one PLSP.Upload row with Status 'queued'
-- and its patient documents staged one row each in Upload.StagedDocument by
-- Upload.upload_enqueue (one insert); Job.upload_drain applies them in
-- batches on Job.run_batched and deletes each staged row in the same
-- transaction that applies it, so a crash loses nothing and applies nothing
-- twice (and the content hashes make a repeat a no-op anyway).
-- A batch that raises is rolled back and its documents' Attempts counted;
-- a document that fails alone MaxAttempts times fails its upload (Status
-- 'failed', FailureReason naming the document and the error, CPR-shaped
-- numbers masked) and the drain goes on with the other uploads.
ALTER TABLE PLSP.Upload ADD
    DocumentsTotal int NULL,             -- queued uploads: documents received
    RowsTotal int NULL,                  -- queued uploads: rows received
    FullResync bit NOT NULL CONSTRAINT DF_Upload_FullResync DEFAULT (0),
    StartedUtc datetime2(3) NULL,        -- queued uploads: the drain's first batch
    FailureReason nvarchar(400) NULL;    -- failed uploads: the document and the error (never a CPR number)
GO

-- Staged documents of queued uploads, until Job.upload_drain applies them.
CREATE TABLE Upload.StagedDocument (
    UploadId bigint NOT NULL,
    DocNo int NOT NULL,                  -- 0-based index in the upload, as errors name it
    DocRows int NOT NULL,                -- rows in the document (the drain's batch budget)
    Document nvarchar(MAX) NOT NULL,     -- one patient document (JSON); personal data
    Attempts int NOT NULL CONSTRAINT DF_StagedDocument_Attempts DEFAULT (0),  -- drain batches holding it that raised
    CONSTRAINT PK_StagedDocument PRIMARY KEY CLUSTERED (UploadId, DocNo),
    CONSTRAINT FK_StagedDocument_Upload FOREIGN KEY (UploadId) REFERENCES PLSP.Upload (UploadId)
);
GO

-- Settings of the drain (the batch settings are the '*' rows).
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('upload_drain', 'OffHoursRows', '200000',
        'a queued upload with more rows than this waits for the off-hours window (Job.off_hours_check); 0: never waits'),
    ('upload_drain', 'SleepFactor', '1.0',
        'sleep this many times each batch''s duration: a drain leaves the database half idle for interactive uploads'),
    ('upload_drain', 'MaxAttempts', '3',
        'a staged document whose batch raised this many times (the last ones alone) fails its upload; the drain goes on with the others');
GO
