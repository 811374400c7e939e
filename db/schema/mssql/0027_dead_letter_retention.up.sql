-- Migration 0027 on SQL Server (twin of db/schema/postgresql/0027_dead_letter_retention.up.sql):
-- the time index the Ops retention job (Job.ops_retention_batch version 3,
-- phase 5) walks, oldest first, to remove upload dead letters older than the
-- setting UploadDeadLetterDays. The table is small (a dead letter is a poison
-- document of a bulk upload: rare), so a plain CREATE INDEX takes moments; the
-- clustered key (UploadId, DocNo) rides along in the index, so the walk reads
-- no document to find the old ones.
CREATE NONCLUSTERED INDEX IX_DeadLetterDocument_DeadLettered ON Upload.DeadLetterDocument (DeadLetteredUtc);
