-- Migration 0024 on PostgreSQL (twin of db/schema/mssql/0024_upload_v3.up.sql):
-- the bulk drain's dead letters (issue 11). A staged document whose batch
-- raised MaxAttempts times alone (a poison document) is moved here with its
-- reason by Job.upload_drain_batch v2, and the drain goes on with the
-- upload's later documents (v1 failed the whole upload and dropped them).
-- Kept for an operator to read and, once fixed, send again; personal data.
CREATE TABLE Upload.DeadLetterDocument (
    UploadId bigint NOT NULL,
    DocNo integer NOT NULL,                        -- 0-based index in the upload, as errors name it
    DocRows integer NOT NULL,
    Document text NOT NULL,                        -- the staged document as it was (JSON); personal data
    Attempts integer NOT NULL,
    Reason varchar(400) NOT NULL,                  -- the error (runs of six or more digits masked: never a CPR number)
    DeadLetteredUtc timestamp(3) NOT NULL,
    CONSTRAINT PK_DeadLetterDocument PRIMARY KEY (UploadId, DocNo),
    CONSTRAINT FK_DeadLetterDocument_Upload FOREIGN KEY (UploadId) REFERENCES PLSP.Upload (UploadId)
);
