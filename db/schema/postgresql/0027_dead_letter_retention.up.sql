-- Migration 0027 on PostgreSQL (twin of db/schema/mssql/0027_dead_letter_retention.up.sql):
-- the time index the Ops retention job (Job.ops_retention_batch version 3,
-- phase 5) walks, oldest first, to remove upload dead letters older than the
-- setting UploadDeadLetterDays. The table is small (dead letters are rare).
CREATE INDEX IX_DeadLetterDocument_DeadLettered ON Upload.DeadLetterDocument (DeadLetteredUtc);
