-- Migration 0018 on PostgreSQL (twin of db/schema/mssql/0018_upload_bulk.up.sql):
-- asynchronous bulk uploads (issue 11, docs/http.md). A bulk upload is one
-- PLSP.Upload row with Status 'queued' and its patient documents staged one
-- row each in Upload.StagedDocument by Upload.upload_enqueue (one insert);
-- Job.upload_drain applies them in batches on Job.run_batched and deletes
-- each staged row in the same transaction that applies it, so a crash loses
-- nothing and applies nothing twice (and the content hashes make a repeat a
-- no-op anyway).

------------------------------------------------------------------------------
-- The queued upload: how much it holds, and whether the LPS marked it a full resync
------------------------------------------------------------------------------
ALTER TABLE PLSP.Upload
    ADD COLUMN DocumentsTotal integer NULL,        -- queued uploads: documents received
    ADD COLUMN RowsTotal integer NULL,             -- queued uploads: rows received
    ADD COLUMN FullResync boolean NOT NULL DEFAULT false,
    ADD COLUMN StartedUtc timestamp(3) NULL,      -- queued uploads: the drain's first batch
    ADD COLUMN FailureReason varchar(400) NULL;   -- failed uploads: the document and the error (never a CPR number)

------------------------------------------------------------------------------
-- Staged documents of queued uploads, until Job.upload_drain applies them
------------------------------------------------------------------------------
CREATE TABLE Upload.StagedDocument (
    UploadId bigint NOT NULL,
    DocNo integer NOT NULL,                        -- 0-based index in the upload, as errors name it
    DocRows integer NOT NULL,                     -- rows in the document (the drain's batch budget)
    Document text NOT NULL,                        -- one patient document (JSON); personal data
    Attempts integer NOT NULL DEFAULT 0,           -- drain batches holding it that raised (rolled back)
    CONSTRAINT PK_StagedDocument PRIMARY KEY (UploadId, DocNo),
    CONSTRAINT FK_StagedDocument_Upload FOREIGN KEY (UploadId) REFERENCES PLSP.Upload (UploadId)
);

------------------------------------------------------------------------------
-- Settings of the drain (the batch settings are the '*' rows)
------------------------------------------------------------------------------
INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
    ('upload_drain', 'OffHoursRows', '200000',
     'a queued upload with more rows than this waits for the off-hours window (Job.off_hours_check); 0: never waits'),
    ('upload_drain', 'SleepFactor', '1.0',
     'sleep this many times each batch''s duration: a drain leaves the database half idle for interactive uploads'),
    ('upload_drain', 'MaxAttempts', '3',
     'a staged document whose batch raised this many times (the last ones alone) fails its upload; the drain goes on with the others');
