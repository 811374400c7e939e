-- Migration 0014 on SQL Server (twin of db/schema/postgresql/0014_ops_hardening.up.sql):
-- the time indexes the Ops retention job (Job.ops_retention_batch version 2)
-- walks, oldest first, to remove old dead letters and job slot claims
-- (PLSP.CdaAccessLog has IX_CdaAccessLog_Accessed from migration 0013).
-- Both tables are small (dead letters are rare; Job.job_slot_claim keeps about
-- seven days of claims per job), so a plain CREATE INDEX takes moments.
CREATE NONCLUSTERED INDEX IX_QueueDeadLetter_DeadLettered ON Ops.QueueDeadLetter (DeadLetteredUtc);
CREATE NONCLUSTERED INDEX IX_JobSlot_Slot ON Ops.JobSlot (SlotUtc);
